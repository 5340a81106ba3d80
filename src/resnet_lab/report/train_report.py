"""The report of one `resnet-lab train` run: curves, gradient flow, settings.

Drawn from the run directory alone (``write_run_report``), so that it can be drawn after the
command has exited (``--report background``) or again later (``resnet-lab report RUN_DIR``).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from ..text import counted
from .html import Report
from .meta import metadata_from
from .run_record import RunRecord, read_run

TIMING_NAMES = {"startup_s": "start-up (imports)", "setup_s": "setup (data, model)", "train_s": "training steps",
                "eval_s": "evaluation", "bookkeeping_s": "checkpoints and records", "report_s": "report"}


def format_timings(timings: dict) -> str:
    """'12.3 s: start-up (imports) 2.9 s, setup (data, model) 1.2 s, ...' (unknown parts left out)."""
    known = {k: v for k, v in timings.items() if v is not None}
    parts = ", ".join(f"{TIMING_NAMES.get(k, k)} {v:.1f} s" for k, v in known.items())
    return f"{sum(known.values()):.1f} s: {parts}"


def write_run_report(run_dir: str | Path) -> Path:
    """Draw ``run_dir/report.html`` from the run directory alone (see ``run_record.py``) and return
    its path: for a finished run, a stopped one, or one still training (its records so far)."""
    run = read_run(run_dir)
    run_dir = Path(run_dir)
    info, history = run.data_info, run.history
    report = Report(f"Training {run.settings['model']}", info["description"])
    report.set_meta(settings={k: v for k, v in run.settings.items() if k != "out"}, data=info["description"],
                    seeds=run.settings["seed"], run_time_s=_run_time_s(run),
                    no_run_time=_no_run_time(run), **metadata_from(run.hardware))
    findings = _findings(run)
    if findings:
        report.add_findings(findings)
    if history:
        report.add_figure(_curves(history, info["eval_split"]), "Bold: training; dashed: evaluation split.")
        flow = _gradient_flow(history, run_dir / "gradient_flow")
        if flow is not None:
            report.add_figure(flow, "Gradient L2 norm per layer group (stem = 0) at the end of epochs.")
        report.add_table([{k: r[k] for k in _COLUMNS if k in r} for r in history],
                         caption="Per-epoch metrics (metrics.jsonl)")
    if run.events:
        report.add_table(run.events,
                         caption="Events (non-finite values, skipped steps, fp16 overflow steps, CUDA-graph fallback)")
    return report.write(run_dir / "report.html")


_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "ema_test_acc", "tta_test_acc", "lr",
            "images_per_s", "time_s")


def _resumed(run: RunRecord) -> bool:
    """Trained by more than one process: as result.json counts them, else a stop in its events or a
    clock that starts again (a SIGKILL)."""
    if run.processes is not None:
        return run.processes > 1
    elapsed = [r["elapsed_s"] for r in run.history if r.get("elapsed_s") is not None]
    stopped_then_finished = run.finished and any(e.get("kind") == "interrupted" for e in run.events)
    clock_restarted = any(later < earlier for earlier, later in zip(elapsed, elapsed[1:]))
    return stopped_then_finished or clock_restarted


def _no_run_time(run: RunRecord) -> str:
    """What the header says instead of a run time: none recorded, or a resumed run's from a version
    that kept no time across its processes."""
    if not _resumed(run):
        return "not recorded (no epoch ended)"
    last = _last_process_s(run)
    return ("not recorded whole (resumed: earlier processes are not counted"
            + (f"; the last one took {last:.1f} s)" if last is not None else ")"))


def _run_time_s(run: RunRecord) -> float | None:
    """The whole run's time (over its processes); for a resumed run that kept none, None."""
    if run.run_time_s is not None:
        return run.run_time_s
    return None if _resumed(run) else _last_process_s(run)


def _last_process_s(run: RunRecord) -> float | None:
    """The last process's time: the findings' total for a finished run; else its epochs' so far."""
    if run.timings:
        return sum(v for v in run.timings.values() if v is not None)
    return run.history[-1]["elapsed_s"] if run.history else None


def _time_line(run: RunRecord) -> str:
    """The findings' time line: the last process's timings and, for a resumed run, the whole run's."""
    timings = (f"from setup to the last record (start-up and drawing this report: see timings.json): "
               f"{format_timings(run.timings)}")
    if not _resumed(run):
        return f"time {timings}"
    if run.run_time_s is None:
        return f"time of the last process (the run was resumed: earlier ones are not counted), {timings}"
    return (f"time {run.run_time_s:.1f} s over {run.processes} processes (each earlier one counted up to its last "
            f"checkpoint); the last process, {timings}")


