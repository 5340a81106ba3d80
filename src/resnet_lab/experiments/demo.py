"""The main job: degradation, the gradient survey and a model comparison, one report.

``run_demo()`` runs the three experiments with settings sized for a 2-core CPU and the
bundled digits; ``data=`` and ``device=`` scale the same job up. Each
experiment's writer returns the paths it wrote; the combined report embeds those figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ..errors import UserError, check_positive_int, numpy_scalars_as_numbers

# Sized for a 2-core CPU with the digits data. The survey's part (3 seeds x 24 steps, the budget
# that decides its claims without a 10x longer run reversing one) took 120 s on a 2-core CPU at load
# average 2 (benchmarks/results/survey-digits-default-rerun-cpu.json), 212 s at load 5-7.
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


def _degradation(settings: dict, data: str, device: str, out: Path, log) -> tuple[dict, dict]:
    from .degradation import run_degradation, write_degradation_outputs

    result = run_degradation(data=data, device=device, log=log, **settings)
    return result, write_degradation_outputs(result, out)


def _survey(settings: dict | None, data: str, device: str, out: Path, log) -> tuple[dict, dict]:
    from .survey import DEMO_SETTINGS, run_survey, write_survey_outputs

    result = run_survey(data=data, device=device, log=log, **dict(settings or DEMO_SETTINGS))
    return result, write_survey_outputs(result, out)


def _compare(settings: dict, device: str, out: Path, log) -> tuple[dict, dict]:
    import torch

    from .compare import compare_models, write_compare_outputs

    threads = torch.get_num_threads()
    result = compare_models(settings["models"], device=device, quick=settings["quick"], log=log)
    torch.set_num_threads(threads)
    return result, write_compare_outputs(result, out)


@numpy_scalars_as_numbers
def run_demo(*, data: str = "digits", device: str = "cpu", out: str | Path = "runs/demo",
             epochs: int | None = None, sizes: dict | None = None, log: Callable[[str], object] | None = print) -> dict:
    """Run the three experiments, write each one's outputs under ``out`` and one combined
    ``out/report.html``; return the results, the headline findings and (``outputs``) the paths
    each experiment's writer returned.

    ``sizes`` replaces the built-in settings of the parts it names (see ``CPU_DIGITS``); ``log``: progress lines
    (``None``: silent)."""
    from ..data import prepare_data
    from ..files import output_folder
    from ..runtime import pick_device

    log = log or (lambda *_: None)
    dev = pick_device(device)
    prepare_data(data, in_memory=True)  # a bad name or missing file: refused before the folder is made
    if epochs is not None:
        check_positive_int("epochs", epochs)  # 0 once ran the built-in epochs, as if not given
    built_in = CPU_DIGITS if (dev.type == "cpu" and data == "digits") else SCALED_UP
    if sizes is not None and not isinstance(sizes, dict):
        raise UserError(f"sizes is a dict of parts ({', '.join(built_in)}) to their settings, got {sizes!r}")
    unknown = sorted(set(sizes or {}) - set(built_in))
    if unknown:
        raise UserError(f"sizes has no part {', '.join(map(repr, unknown))}; its parts are {', '.join(built_in)}")
    for part, settings in (sizes or {}).items():
        if not isinstance(settings, dict) and not (part == "survey" and settings is None):  # None: DEMO_SETTINGS
            raise UserError(f"sizes[{part!r}] is a dict of that part's settings, got {settings!r}")
    sizes = {**built_in, **(sizes or {})}
    out = output_folder(out, "demo.json", "demo")  # before minutes of work: its report.html replaces no other
    started = time.perf_counter()
    results, outputs, timings = {}, {}, {}

    def indented(msg: str) -> None:
        log(f"  {msg}")

    parts = [
        ("degradation", "degradation: plain vs residual nets, same recipe and data",
         lambda: _degradation(dict(sizes["degradation"], **({"epochs": epochs} if epochs else {})), data, str(dev),
                              out / "degradation", indented)),
        ("survey", "survey: one switch at a time (depth, shortcut, norm, activation, init, lr, clipping)",
         lambda: _survey(sizes["survey"], data, str(dev), out / "survey", indented)),
        ("compare", "compare: " + " vs ".join(sizes["compare"]["models"]),
         lambda: _compare(sizes["compare"], str(dev), out / "compare", indented)),
    ]
    for i, (name, title, run) in enumerate(parts, 1):
        log(f"[{i}/{len(parts)}] {title}")
        t0 = time.perf_counter()
        results[name], outputs[name] = run()
        timings[name] = time.perf_counter() - t0

    demo = {"data": data, "device": str(dev), "timings_s": timings, "run_time_s": time.perf_counter() - started,
            "headlines": headlines(results), **results, "outputs": outputs}
    demo["report"] = str(write_demo_report(demo, outputs, out / "report.html"))
    write_demo_summary(demo, out / "demo.json")
    return demo


def write_demo_summary(demo: dict, path: Path) -> Path:
    """``demo.json``: the timings, headlines, hardware and where each part's own results are (the
    parts' data are in their folders: results.json, survey.json, compare.json)."""
    from datetime import datetime, timezone

    from ..files import write_json
    from ..runtime import hardware_info

    keys = ("data", "device", "timings_s", "run_time_s", "headlines", "report")
    summary = {k: demo[k] for k in keys}
    summary["outputs"] = json.loads(json.dumps(demo["outputs"], default=str))  # paths (in lists and dicts) as text
    summary["time"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary["hardware"] = hardware_info(demo["device"])
    write_json(path, summary)
    return path


def depth_verdict(findings: dict) -> str:
    """The degradation experiment's finding in a few words."""
    if findings["degradation_observed"]:
        return "the plain net degrades, the ResNet does not"
    return "both deeper nets train worse here" if findings["degradation_plain"] else "no degradation"


def _depth_headline(degradation: dict) -> str | None:
    by = {(n["shortcut"], n["depth"]): n for n in degradation["networks"]}
    depths = sorted({d for _, d in by})
    if len(depths) < 2:
        return None
    p_lo, p_hi = by[(False, depths[0])], by[(False, depths[-1])]
    r_lo, r_hi = by[(True, depths[0])], by[(True, depths[-1])]
    return (f"Depth ({depth_verdict(degradation['findings'])}): training error "
            f"{p_lo['model']} {p_lo['final_train_error']:.1%} -> {p_hi['model']} {p_hi['final_train_error']:.1%}, "
            f"{r_lo['model']} {r_lo['final_train_error']:.1%} -> {r_hi['model']} {r_hi['final_train_error']:.1%}.")


def _claim_headlines(survey: dict) -> list[str]:
    from .survey.table import budget_text

    lines = []
    for claim in survey["claims"]:
        if claim["verdict"] != "not measured" and claim.get("id") in ("residual_gradient", "sigmoid_vanishes",
                                                                       "clip_prevents_blowup"):
            verdict = "inconclusive at this budget" if claim["verdict"] == "inconclusive" else claim["verdict"]
            lines.append(f"{claim['claim']} ({verdict}, {budget_text(claim['budget'])}): {claim['evidence']}")
    return lines


def _top1(row: dict) -> float:
    return max((row.get("reference_top1") or {"-": float("nan")}).values())


def _compare_headline(compare: dict) -> str | None:
    rows = compare["models"]
    if len(rows) < 2 or not (rows[0]["train_images_per_s"] and rows[1]["train_images_per_s"]):
        return None
    a, b = rows[0], rows[1]
    ratio = a["train_images_per_s"] / b["train_images_per_s"]
    return (f"{a['name']} trains {ratio:.2f}x as fast as {b['name']} here "
            f"({a['train_images_per_s']:.1f} vs {b['train_images_per_s']:.1f} images/s); "
            f"published top-1 {_top1(a):.2f}% vs {_top1(b):.2f}%.")


def headlines(results: dict) -> list[str]:
    """Three to six lines, each a measured number, computed from the results."""
    lines = [_depth_headline(results["degradation"]), *_claim_headlines(results["survey"]),
             _compare_headline(results["compare"])]
    return [line for line in lines if line][:6]


def write_demo_report(demo: dict, outputs: dict, path: Path) -> Path:
    """One self-contained report with the three experiments as sections; ``outputs`` are the paths
    each experiment's writer returned (their figures are embedded, not drawn again)."""
    from ..report import Report, run_metadata
    from .compare import add_compare_section
    from .degradation import add_degradation_section, report_figures
    from .survey import add_survey_section

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
    add_degradation_section(report, demo["degradation"], report_figures(outputs["degradation"]))
    add_survey_section(report, demo["survey"], outputs["survey"]["figures"], heading="Survey")
    add_compare_section(report, demo["compare"], outputs["compare"]["chart"])
    return report.write(path)
