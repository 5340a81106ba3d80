"""Outputs of the reproductions.

``write_table6_outputs(result, out)``: ``results.json``, ``table6.md``, ``table6.png``/``.svg``
(the curves) and ``report.html``. ``write_fig6_outputs(result, out)``: the degradation outputs
(results.json with ``reproduce``, figures, report.html), the Fig. 6 verdict shown first.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...files import atomic_write_text, output_folder
from ...report import Report, run_metadata
from ...text import counted
from ..degradation import write_degradation_outputs
from .table import COLUMNS, table6_rows, table6_text


def write_table6_outputs(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write the files; return their paths (``results``, ``table``, ``figure``, ``figure_svg``, ``report``)."""
    from .plot import plot_table6

    out = output_folder(out_dir, "results.json", "Table 6 reproduction", result.get("experiment"))
    paths = {"results": out / "results.json", "table": out / "table6.md"}
    atomic_write_text(paths["results"], json.dumps(result, indent=2, default=str) + "\n")
    atomic_write_text(paths["table"], "# Table 6 (CIFAR-10 test error)\n\n" + table6_text(result, markdown=True)
                      + "\n")
    paths["figure"], paths["figure_svg"] = plot_table6(result, out / "table6.png")
    paths["report"] = _table6_report(result, paths["figure_svg"]).write(out / "report.html")
    return paths


def _table6_report(result: dict, figure: Path) -> Report:
    s = result["settings"]
    budget = counted(s['steps'], 'step') + ("" if s["papers_budget"] else " (not the paper schedule)")
    report = Report("Table 6: CIFAR-10 test error of the CIFAR ResNets",
                    subtitle=f"recipe paper, {budget}, seeds {' '.join(map(str, s['seeds']))}")
    meta = run_metadata(result["hardware"].get("device", "cpu"))
    meta["hardware"] = {**meta["hardware"], **result["hardware"]}
    report.set_meta(settings={"depths": " ".join(map(str, s["depths"])), "recipe": "paper", "steps": s["steps"],
                              "paper's steps": s["paper_steps"], "jobs": s["jobs"], "devices": " ".join(s["devices"]),
                              "date": result["date"]},
                    data=f"{s['data_description']} (from {s['data']}); errors on the whole test split, at the end "
                         "of training",
                    seeds=s["seeds"], run_time_s=result["run_time_s"], **meta)
    report.add_findings(result["findings"]["text"], title="Findings")
    report.add_table(table6_rows(result), COLUMNS,
                     caption="Test error (%) at the end of training (never the best epoch); ours: mean ± sample std "
                             "over seeds. akamaster: akamaster/pytorch_resnet_cifar10, from its README.")
    report.add_figure(figure, caption="Training curves in the paper's style: thin lines training error, bold lines "
                                      "test error (mean over seeds), one colour per depth.")
    report.add_section("Raw data")
    report.add_json(result, caption="results.json")
    return report


def write_fig6_outputs(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """The degradation experiment's files, its report led by the two halves of the paper's pattern."""
    r = result["reproduce"]
    budget = "the paper's schedule" if r["papers_budget"] else f"{counted(r['steps'], 'step')}, not the paper schedule"
    return write_degradation_outputs(result, out_dir, lead=(f"Fig. 6 pattern ({budget})", r["pattern"]["text"]))