def _unfinished(run) -> str:
    """Why a run has no result: the stop its events name, else stopped or still training."""
    recorded = f"its records up to step {run.steps}" if run.history else "no epoch recorded"
    stop = next((e for e in reversed(run.events) if e.get("kind") in ("nonfinite", "interrupted")), None)
    if stop is None:
        return f"not finished: {recorded} (it stopped, or is still training; see the events)"
    if stop["kind"] == "interrupted":
        return f"not finished: interrupted at step {stop['step']} ({stop.get('detail', 'no detail')}); {recorded}"
    if run.settings.get("on_nonfinite") == "warn":  # the policy let it go on; it ended non-finite
        return f"ended at step {stop['step']} with non-finite values (--on-nonfinite warn; see the events); {recorded}"
    return f"stopped at step {stop['step']} by the non-finite policy (see the events); {recorded}"


def _findings(run: RunRecord) -> list[str]:
    """The headline lines: accuracy, the weight average and TTA beside it, speed, time, gradients."""
    history, split = run.history, run.data_info["eval_split"]
    findings = [] if run.finished else [_unfinished(run)]
    if not history:
        return findings
    last = history[-1]
    evaluated = [r for r in history if r["test_acc"] is not None]
    if evaluated:
        at = "final" if evaluated[-1] is last else f"epoch {evaluated[-1]['epoch']}"
        best = f" (best {run.best_acc:.2%})" if run.best_acc is not None else ""
        findings.append(f"{at} {split} accuracy {evaluated[-1]['test_acc']:.2%}{best} "
                        f"after {counted(len(history), 'epoch')}, {counted(run.steps, 'step')}")
    if last.get("tta_test_acc") is not None:
        findings.append(f"flip test-time augmentation (--tta, reported apart): final {split} accuracy "
                        f"{last['tta_test_acc']:.2%}")
    if last.get("ema_test_acc") is not None:
        findings.append(f"weight average (--ema {run.settings['ema']:g}): final {split} accuracy "
                        f"{last['ema_test_acc']:.2%}")
    findings += [f"final training accuracy {last['train_acc']:.2%}, training loss {last['train_loss']:.4f}",
                 f"throughput {_median_throughput(history):,.0f} images/s on {run.devices}"
                 f"{' (median of the epochs)' if len(history) > 1 else ''}"]
    if run.timings:
        findings.append(_time_line(run))
    if "gradients" in last:
        findings.append(f"gradient monitor: {last['gradients']['verdict']}: {last['gradients']['reason']}")
    return findings


def _median_throughput(history: list[dict]) -> float:
    """Training images/s of a typical epoch: the first pays warm-up and the last may be a few steps."""
    return statistics.median(r["images_per_s"] for r in history)


def _curves(history: list[dict], split: str):
    """Loss and error per epoch: training bold, the evaluation split dashed (and its weight average)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))  # no pyplot: nothing global changes
    FigureCanvasAgg(fig)
    ax_loss, ax_err = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    evaluated = [r for r in history if r["test_acc"] is not None]  # the fast recipe skips some epochs
    eval_epochs = [r["epoch"] for r in evaluated]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], lw=2, label="train")
    ax_loss.plot(eval_epochs, [r["test_loss"] for r in evaluated], lw=1, ls="--", marker=".", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_err.plot(epochs, [100 * (1 - r["train_acc"]) for r in history], lw=2, label="train")
    ax_err.plot(eval_epochs, [100 * (1 - r["test_acc"]) for r in evaluated], lw=1, ls="--", marker=".", label=split)
    if evaluated and evaluated[-1].get("ema_test_acc") is not None:  # trained with --ema
        ax_err.plot(eval_epochs, [100 * (1 - r["ema_test_acc"]) for r in evaluated], lw=1, ls=":", marker=".",
                    label=f"{split}, weight average")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="Error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _gradient_flow(history: list[dict], stem: Path) -> Path | None:
    """``gradient_flow.svg`` from the per-epoch gradient norms in metrics.jsonl, at most ~5 lines."""
    flows = {f"epoch {r['epoch']}": r["gradients"]["groups"] for r in history if r.get("gradients", {}).get("groups")}
    if not flows:
        return None
    from ..diagnostics import plot_gradient_flow

    keep = dict(list(flows.items())[:: max(1, len(flows) // 5)])
    # SVG only: the report embeds it, and a PNG beside it doubled the drawing time.
    return plot_gradient_flow(keep, stem, title="Gradient flow", formats=["svg"])[0]
