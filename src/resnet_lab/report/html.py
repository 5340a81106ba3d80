"""``Report``: collect headings, text, tables and figures in order, write one self-contained .html file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from .figures import figure_html
from .meta import meta_html
from .style import CSS
from .tables import Column, render_table

# Everything the page needs is inside it; this policy makes the browser refuse anything else
# (a stray external URL shows up as a console error instead of silently phoning home).
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Report:
    """An HTML report built block by block, then written with :meth:`write`.

    The file is self-contained (inline CSS, embedded images, no scripts, no external resources),
    so it can be mailed, archived next to a run, or opened offline on a laptop or a phone.
    Run facts given to :meth:`set_meta` are shown at the top, whenever ``set_meta`` is called.
    """

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = title
        self.subtitle = subtitle
        self.meta: dict | None = None
        self._blocks: list[str] = []
        self._section_open = False

    # ---- content, in page order -------------------------------------------------------------
    def add_section(self, title: str) -> None:
        """Start a new top-level section headed ``title``; what follows belongs to it."""
        self._close_section()
        self._blocks.append(f"<section><h2>{escape(title)}</h2>")
        self._section_open = True

    def add_heading(self, text: str) -> None:
        """A sub-heading inside the current section."""
        self._blocks.append(f"<h3>{escape(text)}</h3>")

    def add_paragraph(self, text: str) -> None:
        """A paragraph of plain text (escaped: markup in ``text`` is shown, never interpreted)."""
        self._blocks.append(f"<p>{escape(text)}</p>")

    def add_findings(self, lines: Sequence[str], title: str = "Findings") -> None:
        """A highlighted list of headline findings (plain text, one per line)."""
        items = "".join(f"<li>{escape(line)}</li>" for line in lines)
        self._blocks.append(f'<section class="findings"><h2>{escape(title)}</h2><ul>{items}</ul></section>')

    def add_table(self, rows: Sequence[dict], columns: Sequence[Column] | None = None,
                  caption: str | None = None) -> None:
        """A table of ``rows`` (dicts). ``columns`` lists ``(key, header)`` or ``(key, header, format)``
        pairs (default: every key, in order of first appearance). Numbers are formatted and right-aligned;
        a format is a spec such as ``".2%"`` or a callable value -> str.
        """
        self._blocks.append(render_table(rows, columns, caption))

    def add_figure(self, fig_or_path: Any, caption: str | None = None, *, fmt: str = "svg", dpi: int = 150,
                   alt: str | None = None) -> None:
        """A matplotlib Figure (inline SVG by default, ``fmt="png"`` for an embedded PNG) or an
        existing .png/.jpg/.svg file (embedded as a data URI). The figure is not closed.
        """
        self._blocks.append(figure_html(fig_or_path, caption, fmt=fmt, dpi=dpi, alt=alt))

    def add_json(self, data: Any, caption: str = "Raw data") -> None:
        """``data`` as pretty-printed JSON in a collapsed ``<details>`` block headed ``caption``."""
        text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
        self._blocks.append(f"<details><summary>{escape(caption)}</summary><pre><code>{escape(text)}</code></pre></details>")

    def set_meta(self, settings: Mapping[str, Any], data: str, seeds: Any, hardware: Mapping[str, Any],
                 versions: Mapping[str, Any], run_time_s: float | None, no_run_time: str = "not recorded") -> None:
        """The run's facts, rendered at the top of the page: settings, data, seeds, hardware,
        library versions and run time (seconds; None: ``no_run_time`` says why). ``hardware`` and
        ``versions`` usually come from :func:`resnet_lab.report.run_metadata`. Calling it again
        replaces the earlier facts.
        """
        self.meta = {"settings": dict(settings), "data": data, "seeds": seeds, "hardware": dict(hardware),
                     "versions": dict(versions), "run_time_s": None if run_time_s is None else float(run_time_s),
                     "no_run_time": no_run_time}

    # ---- output ---------------------------------------------------------------------------------
    def to_html(self) -> str:
        """The whole page as one string."""
        generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        subtitle = f'<p class="subtitle">{escape(self.subtitle)}</p>' if self.subtitle else ""
        meta = meta_html(self.meta) if self.meta is not None else ""
        body = "\n".join(self._blocks) + ("\n</section>" if self._section_open else "")
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="generator" content="resnet-lab">
<title>{escape(self.title)}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<main>
<header><h1>{escape(self.title)}</h1>{subtitle}<p class="generated">Generated {generated} by resnet-lab</p></header>
{meta}
{body}
</main>
</body>
</html>
"""

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` atomically (a crash leaves the old file or the new one); returns the path."""
        from ..files import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.to_html())
        return path

    def _close_section(self) -> None:
        if self._section_open:
            self._blocks.append("</section>")
            self._section_open = False
