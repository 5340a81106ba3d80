"""The main job: degradation, the gradient survey and a model comparison, one report.

``run_demo()`` runs the three experiments with settings sized for a 2-core CPU and the
bundled digits (about 3 minutes); ``data=`` and ``device=`` scale the same job up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

# Sized on a 2-core CPU with the digits data so that the whole demo takes about 3 minutes.
CPU_DIGITS = {
    "degradation": {"depths": (20, 56), "epochs": 15, "image_size": 16, "batch_size": 64},
    "survey": None,  # the survey module's own DEMO_SETTINGS
    "compare": {"models": ["resnet101", "resnet152"], "quick": True},
}
# On a GPU or with real data: the paper's depths, more epochs, the comparison at full size.
SCALED_UP = {
    "degradation": {"depths": (20, 56), "epochs": 30},
    "survey": {"depths": (8, 20, 56, 110), "steps": 60, "batch_size": 128},
    "compare": {"models": ["resnet101", "resnet152"], "quick": False},
}


def run_demo(*, data: str = "digits", device: str = "cpu", out: str | Path = "runs/demo",
             epochs: int | None = None, sizes: dict | None = None, log: Callable[[str], object] = print) -> dict:
    """Run the three experiments, write each one's outputs under ``out`` and one combined
    ``out/report.html``; return the results and the headline findings.

    ``sizes`` replaces the built-in settings of each part (see ``CPU_DIGITS``)."""
    import torch

    from ..runtime import pick_device
    from .compare import compare_models
    from .compare_report import write_compare_outputs
    from .degradation import run_degradation
    from .degradation_report import write_degradation_outputs
    from .survey import DEMO_SETTINGS, run_survey
    from .survey_report import write_survey_outputs

    dev = pick_device(device)
    sizes = sizes or (CPU_DIGITS if (dev.type == "cpu" and data == "digits") else SCALED_UP)
    out = Path(out)
    started = time.perf_counter()
    results, timings = {}, {}

    log("[1/3] degradation: plain vs residual nets, same recipe and data")
    t0 = time.perf_counter()
    deg = dict(sizes["degradation"], **({"epochs": epochs} if epochs else {}))
    results["degradation"] = run_degradation(data=data, device=str(dev), log=lambda m: log(f"  {m}"), **deg)
    write_degradation_outputs(results["degradation"], out / "degradation")
    timings["degradation"] = time.perf_counter() - t0

    log("[2/3] survey: one switch at a time (depth, shortcut, norm, activation, init, lr, clipping)")
    t0 = time.perf_counter()
    survey_settings = dict(sizes["survey"] or DEMO_SETTINGS)
    results["survey"] = run_survey(data=data, device=str(dev), log=lambda m: log(f"  {m}"), **survey_settings)
    write_survey_outputs(results["survey"], out / "survey")
    timings["survey"] = time.perf_counter() - t0

    log("[3/3] compare: " + " vs ".join(sizes["compare"]["models"]))
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    results["compare"] = compare_models(sizes["compare"]["models"], device=str(dev), quick=sizes["compare"]["quick"],
                                        log=lambda m: log(f"  {m}"))
    torch.set_num_threads(threads)
    write_compare_outputs(results["compare"], out / "compare")
    timings["compare"] = time.perf_counter() - t0

    run_time = time.perf_counter() - started
    demo = {"data": data, "device": str(dev), "timings_s": timings, "run_time_s": run_time,
            "headlines": headlines(results), **results}
    demo["report"] = str(write_demo_report(demo, out / "report.html"))
    return demo


def depth_verdict(findings: dict) -> str:
    """The degradation experiment's finding in a few words."""
    if findings["degradation_observed"]:
        return "the plain net degrades, the ResNet does not"
    return "both deeper nets train worse here" if findings["degradation_plain"] else "no degradation"


def headlines(results: dict) -> list[str]:
    """Three to six lines, each a measured number, computed from the results."""
    lines = []
    deg = {n["model"]: n for n in results["degradation"]["networks"]}
    depths = sorted({n["depth"] for n in deg.values()})
    if len(depths) >= 2:
        lo, hi = depths[0], depths[-1]
        p_lo, p_hi = deg[f"plain{lo}"]["final_train_error"], deg[f"plain{hi}"]["final_train_error"]
        r_lo, r_hi = deg[f"resnet{lo}"]["final_train_error"], deg[f"resnet{hi}"]["final_train_error"]
        shown = depth_verdict(results["degradation"]["findings"])
        lines.append(f"Depth ({shown}): training error plain{lo} {p_lo:.1%} -> plain{hi} {p_hi:.1%}, "
                     f"resnet{lo} {r_lo:.1%} -> resnet{hi} {r_hi:.1%}.")
    for claim in results["survey"]["claims"]:
        if claim["supported"] is not None and claim.get("id") in ("residual_gradient", "sigmoid_vanishes",
                                                                   "clip_prevents_blowup"):
            mark = "supported" if claim["supported"] else "contradicted"
            lines.append(f"{claim['claim']} ({mark}): {claim['evidence']}")
    rows = results["compare"]["models"]
    if len(rows) >= 2 and rows[0]["train_images_per_s"] and rows[1]["train_images_per_s"]:
        a, b = rows[0], rows[1]
        ratio = a["train_images_per_s"] / b["train_images_per_s"]
        ref = lambda r: max((r.get("reference_top1") or {"-": float("nan")}).values())  # noqa: E731
        lines.append(f"{a['name']} trains {ratio:.2f}x as fast as {b['name']} here "
                     f"({a['train_images_per_s']:.1f} vs {b['train_images_per_s']:.1f} images/s); "
                     f"published top-1 {ref(a):.2f}% vs {ref(b):.2f}%.")
    return lines[:6]


def write_demo_report(demo: dict, path: Path) -> Path:
    """One self-contained report with the three experiments as sections."""
    from ..report import Report, run_metadata
    from .compare_report import add_compare_section
    from .degradation_report import add_degradation_section
    from .survey_plot import plot_survey
    from .survey_report import add_survey_section

    out = path.parent
    report = Report("resnet-lab demo: why residual networks work, measured",
                    f"data {demo['data']}, device {demo['device']}")
    report.set_meta(settings={"timings (s)": {k: round(v, 1) for k, v in demo["timings_s"].items()},
                              "degradation": demo["degradation"]["settings"]["depths"],
                              "survey depths": demo["survey"]["settings"].get("depths"),
                              "compare": [r["name"] for r in demo["compare"]["models"]]},
                    data=demo["degradation"]["settings"].get("data_description", demo["data"]),
                    seeds=demo["degradation"]["settings"].get("seeds"), run_time_s=demo["run_time_s"],
                    **run_metadata(demo["device"]))
    report.add_findings(demo["headlines"], title="Headline findings")
    deg_dir = out / "degradation"
    add_degradation_section(report, demo["degradation"],
                            {"training": deg_dir / "degradation.svg", "gradients": deg_dir / "gradient_flow.svg"
                             if (deg_dir / "gradient_flow.svg").exists() else None})
    plots = plot_survey(demo["survey"], out / "survey")
    add_survey_section(report, demo["survey"],
                       {k: next(p for p in v if p.suffix == ".png") for k, v in plots.items()}, heading="Survey")
    chart = out / "compare" / "compare.svg"
    add_compare_section(report, demo["compare"], chart if chart.exists() else None)
    return report.write(path)
