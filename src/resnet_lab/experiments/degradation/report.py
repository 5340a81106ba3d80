"""Outputs of the degradation experiment: ``results.json``, the figures and ``report.html``.

``write_degradation_outputs(result, out_dir)`` writes, in ``out_dir``:

* ``results.json``: ``run_degradation``'s result (atomically);
* ``degradation.png`` / ``.svg``: the paper-style figure (plain left, ResNet right);
* ``gradient_flow.png`` / ``.svg``: gradient norm vs depth at the last snapshot;
* ``report.html``: one self-contained page: the findings first, the run's settings, data,
  seeds, hardware, library versions and run time, a table per network, the figures and the raw
  JSON (collapsed).
"""

from __future__ import annotations

import json
from pathlib import Path

from ...files import atomic_write_text, output_folder
from ...report import Report, run_metadata
from ...text import counted, percent
from .table import eval_split, shortcut_of, with_spread


def network_rows(result: dict) -> list[dict]:
    """One row per network for tables: params, final errors (± spread over seeds), time."""
    return [{"model": n["model"], "depth": n["depth"], "shortcut": shortcut_of(n), "params": n["params"],
             "final_train_error": with_spread(n, "final_train_error"),
             "final_test_error": with_spread(n, "final_test_error"),
             "best_test_error": percent(min(n["test_error"]), 2) if n["test_error"] else None,
             "time_s": round(n["time_s"], 1)} for n in result["networks"]]


def table_columns(split: str) -> list[tuple[str, str]]:
    return [("model", "network"), ("depth", "depth"), ("shortcut", "shortcut"), ("params", "params"),
            ("final_train_error", "train error"), ("final_test_error", f"{split} error"),
            ("best_test_error", f"best {split} error"), ("time_s", "time (s)")]


def write_degradation_outputs(result: dict, out_dir: str | Path, lead: tuple[str, list[str]] | None = None
                              ) -> dict[str, Path]:
    """Write results.json, degradation.png/.svg, gradient_flow.png/.svg and report.html in ``out_dir``;
    return their paths by name (``results``, ``figure``, ``figure_svg``, ``gradients``, ``gradients_svg``,
    ``report``; no ``gradients*`` without gradient snapshots). ``lead``: (title, sentences) shown
    first in the report, e.g. a reproduction's verdict on the same numbers."""
    from .plot import plot_degradation, plot_degradation_gradients

    out = output_folder(out_dir, "results.json", "degradation experiment", result.get("experiment"))
    paths: dict[str, Path] = {"results": out / "results.json"}
    atomic_write_text(paths["results"], json.dumps(result, indent=2, default=str) + "\n")
    png, svg = plot_degradation(result, out / "degradation.png")
    paths["figure"], paths["figure_svg"] = png, svg
    grad = plot_degradation_gradients(result, out / "gradient_flow.png")
    if grad:
        paths["gradients"], paths["gradients_svg"] = grad
    paths["report"] = write_report(result, out / "report.html", figures=report_figures(paths), lead=lead)
    return paths


def report_figures(paths: dict[str, Path]) -> dict[str, Path | None]:
    """The figures a report embeds (``training``, ``gradients``: SVG), from the paths
    ``write_degradation_outputs`` returned."""
    return {"training": paths["figure_svg"], "gradients": paths.get("gradients_svg")}


