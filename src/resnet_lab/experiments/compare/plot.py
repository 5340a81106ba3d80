"""The chart of a model comparison: accuracy against training throughput, marker area = memory.

Kept apart from ``run.py`` so that measuring never imports matplotlib.
"""

from __future__ import annotations

import math
from pathlib import Path


def plot_comparison(result: dict, path: str | Path) -> list[Path]:
    """Draw ``compare_models``' result; write ``path`` as PNG and SVG and return both paths.

    y is torchvision's published top-1 with each model's best weights or, when no model has one,
    the papers' CIFAR-10 test accuracy; models without the chosen figure are left out (named in a
    note under the plot). When no model has either, y is GFLOPs per image.
    Marker area is proportional to peak training memory.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ...plotting import save_figure

    rows = result["models"]
    settings = result["settings"]
    imagenet = [r for r in rows if r.get("reference_top1")]
    cifar = [r for r in rows if r.get("paper_cifar10")]
    shown = imagenet or cifar or rows
    left_out = [r["name"] for r in rows if r not in shown]

    def y_of(r):
        if imagenet:
            return max(r["reference_top1"].values())
        return r["paper_cifar10"] if cifar else r["gflops"]

    fig = Figure(figsize=(7, 4.8), dpi=120)  # no pyplot: nothing global changes, no window
    FigureCanvasAgg(fig)  # tight_layout measures the text
    ax = fig.subplots()
    _draw_models(ax, shown, y_of, biggest=max(r["peak_train_memory_mib"] for r in rows) or 1.0,
                 with_weights=bool(imagenet))
    ax.set_xlabel(f"training throughput (images/s, batch {settings['batch_size']}, "
                  f"{'/'.join(str(s) for s in sorted({r['input_size'] for r in shown}))} px, {settings['precision']})")
    ax.set_ylabel("ImageNet top-1 (%), torchvision weights" if imagenet
                  else "CIFAR-10 test accuracy (%), published (paper recipe)" if cifar
                  else "GFLOPs per image (no published accuracy)")
    hw = result.get("hardware", {})
    device = hw.get("gpu") or hw.get("cpu") or settings["device"]
    ax.set_title(f"Which model? measured on {device}", fontsize=10)
    _pad_limits(ax, [r["train_images_per_s"] for r in shown], [y_of(r) for r in shown])
    ax.grid(True, alpha=0.3)
    notes = ["marker area ~ peak training memory (" + settings["memory_method"].replace("_", " ") + ")"]
    if left_out:
        notes.append(f"no published accuracy, not shown: {', '.join(left_out)}")
    fig.text(0.01, 0.01, "; ".join(notes), fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))

    return save_figure(fig, Path(path).with_suffix(""))


def _draw_models(ax, shown: list[dict], y_of, biggest: float, with_weights: bool) -> None:
    """One marker per model (area ~ training memory), labelled right of it, alternately above and
    below (in order of x) so that neighbours with similar throughput do not print over each other."""
    for i, r in enumerate(sorted(shown, key=lambda r: r["train_images_per_s"])):
        x, y = r["train_images_per_s"], y_of(r)
        area = 80 + 1500 * r["peak_train_memory_mib"] / biggest  # area, not radius, scales with memory
        ax.scatter([x], [y], s=area, alpha=0.55, edgecolors="black", linewidths=0.8)
        label = r["name"]
        if with_weights:
            weights = max(r["reference_top1"], key=r["reference_top1"].get)
            label += f" ({weights})"
        label += f"\n{r['peak_train_memory_mib']:.0f} MiB, {r['latency_ms_batch1']:.1f} ms @ batch 1"
        radius = math.sqrt(area / math.pi)  # points
        above = i % 2 == 0
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(radius * 0.7 + 3, 6 if above else -6),
                    va="bottom" if above else "top", fontsize=8)


def _pad_limits(ax, xs, ys) -> None:
    """Room for the labels right of and above the markers, and sane limits for a single point."""
    for values, setter, right in ((xs, ax.set_xlim, 0.6), (ys, ax.set_ylim, 0.5)):
        lo, hi = min(values), max(values)
        span = (hi - lo) or max(abs(hi) * 0.2, 1e-3)
        setter(lo - 0.3 * span, hi + right * span)
