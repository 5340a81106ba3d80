"""Plots of monitor records: gradient flow vs depth, a layer-by-step heat map, the loss curve.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, so importing
this module never changes the process-wide backend, and it works without a display).
Each function writes PNG and SVG when ``path`` has no extension (or the formats asked
for) and returns the written paths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ..plotting import save_figure
from .table import average_groups

_EVENT_COLOURS = {"nonfinite": "tab:red", "exploding": "tab:orange", "vanishing": "tab:purple",
                  "skipped": "tab:gray"}


def _points(data) -> tuple[list[int], list[float], list[str]]:
    """(depths, norms, names) from pairs, group dicts, records or a gradient-check result."""
    if isinstance(data, dict):
        data = data["groups"]
    data = list(data)
    if data and isinstance(data[0], dict) and "groups" in data[0]:
        data = average_groups(data)
    if data and isinstance(data[0], dict):
        rows = [(g["depth_index"], g.get("grad_norm"), g["name"]) for g in data]
    else:
        rows = [(int(d), n, str(d)) for d, n in data]
    rows = [(d, n, name) for d, n, name in sorted(rows) if n is not None and math.isfinite(n) and n > 0]
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def _split_by_epoch(records: list[dict]) -> dict[str, list[dict]]:
    if records and all("epoch" in r for r in records):
        out: dict[str, list[dict]] = {}
        for r in records:
            out.setdefault(f"epoch {r['epoch']}", []).append(r)
        return out
    return {"mean over steps": records}


def plot_gradient_flow(series, path: str | Path, *, title: str = "Gradient flow",
                       formats: Sequence[str] | None = None) -> list[Path]:
    """Gradient norm vs depth on a log scale, one line per entry of ``series``.

    ``series``: ``{label: data}`` where data is a list of ``(depth_index, grad_norm)``
    pairs, a list of group dicts, a list of records (averaged over the steps) or a
    ``run_gradient_check`` result; or a plain list of records, drawn one line per epoch if
    records carry an ``"epoch"`` key. Labels containing "plain" are dashed, so a plain net
    and its residual twin overlay readably. Zero and non-finite norms are left out.
    """
    if isinstance(series, dict) and "groups" in series:  # one run_gradient_check result
        series = {"model": series}
    elif not isinstance(series, dict):
        data = list(series)
        is_records = bool(data) and isinstance(data[0], dict) and "groups" in data[0]
        series = _split_by_epoch(data) if is_records else {"model": data}
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    tick_names: dict[int, str] = {}
    for label, data in series.items():
        depths, norms, names = _points(data)
        if not depths:
            continue
        style = "--" if "plain" in str(label).lower() else "-"
        ax.plot(depths, norms, style, marker="o", markersize=3, label=str(label))
        tick_names.update(zip(depths, names))
    ax.set_yscale("log")
    ax.set_xlabel("depth (layer group, input -> output)")
    ax.set_ylabel("gradient L2 norm")
    ax.set_title(title)
    if tick_names:
        ticks = sorted(tick_names)
        step = max(1, len(ticks) // 16)
        ax.set_xticks(ticks[::step], [tick_names[t] for t in ticks[::step]], rotation=60, ha="right",
                      fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    if tick_names:
        ax.legend(fontsize=8)
    else:  # e.g. a single-class data set: the loss is 0 and so is every gradient
        ax.text(0.5, 0.5, "no non-zero gradient norm to plot", ha="center", va="center", transform=ax.transAxes)
    return save_figure(fig, path, formats, dpi=120)


def plot_heatmap(records: Iterable[dict], path: str | Path, *, quantity: str = "grad_norm",
                 title: str | None = None, formats: Sequence[str] | None = None) -> list[Path]:
    """Layer group (rows, input at the top) by step (columns), colour = log10 of ``quantity``
    (``grad_norm``, ``weight_norm`` or ``update_ratio``). Non-finite cells are black; zeros
    take the lowest colour."""
    records = list(records)
    groups = sorted({(g["depth_index"], g["name"]) for r in records for g in r["groups"]})
    row = {key: i for i, key in enumerate(groups)}
    matrix = np.full((len(groups), len(records)), np.nan)
    bad = np.zeros_like(matrix, dtype=bool)
    for j, r in enumerate(records):
        for g in r["groups"]:
            value = g.get(quantity)
            if value is None:
                continue
            i = row[(g["depth_index"], g["name"])]
            if not math.isfinite(value):
                bad[i, j] = True
            elif value > 0:
                matrix[i, j] = math.log10(value)
    finite = matrix[np.isfinite(matrix)]
    low = finite.min() if finite.size else 0.0
    matrix[~np.isfinite(matrix) & ~bad] = low  # zero / missing -> lowest colour
    matrix[bad] = np.nan

    fig = Figure(figsize=(9, max(3.0, 0.18 * len(groups) + 1.5)))
    ax = fig.add_subplot()
    cmap = colormaps["viridis"].with_extremes(bad="black")
    steps = [r["step"] for r in records]
    extent = (min(steps) - 0.5, max(steps) + 0.5, len(groups) - 0.5, -0.5) if steps else None
    image = ax.imshow(np.ma.masked_invalid(matrix), aspect="auto", interpolation="nearest", cmap=cmap,
                      extent=extent)
    fig.colorbar(image, ax=ax, label=f"log10 {quantity.replace('_', ' ')}")
    step_y = max(1, len(groups) // 30)
    ax.set_yticks(range(0, len(groups), step_y), [groups[i][1] for i in range(0, len(groups), step_y)],
                  fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel("layer group (input at top)")
    ax.set_title(title or f"{quantity.replace('_', ' ')} by layer and step")
    return save_figure(fig, path, formats, dpi=120)


def _events_from_records(records: list[dict]) -> list[dict]:
    events, previous = [], "healthy"
    for r in records:
        kind = r.get("verdict", "healthy")
        if kind != "healthy" and kind != previous:
            events.append({"step": r["step"], "kind": kind})
        previous = kind
    return events


def plot_loss(records: Iterable[dict], events=None, path: str | Path = "loss", *,
              title: str = "Loss", formats: Sequence[str] | None = None) -> list[Path]:
    """The loss per recorded step, with events marked as vertical lines by kind.

    ``events``: Verdicts, dicts ``{step, kind}`` (``kind`` may also be ``"skipped"``) or
    None to take the changes of verdict from the records. Steps with a non-finite loss are
    marked with a red x at the top of the plot.
    """
    records = list(records)
    if events is None:
        events = _events_from_records(records)
    events = [e if isinstance(e, dict) else {"step": e.step, "kind": e.kind} for e in events]
    steps = [r["step"] for r in records if r.get("loss") is not None]
    losses = [r["loss"] for r in records if r.get("loss") is not None]
    good = [(s, v) for s, v in zip(steps, losses) if math.isfinite(v)]

    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    if good:
        ax.plot([s for s, _ in good], [v for _, v in good], color="tab:blue", lw=1.2, label="loss")
        if all(v > 0 for _, v in good):
            ax.set_yscale("log")
    nonfinite = [s for s, v in zip(steps, losses) if not math.isfinite(v)]
    if nonfinite:
        top = max((v for _, v in good), default=1.0)
        ax.plot(nonfinite, [top] * len(nonfinite), "x", color="tab:red", label="non-finite loss")
    labelled = set()
    for e in events:
        kind = e["kind"]
        ax.axvline(e["step"], color=_EVENT_COLOURS.get(kind, "black"), ls=":", lw=1.2,
                   label=kind if kind not in labelled else None)
        labelled.add(kind)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if good or nonfinite or events:
        ax.legend(fontsize=8)
    return save_figure(fig, path, formats, dpi=120)
