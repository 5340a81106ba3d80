"""Writing matplotlib Figures to files, for every module that draws: the Agg canvas, never pyplot
(no global backend is set, no window opens). matplotlib is imported by the caller's Figure."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

from .errors import UserError
from .files import atomic_write_bytes

#: One colour per series (depth, network), in order.
SERIES_COLOURS = ("tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive")
_SUFFIXES = (".png", ".svg", ".pdf")
_OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".eps", ".ps")


def check_figure_path(path: str | Path, flag: str = "--plot") -> None:
    """Refuse, before any work, a path whose suffix names an image format ``save_figure`` does not
    write (it would write ``x.jpg.png`` and ``x.jpg.svg``)."""
    if str(path) == "":  # an unset shell variable: the figure the user asked for was silently not drawn
        raise UserError(f"{flag} is empty (an unset shell variable?); give a file such as flow.png")
    if str(path).endswith(("/", os.sep)) or Path(path).is_dir():  # DIR/ once wrote DIR.png and DIR.svg beside it
        raise UserError(f"{flag} {path} is a folder; give a file in it, such as {Path(path) / 'flow.png'}")
    suffix = Path(path).suffix.lower()
    if suffix in _OTHER_IMAGE_SUFFIXES:
        stem = Path(path).with_suffix("")
        raise UserError(f"{flag} {path}: figures are written as {', '.join(_SUFFIXES)}, not {suffix}; give "
                        f"{stem}.png, {stem}.svg or {stem} (both)")


def save_figure(fig, path: str | Path, formats: Sequence[str] | None = None, dpi: float | str = "figure") -> list[Path]:
    """Write ``fig`` as ``path`` with each of ``formats`` as its suffix (default: the suffix ``path``
    names, else PNG and SVG); the paths written, in that order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    named = path.suffix.lower() in _SUFFIXES
    formats = formats or ([path.suffix[1:]] if named else ["png", "svg"])
    stem = path.with_suffix("") if named else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    written = []
    for fmt in formats:
        out = stem.with_name(f"{stem.name}.{fmt.lstrip('.')}")
        # Drawn whole, then written atomically: a kill mid-draw, or a second report drawn at the same
        # time (the background renderer and 'resnet-lab report'), never leaves or embeds half a figure.
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt.lstrip("."), dpi=dpi, bbox_inches="tight")
        atomic_write_bytes(out, buffer.getvalue())
        written.append(out)
    return written
