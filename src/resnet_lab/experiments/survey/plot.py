"""Heat maps of a survey: rows = variants (norm/activation/init), columns = depth, plain and
residual side by side. Kept apart from ``run.py`` so that measuring never imports matplotlib.

Drawn with matplotlib's object API on the Agg canvas (no pyplot: the process-wide backend is left
alone and no display is needed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from ...plotting import save_figure
from ...text import counted

# What each heat map shows: (file stem, title, colour-bar label).
HEATMAPS = {
    "ratio": ("survey_gradient_ratio", "log10 first/last block gradient norm at initialisation",
              "log10(first/last)  (<0: vanishing towards the input, >0: growing)"),
    "loss": ("survey_loss_drop", "relative loss drop in the short run", "loss drop (1 - end/start)"),
}
RATIO_LIMIT = 6.0  # colour scale of log10 ratios is clipped to +-6 (the text keeps the value)


def _grid(result: dict, shortcut: str, key: str):
    """(variants, depths, matrix of values or None) for the switch cells of one shortcut."""
    cells = [c for c in result["cells"] if c["group"] == "switches"]
    variants = list(dict.fromkeys(c["variant"] for c in cells))
    depths = sorted({c["depth"] for c in cells})
    by = {(c["variant"], c["depth"]): c for c in cells if c["shortcut"] == shortcut}
    values = [[by.get((v, d)) for d in depths] for v in variants]
    return variants, depths, values


def _ratio_text(c) -> tuple[float, str]:
    if c is None:
        return math.nan, ""
    r = c["ratio"]
    if r is None:  # both norms zero or non-finite: the gradient did not arrive at all
        return -RATIO_LIMIT, "0" if c["grad_first"] == 0 else "n/a"
    return math.log10(r) if r > 0 else -RATIO_LIMIT, f"{r:.2g}"


def _loss_text(c) -> tuple[float, str]:
    if c is None:
        return math.nan, ""
    if c["outcome"] == "diverged" or c["loss_drop"] is None:
        return math.nan, "diverged"
    text = f"{100 * c['loss_drop']:.0f}%"
    return c["loss_drop"], "0%" if text == "-0%" else text


def _draw(result: dict, which: str) -> Figure:
    _, title, label = HEATMAPS[which]
    value_of = _ratio_text if which == "ratio" else _loss_text
    variants, depths, _ = _grid(result, "plain", which)
    fig = Figure(figsize=(3.2 + 1.9 * len(depths), 1.4 + 0.42 * len(variants)), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True, squeeze=True)
    if which == "ratio":
        norm, cmap = TwoSlopeNorm(vmin=-RATIO_LIMIT, vcenter=0.0, vmax=RATIO_LIMIT), "RdBu_r"
    else:
        norm, cmap = TwoSlopeNorm(vmin=-0.5, vcenter=0.0, vmax=1.0), "RdYlGn"
    image = None
    for ax, shortcut in zip(axes, ("plain", "residual")):
        _, _, cells = _grid(result, shortcut, which)
        data = np.full((len(variants), len(depths)), np.nan)
        for i, row in enumerate(cells):
            for j, c in enumerate(row):
                value, text = value_of(c)
                if which == "ratio" and math.isfinite(value):
                    value = max(-RATIO_LIMIT, min(RATIO_LIMIT, value))
                data[i, j] = value
                if c is not None:
                    mark = "" if c["verdict"] == "healthy" else f"\n{c['verdict']}"
                    dark = text == "diverged" or (which == "ratio" and abs(data[i, j]) > 3.5)
                    ax.text(j, i, text + mark, ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")
        masked = np.ma.masked_invalid(data)
        ax.set_facecolor("dimgray")  # diverged / missing cells
        image = ax.imshow(masked, cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(depths)), [str(d) for d in depths])
        ax.set_xlabel("depth (layers)")
        ax.set_title("plain" if shortcut == "plain" else "residual", fontsize=10)
        ax.set_yticks(range(len(variants)), variants)
    axes[0].set_ylabel("norm / activation / init")
    fig.colorbar(image, ax=list(axes), shrink=0.9, label=label)
    s = result["settings"]
    fig.suptitle(f"{title}\n{s['data']} {s['image_size']}px, batch {s['batch_size']}, {counted(s['steps'], 'step')} "
                 f"at lr {s['lr']:g}, median of {counted(len(s['seeds']), 'seed')}", fontsize=9)
    return fig


def plot_survey(result: dict, out_dir: str | Path, formats=("png", "svg")) -> dict[str, list[Path]]:
    """Write the two heat maps (gradient ratio, loss drop) as PNG and SVG into ``out_dir``;
    returns ``{"ratio": [paths], "loss": [paths]}``."""
    return {which: save_figure(_draw(result, which), Path(out_dir) / stem, formats)
            for which, (stem, _, _) in HEATMAPS.items()}