def write_report(result: dict, path: str | Path, figures: dict | None = None,
                 lead: tuple[str, list[str]] | None = None) -> Path:
    """The self-contained HTML report; ``figures`` are image files to embed (drawn here if absent);
    ``lead``: (title, sentences) shown before the experiment's own findings."""
    s = result["settings"]
    seeds = s.get("seeds", [])
    report = Report("Degradation: plain vs residual networks",
                    subtitle=f"depths {', '.join(map(str, s['depths']))} on {s['data_description']}, "
                             f"{counted(len(seeds), 'seed')}, recipe {s['recipe']}")
    meta = run_metadata(s.get("device", "cpu"))
    meta["hardware"] = {**meta["hardware"], **{k: v for k, v in result.get("hardware", {}).items()
                                               if k not in meta["versions"]}}
    train = s.get("train", {})
    settings = {"depths": " ".join(map(str, s["depths"])), "ResNet shortcuts": s.get("shortcut", "A"),
                "recipe": s["recipe"],
                "epochs": s.get("epochs_run"), "steps per epoch": s.get("steps_per_epoch"),
                "total steps": s.get("total_steps"), "batch size": train.get("batch_size"),
                "lr (effective)": s.get("effective_lr"), "schedule": train.get("schedule"),
                "warm-up": train.get("warmup"), "optimizer": train.get("optimizer"),
                "momentum": train.get("momentum"), "nesterov": train.get("nesterov"),
                "weight decay": train.get("weight_decay"), "augment": train.get("augment"),
                "precision": train.get("precision"), "device": s.get("device"),
                "curve points every (steps)": s.get("log_every"),
                "gradient snapshots at epochs": " ".join(map(str, s.get("snapshot_epochs", []))) or "none"}
    if train.get("model_options"):
        settings["model options"] = train["model_options"]
    data = s["data_description"] if s["data_description"].startswith(s["data"]) else \
        f"{s['data_description']} (from {s['data']})"
    report.set_meta(settings=settings, data=f"{data}; errors on the {s.get('eval_split', 'test')} split",
                    seeds=seeds, run_time_s=result["run_time_s"], **meta)
    if lead:
        report.add_findings(lead[1], title=lead[0])
    add_degradation_section(report, result, figures, heading=None)
    report.add_section("Raw data")
    report.add_json(result, caption="results.json")
    return report.write(path)


def add_degradation_section(report, result: dict, figures: dict | None = None,
                            heading: str | None = "Degradation: plain vs residual networks") -> None:
    """Findings, final errors, training curves and gradient flow, as one report section."""
    if heading:
        report.add_section(heading)
    seeds = result["settings"].get("seeds", [])
    f = result["findings"]
    verdict = ("Degradation showed up in this run." if f["degradation_observed"]
               else "Degradation did not (fully) show up in this run.")
    report.add_findings(f["text"], title=f"Findings: {verdict}")

    report.add_heading("Final errors")
    report.add_paragraph("Errors at the last epoch; training error is the running error over the last epoch's "
                         "(augmented) training batches, as in the paper's curves. "
                         + ("Values are means over seeds ± the sample standard deviation."
                            if len(seeds) > 1 else "One seed: no spread."))
    report.add_table(network_rows(result), table_columns(eval_split(result)))

    report.add_heading("Training curves")
    figures = figures or {}
    training = figures.get("training")
    if training is None:
        from .plot import degradation_figure

        training = degradation_figure(result)
    report.add_figure(training, caption="Plain nets (left) and ResNets (right): bold solid lines are training error, "
                                        f"thin dashed lines {eval_split(result)} error (He et al. 2015, Fig. 1 "
                                        "and Fig. 6 style).")
    report.add_table(_epoch_rows(result), caption=f"Error per epoch (%, mean over seeds): train / {eval_split(result)}")

    report.add_heading("Gradient flow")
    gradients = figures.get("gradients")
    if gradients is None:
        from .plot import gradient_figure

        gradients = gradient_figure(result)
    if gradients is not None:
        report.add_figure(gradients, caption="Gradient L2 norm per layer group at the last snapshot "
                                             "(end of the epoch's last monitored step), plain dashed, residual solid.")
        report.add_table(_gradient_rows(result), caption="Gradient norms at each snapshot: first layer group "
                                                         "(stem), last (classifier), whole model; mean over seeds")
    else:
        report.add_paragraph("No gradient snapshots were recorded (the gradient monitor was off).")


def _epoch_rows(result: dict) -> list[dict]:
    nets = result["networks"]
    n = max(len(net["train_error"]) for net in nets)
    rows = []
    for i in range(n):
        row = {"epoch": i + 1}
        for net in nets:
            if i < len(net["train_error"]):
                row[net["model"]] = f"{100 * net['train_error'][i]:.1f} / {100 * net['test_error'][i]:.1f}"
        rows.append(row)
    return rows


def _gradient_rows(result: dict) -> list[dict]:
    rows = []
    for net in result["networks"]:
        for snap in net.get("gradient_flow") or []:
            groups = snap["groups"]
            rows.append({"network": net["model"], "epoch": snap["epoch"], "step": snap["step"],
                         "stem": groups[0]["grad_norm"] if groups else None,
                         "classifier": groups[-1]["grad_norm"] if groups else None,
                         "whole model": snap.get("global_grad_norm"),
                         "monitor verdict": ", ".join(sorted(set(v for v in snap.get("verdicts", []) if v)))})
    return rows
