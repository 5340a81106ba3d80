"""The files of a survey (``run_survey``'s result): JSON, Markdown, the heat maps and the HTML report.

``write_survey_outputs(result, out_dir)`` writes them all and returns their paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from .table import COLUMNS, cell_rows, claim_lines, settings_line, survey_table


# How a verdict comes from several seeds (findings.decide), for readers of the outputs.
VERDICT_RULE = (
    "Verdicts: every cell is measured with several seeds; a claim is SUPPORTED only if it holds in every "
    "seed (for \"A beats B\": every seed of A against every seed of B, so the difference must exceed the "
    "seeds' spread), CONTRADICTED only if it fails in every seed, otherwise INCONCLUSIVE at this budget. "
    "Numbers are medians over the seeds with their min..max.")


def survey_markdown(result: dict) -> str:
    """A Markdown document: claims with evidence, design, table, rules."""
    r = result["settings"]["rules"]
    lines = ["# Training claims, measured", "", settings_line(result) + ".", "", "## Claims", ""]
    lines += [f"- {line}" for line in claim_lines(result, evidence="", bold=True)]
    lines += ["", "## Design", "", result["design"], "",
              f"Rules: loss end = mean of the last {r['loss_smooth']} step losses; *trained* = loss fell at least "
              f"{100 * r['trained_drop']:.0f}%; *diverged* = a non-finite value or the loss at least "
              f"{r['diverge_factor']:g}x its start; *within an order of magnitude* = 1/{r['order']:g} <= first/last "
              f"<= {r['order']:g}; *vanishing* = first/last < {r['vanish_ratio']:g} (the gradient monitor's "
              f"threshold).", "", VERDICT_RULE, "", "## Cells", "", survey_table(result, markdown=True), ""]
    return "\n".join(lines)


def build_report(result: dict, figures: dict | None = None):
    """The ``Report``: claims first, then the run facts (at the top via ``set_meta``), design,
    table, heat maps and the raw JSON (collapsed). ``figures``: ``{"ratio": path or Figure, "loss": ...}``."""
    from ...report import Report, run_metadata

    s = result["settings"]
    report = Report("Training claims, measured",
                    subtitle=f"{len(result['cells'])} cells, one switch at a time: depth x shortcut x norm x "
                             f"activation x init, plus a learning rate too high with and without clipping")
    settings = {k: v for k, v in s.items() if k not in ("seeds", "rules")}
    settings.update({f"rule {k}": v for k, v in s["rules"].items()})
    report.set_meta(settings=settings, data=f"{result['data']} (run at {s['image_size']}px)", seeds=s["seeds"],
                    run_time_s=result["run_time_s"], **run_metadata(s["device"]))
    add_survey_section(report, result, figures, heading=None)
    report.add_json(result, caption="Raw data (survey.json)")
    return report


def add_survey_section(report, result: dict, figures: dict | None = None, heading: str | None = "Survey") -> None:
    """Claims with their evidence, the design, heat maps and the cell table, as report sections."""
    if heading:
        report.add_section(heading)
    report.add_findings(claim_lines(result, evidence=""), title="Claims and the measurements behind them")
    report.add_heading("Design")
    report.add_paragraph(result["design"])
    report.add_paragraph(
        "Each claim is judged from the cells by a fixed rule (see resnet_lab.experiments.survey.judge_claims); "
        "a contradicted claim is a result, not an error: short runs on a small data set measure what happens "
        "in the first steps of training. " + VERDICT_RULE)
    report.add_heading("Heat maps")
    if figures:
        captions = {"ratio": "First/last block gradient norm at initialisation (log colour scale; blue: the "
                             "gradient vanishes towards the input, red: it grows; the monitor's verdict is "
                             "written where it is not healthy).",
                    "loss": "Relative drop of the loss in the short run (grey: diverged)."}
        for which, fig in figures.items():
            report.add_figure(fig, caption=captions.get(which))
    report.add_heading("Cells")
    report.add_table(cell_rows(result), columns=[(k, h) for k, h in COLUMNS])


def write_survey_outputs(result: dict, out_dir: str | Path) -> dict[str, Path | list[Path] | dict[str, Path]]:
    """Write ``survey.json`` (atomically), ``survey.md``, the heat maps (PNG + SVG) and ``report.html``
    (self-contained: the PNG heat maps embedded) into ``out_dir``; returns the written paths: ``json``,
    ``markdown``, ``html``, ``plots`` (every heat map file) and ``figures`` (the PNG of each heat map,
    by name, as a report embeds them)."""
    from ...files import atomic_write_text, output_folder
    from .plot import plot_survey

    out_dir = output_folder(out_dir, "survey.json", "survey")
    json_path, md_path, html_path = out_dir / "survey.json", out_dir / "survey.md", out_dir / "report.html"
    atomic_write_text(json_path, json.dumps(result, indent=2, allow_nan=False) + "\n")
    atomic_write_text(md_path, survey_markdown(result))
    plots = plot_survey(result, out_dir)
    figures = {which: next(p for p in paths if p.suffix == ".png") for which, paths in plots.items()}
    build_report(result, figures).write(html_path)
    return {"json": json_path, "markdown": md_path, "html": html_path,
            "plots": [p for paths in plots.values() for p in paths], "figures": figures}
