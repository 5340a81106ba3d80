"""Figures embedded in the page: matplotlib Figures or image files -> inline SVG or data URIs."""

from __future__ import annotations

import base64
import io
import itertools
import re
from html import escape
from pathlib import Path
from typing import Any

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".svg": "image/svg+xml"}
_svg_counter = itertools.count()


def data_uri(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for embedding bytes in an attribute."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def inline_svg(svg: str, prefix: str) -> str:
    """SVG text ready to sit inside HTML: no XML prolog, doctype or metadata, ids made unique.

    Matplotlib names clip paths and glyphs by hash, so two figures in one page could share ids;
    prefixing every id (and every ``#id`` reference) keeps each figure pointing at its own.
    """
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    if ids:
        pattern = re.compile(r'(\bid="|url\(#|href="#)('
                             + "|".join(map(re.escape, sorted(ids, key=len, reverse=True))) + r')(?=["\)])')
        svg = pattern.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg)
    return svg.strip()


def figure_html(fig_or_path: Any, caption: str | None = None, fmt: str = "svg", dpi: int = 150,
                alt: str | None = None) -> str:
    """A ``<figure>`` holding the image, fully embedded.

    ``fig_or_path`` is a matplotlib Figure (rendered as inline SVG, or a PNG data URI when
    ``fmt="png"``) or the path of an existing image file (.png, .jpg, .gif, .webp or .svg), which
    is embedded as a data URI.
    """
    alt_text = escape(alt if alt is not None else (caption or "figure"))
    if isinstance(fig_or_path, (str, Path)):
        path = Path(fig_or_path)
        mime = _MIME.get(path.suffix.lower())
        if mime is None:
            raise ValueError(f"cannot embed {path}: use a .png, .jpg, .gif, .webp or .svg file")
        if not path.is_file():
            raise FileNotFoundError(f"figure file {path} does not exist")
        body = f'<img src="{data_uri(path.read_bytes(), mime)}" alt="{alt_text}">'
    elif hasattr(fig_or_path, "savefig"):
        if fmt not in ("svg", "png"):
            raise ValueError(f"figure format must be 'svg' or 'png', not {fmt!r}")
        buffer = io.BytesIO()
        fig_or_path.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
        if fmt == "png":
            body = f'<img src="{data_uri(buffer.getvalue(), "image/png")}" alt="{alt_text}">'
        else:
            svg = inline_svg(buffer.getvalue().decode("utf-8"), prefix=f"fig{next(_svg_counter)}-")
            body = svg.replace("<svg", f'<svg role="img" aria-label="{alt_text}"', 1)
    else:
        raise TypeError(f"add_figure takes a matplotlib Figure or an image file path, not {type(fig_or_path).__name__}")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{body}{cap}</figure>"
