"""Text, Markdown, JSON, heat maps and the HTML report of a survey (``run_survey``'s result)."""

from __future__ import annotations

import json
from pathlib import Path

from ..report.text_table import format_table

# (key, header) of the table; the values are made by _rows.
COLUMNS = [("name", "cell"), ("grad_first", "grad first"), ("grad_last", "grad last"), ("ratio", "first/last"),
           ("verdict", "monitor"), ("loss_start", "loss start"), ("loss_end", "loss end"), ("drop", "drop"),
           ("steps_to_90", "->90%"), ("steps_to_half", "->50%"), ("outcome", "outcome"), ("time_s", "s")]


def _rows(result: dict) -> list[dict]:
    rows = []
    for c in result["cells"]:
        drop = None if c["loss_drop"] is None else f"{100 * c['loss_drop']:.0f}%".replace("-0%", "0%")
        rows.append({**c, "drop": drop, "grad_first": _g(c["grad_first"]), "grad_last": _g(c["grad_last"]),
                     "ratio": _g(c["ratio"]), "loss_start": _f(c["loss_start"]), "loss_end": _f(c["loss_end"]),
                     "time_s": round(c["time_s"], 1)})
    return rows


def _g(x):
    """Gradient norms span 30 orders of magnitude: 3 significant digits."""
    return None if x is None else float(f"{x:.3g}")


def _f(x):
    return None if x is None else round(x, 3)


def _mark(supported) -> str:
    return {True: "SUPPORTED", False: "CONTRADICTED", None: "NOT MEASURED"}[supported]


def claim_lines(result: dict) -> list[str]:
    """One line per claim: verdict, the claim, the evidence."""
    return [f"{_mark(c['supported'])}: {c['claim']}. Evidence: {c['evidence']}" for c in result["claims"]]


def survey_table(result: dict, markdown: bool = False) -> str:
    """The table of cells (one row per cell), for the terminal or (``markdown``) as Markdown."""
    return format_table(_rows(result), COLUMNS, markdown=markdown)


def _settings_line(result: dict) -> str:
    s, hw = result["settings"], result["hardware"]
    where = hw.get("gpu") or hw.get("cpu") or s["device"]
    batches = f"{s['batches_at_init']} batch{'es' if s['batches_at_init'] != 1 else ''}"
    return (f"{result['data']}, run at {s['image_size']}px; batch {s['batch_size']}, {s['steps']} SGD steps "
            f"(momentum {s['momentum']}) at lr {s['lr']:g}; gradients at init averaged over {batches}; "
            f"high lr {s['high_lr']:g} with clip_norm {s['clip_norm']:g}; seed {s['seed']}; "
            f"{len(result['cells'])} cells in {result['run_time_s']:.1f} s on {where} ({s['device']}, "
            f"{s['threads']} thread{'s' if s['threads'] != 1 else ''})")


def survey_text(result: dict) -> str:
    """The terminal output: table, settings, claims."""
    lines = [survey_table(result), "", _settings_line(result), "", "claims:"]
    lines += [f"- {line}" for line in claim_lines(result)]
    return "\n".join(lines)


def survey_markdown(result: dict) -> str:
    """A Markdown document: claims with evidence, design, table, rules."""
    r = result["settings"]["rules"]
    lines = ["# Training claims, measured", "", _settings_line(result) + ".", "", "## Claims", ""]
    for c in result["claims"]:
        lines.append(f"- **{_mark(c['supported'])}**: {c['claim']}. {c['evidence']}")
    lines += ["", "## Design", "", result["design"], "",
              f"Rules: loss end = mean of the last {r['loss_smooth']} step losses; *trained* = loss fell at least "
              f"{100 * r['trained_drop']:.0f}%; *diverged* = a non-finite value or the loss at least "
              f"{r['diverge_factor']:g}x its start; *within an order of magnitude* = 1/{r['order']:g} <= first/last "
              f"<= {r['order']:g}; *vanishing* = first/last < {r['vanish_ratio']:g} (the gradient monitor's "
              f"threshold).", "", "## Cells", "", survey_table(result, markdown=True), ""]
    return "\n".join(lines)


def build_report(result: dict, figures: dict | None = None):
    """The ``Report``: claims first, then the run facts (at the top via ``set_meta``), design,
    table, heat maps and the raw JSON (collapsed). ``figures``: ``{"ratio": path or Figure, "loss": ...}``."""
    from ..report import Report, run_metadata

    s = result["settings"]
    report = Report("Training claims, measured",
                    subtitle=f"{len(result['cells'])} cells, one switch at a time: depth x shortcut x norm x "
                             f"activation x init, plus a learning rate too high with and without clipping")
    settings = {k: v for k, v in s.items() if k not in ("seed", "rules")}
    settings.update({f"rule {k}": v for k, v in s["rules"].items()})
    report.set_meta(settings=settings, data=f"{result['data']} (run at {s['image_size']}px)", seeds=[s["seed"]],
                    run_time_s=result["run_time_s"], **run_metadata(s["device"]))
    add_survey_section(report, result, figures, heading=None)
    report.add_json(result, caption="Raw data (survey.json)")
    return report


def add_survey_section(report, result: dict, figures: dict | None = None, heading: str | None = "Survey") -> None:
    """Claims with their evidence, the design, heat maps and the cell table, as report sections."""
    if heading:
        report.add_section(heading)
    report.add_findings([f"{_mark(c['supported'])}: {c['claim']}. {c['evidence']}" for c in result["claims"]],
                        title="Claims and the measurements behind them")
    report.add_heading("Design")
    report.add_paragraph(result["design"])
    report.add_paragraph(
        "Each claim is judged from the cells by a fixed rule (see resnet_lab.experiments.survey.judge_claims); "
        "a contradicted claim is a result, not an error: short runs on a small data set measure what happens "
        "in the first steps of training.")
    report.add_heading("Heat maps")
    if figures:
        captions = {"ratio": "First/last block gradient norm at initialisation (log colour scale; blue: the "
                             "gradient vanishes towards the input, red: it grows; the monitor's verdict is "
                             "written where it is not healthy).",
                    "loss": "Relative drop of the loss in the short run (grey: diverged)."}
        for which, fig in figures.items():
            report.add_figure(fig, caption=captions.get(which))
    report.add_heading("Cells")
    report.add_table(_rows(result), columns=[(k, h) for k, h in COLUMNS])


def write_survey_outputs(result: dict, out_dir: str | Path) -> dict[str, list[Path] | Path]:
    """Write ``survey.json`` (atomically), ``survey.md``, the heat maps (PNG + SVG) and ``report.html``
    (self-contained: the PNG heat maps embedded) into ``out_dir``; returns the written paths."""
    from ..files import atomic_write_text
    from .survey_plot import plot_survey

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path, html_path = out_dir / "survey.json", out_dir / "survey.md", out_dir / "report.html"
    atomic_write_text(json_path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, survey_markdown(result))
    plots = plot_survey(result, out_dir)
    figures = {which: next(p for p in paths if p.suffix == ".png") for which, paths in plots.items()}
    build_report(result, figures).write(html_path)
    return {"json": json_path, "markdown": md_path, "html": html_path,
            "plots": [p for paths in plots.values() for p in paths]}
