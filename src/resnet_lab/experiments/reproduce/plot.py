"""The Table 6 training curves in the paper's Fig. 6 style: per depth one colour, thin line the
training error, bold line the test error, error (%) against iterations. Imported when drawing only."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from ...plotting import SERIES_COLOURS, save_figure


def mean_curve(runs: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and the mean over seeds of ``key`` at each evaluated point (seeds share their steps)."""
    points = [[p for p in r["curve"] if p[key] is not None] for r in runs]
    n = min(len(p) for p in points)
    return ([p["step"] for p in points[0][:n]],
            [sum(p[i][key] for p in points) / len(points) for i in range(n)])


def table6_figure(result: dict) -> Figure:
    fig = Figure(figsize=(7, 4.4))
    ax = fig.subplots()
    for i, d in enumerate(result["depths"]):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        x, y = mean_curve(d["runs"], "train_error")
        ax.plot(x, y, color=colour, linewidth=0.8, marker="." if len(x) < 3 else None)
        x, y = mean_curve(d["runs"], "test_error")
        ax.plot(x, y, color=colour, linewidth=2.4, marker="o" if len(x) < 3 else None, label=d["model"])
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_title("CIFAR-10, recipe paper: thin = training error, bold = test error")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_table6(result: dict, path: str | Path) -> tuple[Path, Path]:
    """Write the curves as PNG and SVG (the suffix of ``path`` is replaced)."""
    png, svg = save_figure(table6_figure(result), Path(path).with_suffix(""), dpi=130)
    return png, svg
