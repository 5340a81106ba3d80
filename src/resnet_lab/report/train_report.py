"""The report of one `resnet-lab train` run: curves, gradient flow, settings."""

from __future__ import annotations

from pathlib import Path

from .html import Report
from .meta import run_metadata

TIMING_NAMES = {"startup_s": "start-up (imports)", "setup_s": "setup (data, model)", "train_s": "training steps",
                "eval_s": "evaluation", "bookkeeping_s": "checkpoints and records", "report_s": "report"}


def format_timings(timings: dict) -> str:
    """'12.3 s: start-up (imports) 2.9 s, setup (data, model) 1.2 s, ...' (unknown parts left out)."""
    known = {k: v for k, v in timings.items() if v is not None}
    parts = ", ".join(f"{TIMING_NAMES.get(k, k)} {v:.1f} s" for k, v in known.items())
    return f"{sum(known.values()):.1f} s: {parts}"


def write_train_report(result, config, path: str | Path, device="cpu") -> Path:
    """Write ``report.html`` for a finished (or stopped) run from its ``TrainResult``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    history = result.history
    info = result.data_info
    report = Report(f"Training {config.model}", info["description"])
    elapsed = history[-1]["elapsed_s"] if history else 0.0
    report.set_meta(settings={k: v for k, v in config.to_dict().items() if k not in ("out",)},
                    data=info["description"], seeds=config.seed, run_time_s=elapsed, **run_metadata(device))
    if history:
        last = history[-1]
        findings = [
            f"final {info['eval_split']} accuracy {last['test_acc']:.2%} (best {result.best_acc:.2%}) "
            f"after {len(history)} epochs, {result.steps} steps",
            f"final training accuracy {last['train_acc']:.2%}, training loss {last['train_loss']:.4f}",
            f"throughput {last['images_per_s']:,.0f} images/s on {device}",
        ]
        if last.get("ema_test_acc") is not None:
            findings.insert(1, f"weight average (--ema {config.ema:g}): final {info['eval_split']} accuracy "
                               f"{last['ema_test_acc']:.2%}")
        if last.get("tta_test_acc") is not None:
            findings.insert(1, f"flip test-time augmentation (--tta, reported apart): final {info['eval_split']} "
                               f"accuracy {last['tta_test_acc']:.2%}")
        if result.timings:
            findings.append(f"training time: {format_timings(result.timings)}")
        if "gradients" in last:
            findings.append(f"gradient monitor: {last['gradients']['verdict']}: {last['gradients']['reason']}")
        report.add_findings(findings)

        fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(10, 3.8))
        epochs = [r["epoch"] for r in history]
        ax_loss.plot(epochs, [r["train_loss"] for r in history], lw=2, label="train")
        evaluated = [r for r in history if r["test_acc"] is not None]  # the fast recipe skips some epochs
        ax_loss.plot([r["epoch"] for r in evaluated], [r["test_loss"] for r in evaluated], lw=1, ls="--", marker=".",
                     label=info["eval_split"])
        ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
        ax_err.plot(epochs, [100 * (1 - r["train_acc"]) for r in history], lw=2, label="train")
        ax_err.plot([r["epoch"] for r in evaluated], [100 * (1 - r["test_acc"]) for r in evaluated], lw=1, ls="--",
                    marker=".", label=info["eval_split"])
        if evaluated and evaluated[-1].get("ema_test_acc") is not None:  # trained with --ema
            ax_err.plot([r["epoch"] for r in evaluated], [100 * (1 - r["ema_test_acc"]) for r in evaluated], lw=1,
                        ls=":", marker=".", label=f"{info['eval_split']}, weight average")
        ax_err.set(xlabel="epoch", ylabel="error (%)", title="Error")
        for ax in (ax_loss, ax_err):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        report.add_figure(fig, "Bold: training; dashed: evaluation split.")
        plt.close(fig)

        flows = {f"epoch {r['epoch']}": r["gradients"]["groups"] for r in history
                 if r.get("gradients", {}).get("groups")}
        if flows:
            from ..diagnostics import plot_gradient_flow

            keep = dict(list(flows.items())[:: max(1, len(flows) // 5)])  # at most ~5 lines
            # SVG only: the report embeds it, and a PNG beside it doubled the drawing time.
            paths = plot_gradient_flow(keep, Path(path).with_name("gradient_flow"), title="Gradient flow",
                                       formats=["svg"])
            report.add_figure(paths[0],
                              "Gradient L2 norm per layer group (stem = 0) at the end of epochs.")
        columns = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "ema_test_acc",
                   "tta_test_acc", "lr", "images_per_s", "time_s")
        report.add_table([{k: r[k] for k in columns if k in r} for r in history],
                         caption="Per-epoch metrics (metrics.jsonl)")
    if result.events:
        report.add_table(result.events,
                         caption="Events (non-finite values, skipped steps, fp16 overflow steps, CUDA-graph fallback)")
    return report.write(path)
