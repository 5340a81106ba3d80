"""Text summaries of monitor records, for the command line."""

from __future__ import annotations

import math
from typing import Iterable

_QUANTITIES = ("grad_norm", "weight_norm", "update_ratio")


def average_groups(records: Iterable[dict]) -> list[dict]:
    """Per group, the mean of each quantity over the records where it is finite.

    Returns ``[{name, depth_index, grad_norm, weight_norm, update_ratio}]`` in depth order;
    a quantity with no finite value is None.
    """
    sums: dict[tuple[int, str], dict[str, list[float]]] = {}
    for record in records:
        for g in record["groups"]:
            slot = sums.setdefault((g["depth_index"], g["name"]), {q: [] for q in _QUANTITIES})
            for q in _QUANTITIES:
                value = g.get(q)
                if value is not None and math.isfinite(value):
                    slot[q].append(value)
    return [{"name": name, "depth_index": depth,
             **{q: (sum(v) / len(v) if v else None) for q, v in values.items()}}
            for (depth, name), values in sorted(sums.items())]


def _groups_of(source) -> list[dict]:
    if isinstance(source, dict):
        return source["groups"]  # one record, or a run_gradient_check result
    source = list(source)
    if source and "groups" in source[0]:
        return average_groups(source)
    return source


def _num(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def gradient_table(source, *, bar_width: int = 24) -> str:
    """Format the per-group table: depth, group, gradient norm, weight norm, update ratio and
    a bar of log10(gradient norm) spanning the 8 decades below the largest.

    ``source``: a list of group dicts, one record, a list of records (averaged with
    ``average_groups``) or a ``run_gradient_check`` result.
    """
    groups = _groups_of(source)
    finite = [g["grad_norm"] for g in groups if g.get("grad_norm") is not None
              and math.isfinite(g["grad_norm"]) and g["grad_norm"] > 0]
    top = math.log10(max(finite)) if finite else 0.0
    width = max([5] + [len(g["name"]) for g in groups])
    lines = [f"{'depth':>5}  {'group':<{width}}  {'grad norm':>9}  {'weight norm':>11}  "
             f"{'update/weight':>13}  log10 grad norm (8 decades)"]
    for g in groups:
        norm = g.get("grad_norm")
        if norm is None or not math.isfinite(norm):
            bar = "" if norm is None else "NON-FINITE"
        elif norm <= 0:
            bar = ""
        else:
            filled = round(bar_width * max(0.0, 1 + (math.log10(norm) - top) / 8))
            bar = "#" * filled
        lines.append(f"{g['depth_index']:>5}  {g['name']:<{width}}  {_num(norm):>9}  "
                     f"{_num(g.get('weight_norm')):>11}  {_num(g.get('update_ratio')):>13}  {bar}")
    return "\n".join(lines)
