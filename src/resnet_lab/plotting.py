"""Writing matplotlib Figures to files, for every module that draws: the Agg canvas, never pyplot
(no global backend is set, no window opens). matplotlib is imported by the caller's Figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

#: One colour per series (depth, network), in order.
SERIES_COLOURS = ("tab:orange", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive")
_SUFFIXES = (".png", ".svg", ".pdf")


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
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
        written.append(out)
    return written
