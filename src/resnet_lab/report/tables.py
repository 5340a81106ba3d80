"""Tables: rows of dicts -> an HTML table with numbers formatted and right-aligned."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

# A column is (key, header) or (key, header, format), format being a format spec ("{:.2%}"-style
# without the braces, e.g. ".2%") or a callable value -> str.
Column = tuple[str, str] | tuple[str, str, "str | Callable[[Any], str]"]

# A first (text) column whose cells are all at most this long stays on one line (CSS class "key").
KEY_MAX_CHARS = 40


def is_number(value: Any) -> bool:
    """True for ints and floats (numpy's too), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_value(value: Any) -> str:
    """Readable text for one cell: thousands separators, 4 significant digits, a dash for None."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1e6 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _format_cell(value: Any, fmt: "str | Callable[[Any], str] | None") -> str:
    if fmt is None or value is None:
        return format_value(value)
    if callable(fmt):
        return str(fmt(value))
    return format(value, fmt)


def render_table(rows: Sequence[dict], columns: Sequence[Column] | None = None, caption: str | None = None) -> str:
    """HTML for ``rows`` inside a horizontally scrolling wrapper (so it never widens the page).

    ``columns`` defaults to every key in order of first appearance, headed by the key itself.
    A column whose values are all numbers (or missing) is right-aligned.
    """
    if columns is None:
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        columns = [(key, key) for key in keys]
    columns = [tuple(column) for column in columns]
    for column in columns:
        if len(column) not in (2, 3):
            raise ValueError(f"a table column is (key, header) or (key, header, format), not {column!r}")
    numeric = [all(is_number(row.get(c[0])) or row.get(c[0]) is None for row in rows) and
               any(is_number(row.get(c[0])) for row in rows) for c in columns]

    # The first column names the row. Text that fits on one line (names such as
    # "resnet20-none-relu-he@lr=1+clip=1") is kept on one line ("key"); longer text gets a
    # minimum width to wrap in between words ("key-long").
    first = None
    if columns and not numeric[0]:
        texts = [str(columns[0][1])] + [_format_cell(row.get(columns[0][0]),
                                                     columns[0][2] if len(columns[0]) == 3 else None)
                                        for row in rows]
        first = "key" if max(len(text) for text in texts) <= KEY_MAX_CHARS else "key-long"

    def cls(is_num: bool, index: int = -1) -> str:
        names = (["num"] if is_num else []) + ([first] if index == 0 and first else [])
        return f' class="{" ".join(names)}"' if names else ""

    parts = ['<div class="table-wrap"><table>']
    if caption:
        parts.append(f"<caption>{escape(caption)}</caption>")
    parts.append("<thead><tr>")
    parts += [f'<th scope="col"{cls(num, i)}>{escape(str(c[1]))}</th>'
              for i, (c, num) in enumerate(zip(columns, numeric))]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        parts.append("<tr>")
        for i, (column, num) in enumerate(zip(columns, numeric)):
            value = row.get(column[0])
            text = _format_cell(value, column[2] if len(column) == 3 else None)
            parts.append(f"<td{cls(is_number(value) or (num and value is None), i)}>{escape(text)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)
