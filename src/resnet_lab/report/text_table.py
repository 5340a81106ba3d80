"""Plain-text tables for the terminal (also valid Markdown)."""

from __future__ import annotations


def format_table(rows: list[dict], columns: list[tuple[str, str]], markdown: bool = False) -> str:
    """``columns`` is a list of (key, header); numbers are right-aligned."""
    cells = [[_fmt(row.get(key)) for key, _ in columns] for row in rows]
    headers = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row.get(key)) for row in rows) for key, _ in columns]

    def line(values):
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    rule = ("|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric)) + "|"
            if markdown else "  ".join("-" * w for w in widths))
    return "\n".join([line(headers), rule] + [line(c) for c in cells])


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)
