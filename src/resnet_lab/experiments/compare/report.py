"""Outputs of a model comparison: compare.json, the chart, and a report section.

``write_compare_outputs(result, out_dir)`` writes them and returns their paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from .reference import published_accuracy

COLUMNS = [("name", "model"), ("params", "params"), ("gflops_native", "GFLOPs (native)"), ("layers", "layers"),
           ("peak_train_memory_mib", "train memory (MiB)"), ("train_images_per_s", "train img/s"),
           ("infer_images_per_s", "infer img/s"), ("latency_ms_batch1", "latency (ms, batch 1)"),
           ("top1", "published accuracy (ImageNet: torchvision's weights; CIFAR-10: the paper)")]


def table_rows(result: dict) -> list[dict]:
    rows = []
    for row in result["models"]:
        ref = row.get("reference_top1") or {}
        imagenet = " / ".join(f"{v:.3f} ({k})" for k, v in ref.items())
        rows.append({**row, "top1": imagenet or published_accuracy(row)})
    return rows


def add_compare_section(report, result: dict, chart: Path | None) -> None:
    """The comparison as one section of a report: verdict, table, chart."""
    report.add_section("Which model? " + " vs ".join(r["name"] for r in result["models"]))
    if result["verdict"]:
        report.add_findings(result["verdict"], title="What the numbers say")
    report.add_table(table_rows(result), COLUMNS, caption="; ".join(result["settings"].get("notes", []))
                     or "measured side by side in one run")
    if chart is not None:
        report.add_figure(chart, "Published accuracy vs measured training throughput; marker area = training memory.")
    report.add_paragraph(f"Timing: {result['settings']['timing']}. Memory: {result['settings']['memory_method']}.")


def write_compare_outputs(result: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write compare.json, compare.png/.svg and report.html in ``out_dir``; return their paths by name
    (``json``, ``chart``: the SVG a report embeds, ``chart_png``, ``report``)."""
    from ...files import atomic_write_text, output_folder
    from ...report import Report, run_metadata
    from .plot import plot_comparison

    out = output_folder(out_dir, "compare.json", "comparison")
    atomic_write_text(out / "compare.json", json.dumps(result, indent=2) + "\n")
    charts = plot_comparison(result, out / "compare.png")
    chart = next((p for p in charts if p.suffix == ".svg"), None)
    chart_png = next((p for p in charts if p.suffix == ".png"), None)
    s = result["settings"]
    report = Report("Model comparison", f"measured on {s['device']}")
    report.set_meta(settings=s, data="synthetic inputs (timing only)", seeds="-",
                    run_time_s=result.get("run_time_s", 0.0), **run_metadata(s["device"]))
    add_compare_section(report, result, chart)
    report.add_json(result, caption="Raw data (compare.json)")
    return {"json": out / "compare.json", "chart": chart, "chart_png": chart_png,
            "report": report.write(out / "report.html")}
