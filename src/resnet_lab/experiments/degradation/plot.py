"""Figures of the degradation experiment, in the style of He et al. (2015) Fig. 1 and Fig. 6.

``plot_degradation``: two panels, plain nets on the left, ResNets on the right; one colour per
depth; bold solid lines = training error, thin dashed lines = test error; error in %.
``plot_degradation_gradients``: per layer group gradient norm vs depth at the last snapshot,
plain (dashed) and residual (solid) overlaid, log scale.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display needed); kept apart
from ``run.py`` so that running the experiment never imports matplotlib.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ...plotting import SERIES_COLOURS, save_figure


def _train_curve(net: dict) -> tuple[list[float], list[float], list[float]]:
    """x (epochs), training error and its spread: the finer step curve if recorded, else per epoch."""
    rows = net.get("step_curve") or []
    if rows:
        return ([r["epoch"] for r in rows], [r["train_error"] for r in rows],
                [r.get("train_error_std", 0.0) for r in rows])
    n = len(net["train_error"])
    return (list(range(1, n + 1)), net["train_error"], net.get("train_error_std") or [0.0] * n)


def degradation_figure(result: dict) -> Figure:
    """The two-panel figure (not saved): plain left, ResNet right, shared error axis."""
    networks = result["networks"]
    depths = sorted({n["depth"] for n in networks})
    colour = {d: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, d in enumerate(depths)}
    settings = result.get("settings", {})
    fig = Figure(figsize=(11, 4.4))
    axes = fig.subplots(1, 2, sharey=True)
    top = 0.0
    ends = []  # (axes, x, y, label, colour) of each training curve's last point
    panels = ((axes[0], False, "plain networks"),
              (axes[1], True, f"ResNets (option {settings.get('shortcut', 'A')} shortcuts)"))
    for ax, shortcut, title in panels:
        for net in sorted((n for n in networks if n["shortcut"] == shortcut), key=lambda n: n["depth"]):
            c = colour[net["depth"]]
            label = f"{'ResNet' if shortcut else 'plain'}-{net['depth']}"
            x, y, s = _train_curve(net)
            y_pct = [100 * v for v in y]
            ax.plot(x, y_pct, "-", color=c, linewidth=2.4, label=f"{label} train")
            if len(net.get("seeds", [])) > 1 and any(s):
                ax.fill_between(x, [100 * (v - e) for v, e in zip(y, s)], [100 * (v + e) for v, e in zip(y, s)],
                                color=c, alpha=0.15, linewidth=0)
            epochs = list(range(1, len(net["test_error"]) + 1))
            test_pct = [100 * v for v in net["test_error"]]
            ax.plot(epochs, test_pct, "--", color=c, linewidth=1.0, marker="." if len(epochs) < 30 else None,
                    label=f"{label} test")
            top = max(top, max(y_pct + test_pct))
            ends.append((ax, x[-1], y_pct[-1], f"{net['depth']}-layer", c))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch" + (" (training error: running mean every "
                                 f"{settings['log_every']} steps)" if settings.get("log_every") else ""),
                      fontsize=8 if settings.get("log_every") else 10)
        ax.grid(True, alpha=0.3)
        ax.set_xlim(left=0)
    axes[0].set_ylabel("error (%)")
    ymax = min(100.0, top * 1.08 + 1)
    axes[0].set_ylim(0, ymax)
    _label_ends(ends, min_gap=0.05 * ymax)
    handles = [Line2D([], [], color=colour[d], linewidth=2.4, label=f"{d} layers") for d in depths]
    handles += [Line2D([], [], color="black", linewidth=2.4, label="training error"),
                Line2D([], [], color="black", linewidth=1.0, linestyle="--",
                       label=f"{settings.get('eval_split', 'test')} error")]
    axes[1].legend(handles=handles, fontsize=8, loc="upper right")
    seeds = settings.get("seeds", [])
    spread = f", mean of {len(seeds)} seeds (band: ± std)" if len(seeds) > 1 else ""
    fig.suptitle(f"Degradation: {settings.get('data_description', settings.get('data', ''))}, "
                 f"recipe {settings.get('recipe', '?')}{spread}", fontsize=10)
    fig.tight_layout()
    return fig


def _label_ends(ends: list[tuple], min_gap: float) -> None:
    """Label each curve at its end, as the paper does, nudging labels apart so none overlap."""
    for ax in {id(e[0]): e[0] for e in ends}.values():
        placed: list[float] = []
        for _, x, y, label, colour in sorted((e for e in ends if e[0] is ax), key=lambda e: e[2]):
            y_text = max(y, placed[-1] + min_gap) if placed else max(y, 0.5 * min_gap)  # clear of the x axis
            placed.append(y_text)
            ax.text(x, y_text, " " + label, color=colour, fontsize=8, va="center", ha="left",
                    fontweight="bold", clip_on=False)


def plot_degradation(result: dict, path: str | Path) -> list[Path]:
    """Draw :func:`degradation_figure` and write it as PNG and SVG; returns both paths."""
    return save_figure(degradation_figure(result), Path(path).with_suffix(""), dpi=130)


def gradient_figure(result: dict, snapshot: int = -1) -> Figure | None:
    """Gradient norm per layer group vs depth at one snapshot (default: the last) for every net;
    plain dashed, residual solid, one colour per depth, log scale. None without snapshots."""
    networks = result["networks"]
    depths = sorted({n["depth"] for n in networks})
    colour = {d: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, d in enumerate(depths)}
    fig = Figure(figsize=(9, 4.4))
    ax = fig.add_subplot()
    drawn = 0
    epoch = None
    for net in sorted(networks, key=lambda n: (n["depth"], n["shortcut"])):
        snaps = net.get("gradient_flow") or []
        if not snaps:
            continue
        snap = snaps[snapshot]
        epoch = snap["epoch"]
        points = sorted((g["depth_index"], g["grad_norm"]) for g in snap["groups"]
                        if g.get("grad_norm") is not None and g["grad_norm"] > 0)
        if not points:
            continue
        # Relative depth (0 = input, 1 = output) so nets of different depths share the x axis.
        last = max(p[0] for p in points) or 1
        ax.plot([p[0] / last for p in points], [p[1] for p in points], "-" if net["shortcut"] else "--",
                color=colour[net["depth"]], marker="o", markersize=2.5, linewidth=1.6 if net["shortcut"] else 1.2,
                label=f"{net['model']} (epoch {snap['epoch']})")
        drawn += 1
    if not drawn:
        return None
    ax.set_yscale("log")
    ax.set_xlabel("relative depth of the layer group (0 = stem, 1 = classifier)")
    ax.set_ylabel("gradient L2 norm (mean over seeds)")
    ax.set_title(f"Gradient flow at the {'last' if snapshot == -1 else 'chosen'} snapshot (epoch {epoch}): "
                 "plain dashed, residual solid", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_degradation_gradients(result: dict, path: str | Path, snapshot: int = -1) -> list[Path]:
    """Write :func:`gradient_figure` as PNG and SVG; returns the paths (none without snapshots)."""
    fig = gradient_figure(result, snapshot)
    return save_figure(fig, Path(path).with_suffix(""), dpi=130) if fig is not None else []
