"""`run_survey`, its claims, outputs and CLI.

A tiny survey (depths 8 and 20, 2 seeds, 5 steps, batch 16, 16 px) runs once per module: the tests
check the structure of its JSON, that the numbers come from real runs (re-measured independently
here), and that every claim's verdict follows from the per-seed runs by the documented rule
(re-derived here). The verdict rule itself (SUPPORTED / CONTRADICTED only when every seed agrees,
else INCONCLUSIVE) is checked on hand-made per-seed numbers, and the committed budget check (the
demo's budget against 10x its steps) on its results files. The known physics is checked on 56-layer
nets at initialisation (no training: fast). Measured as a sweep (``jobs=``), a few cells are
compared with the same cells measured in this process, resumed, failed and interrupted.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_lab.cli.main import main
from resnet_lab.data import load_data
from resnet_lab.diagnostics import KINDS
from resnet_lab.experiments import run_survey
from resnet_lab.experiments.survey import (CLAIMS, DEMO_SETTINGS, DIVERGE_FACTOR, LOSS_SMOOTH, ORDER, OUTCOMES,
                                           TRAINED_DROP, VANISH_RATIO, VARIANTS, VERDICTS, cell_name, combine_runs,
                                           decide, judge_claims, loss_summary, measure_init_gradients,
                                           survey_markdown, survey_table, survey_text, write_survey_outputs)
from resnet_lab.experiments.survey.findings import reversals
from resnet_lab.errors import UserError
from resnet_lab.experiments.survey.cells import _batches
from resnet_lab.experiments.survey.settings import SurveySettings
from resnet_lab.models import create_model
from resnet_lab.training.sweep import SweepFailed, sweep_status

TINY = dict(depths=(8, 20), steps=5, seeds=2, batch_size=16, image_size=16, batches_at_init=2, seed=0, threads=1,
            log=None)
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
NUMBERS = {"grad_first", "grad_last", "ratio", "loss_start", "loss_end", "loss_drop", "global_grad_norm"}
CELL_KEYS = ({"name", "group", "variant", "depth", "shortcut", "norm", "activation", "init", "lr", "clip_norm",
              "steps", "batches_at_init", "seeds", "runs", "first_block", "last_block", "steps_to_90",
              "steps_to_half", "outcomes", "outcome", "verdicts", "verdict", "time_s"}
             | NUMBERS | {f"{k}_range" for k in NUMBERS})
RUN_KEYS = {"seed", "first_block", "last_block", "grad_first_batches", "grad_last_batches", "grad_first", "grad_last",
            "ratio", "verdict", "reason", "verdict_step", "steps_run", "global_grad_norm", "losses", "loss_start",
            "loss_end", "loss_drop", "steps_to_90", "steps_to_half", "outcome", "time_s"}
CLAIM_KEYS = {"id", "claim", "verdict", "supported", "budget", "measured", "evidence", "cells"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small nets on small batches: one thread is faster than several on a busy machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def survey() -> dict:
    return run_survey(**TINY)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _cell(result, shortcut, depth, norm, activation, init, group="switches", clip=None):
    found = [c for c in result["cells"] if (c["group"], c["shortcut"], c["depth"], c["norm"], c["activation"],
                                            c["init"], c["clip_norm"]) == (group, shortcut, depth, norm, activation,
                                                                           init, clip)]
    assert len(found) <= 1
    return found[0] if found else None


# ------------------------------------------------------------------------------- structure

def test_survey_json_structure(survey):
    assert set(survey) == {"settings", "design", "data", "cells", "claims", "run_time_s", "hardware"}
    s = survey["settings"]
    assert s["depths"] == [8, 20] and s["steps"] == 5 and s["batch_size"] == 16 and s["image_size"] == 16
    assert s["seeds"] == [0, 1] and s["threads"] == 1 and s["high_lr"] == pytest.approx(10 * s["lr"])
    assert survey["hardware"]["torch"] == torch.__version__ and survey["run_time_s"] > 0
    cells = survey["cells"]
    # one switch at a time: every variant for every depth and shortcut, plus the high-lr pair
    assert len(cells) == 2 * 2 * len(VARIANTS) + 2
    assert len({c["name"] for c in cells}) == len(cells)
    for c in cells:
        assert set(c) == CELL_KEYS, c["name"]
        assert c["variant"] == f"{c['norm']}/{c['activation']}/{c['init']}"
        assert c["seeds"] == [r["seed"] for r in c["runs"]] == [0, 1]
        for r in c["runs"]:
            assert set(r) == RUN_KEYS, c["name"]
    high = [c for c in cells if c["group"] == "high_lr"]
    assert [c["clip_norm"] for c in high] == [None, 1.0] and {c["lr"] for c in high} == {s["high_lr"]}
    assert [c["id"] for c in survey["claims"]] == list(CLAIMS)
    names = {c["name"] for c in cells}
    for claim in survey["claims"]:
        assert set(claim) == CLAIM_KEYS and claim["verdict"] in VERDICTS
        assert claim["supported"] == {"supported": True, "contradicted": False}.get(claim["verdict"])
        assert claim["evidence"] and claim["claim"] == CLAIMS[claim["id"]]
        assert set(claim["cells"]) <= names and set(claim["measured"]) <= names
        if claim["verdict"] != "not measured":
            assert claim["budget"]["seeds"] == 2
            assert claim["budget"].get("steps", 5) == 5 and claim["budget"].get("batches_at_init", 2) == 2
    json.loads(json.dumps(survey, allow_nan=False))  # valid JSON as returned: no NaN/Inf


def test_numbers_come_from_runs(survey):
    s = survey["settings"]
    for c in survey["cells"]:
        for r in c["runs"]:
            assert len(r["grad_first_batches"]) == len(r["grad_last_batches"]) == s["batches_at_init"]
            assert r["grad_first"] == pytest.approx(statistics.fmean(r["grad_first_batches"]), rel=1e-12)
            assert r["grad_last"] == pytest.approx(statistics.fmean(r["grad_last_batches"]), rel=1e-12)
            assert math.isfinite(r["grad_first"]) and r["grad_first"] > 0, c["name"]
            assert math.isfinite(r["grad_last"]) and r["grad_last"] > 0, c["name"]
            assert r["ratio"] == pytest.approx(r["grad_first"] / r["grad_last"], rel=1e-12)
            assert (r["first_block"], r["last_block"]) == ("layer1.0", f"layer3.{(c['depth'] - 2) // 6 - 1}")
            assert r["verdict"] in KINDS and r["reason"]
            assert r["outcome"] in OUTCOMES and r["time_s"] > 0
            # the losses are the monitor's records of the short run
            assert 1 <= r["steps_run"] <= s["steps"] and len(r["losses"]) == r["steps_run"]
            assert r["loss_start"] == r["losses"][0]
            if r["loss_end"] is not None:
                assert r["loss_end"] == pytest.approx(statistics.fmean(r["losses"][-LOSS_SMOOTH:]))
                assert r["loss_drop"] == pytest.approx(1 - r["loss_end"] / r["loss_start"])
            else:
                assert r["outcome"] == "diverged"
        # the summary is the median over the seeds with its range
        ratios = [r["ratio"] for r in c["runs"]]
        assert c["ratio"] == pytest.approx(statistics.median(ratios)) and c["ratio_range"] == [min(ratios),
                                                                                               max(ratios)]
        assert sum(c["outcomes"].values()) == len(c["runs"]) and c["outcome"] in c["outcomes"]
    # real measurements differ from cell to cell, and from seed to seed
    assert len({round(c["runs"][0]["grad_first"], 12) for c in survey["cells"]}) > len(survey["cells"]) // 2
    assert all(c["runs"][0]["grad_first"] != c["runs"][1]["grad_first"] for c in survey["cells"])


def test_init_gradients_match_an_independent_measurement(survey, digits):
    """Re-measure one cell's seed 1 by hand: same seed, same batches, the first and last blocks' gradients."""
    c = _cell(survey, "plain", 20, "batch", "tanh", "he")
    batches = _batches(digits, 16, 2, device=torch.device("cpu"), seed=1, image_size=16)
    torch.manual_seed(1)
    model = create_model("plain20", norm="batch", activation="tanh", init="he", num_classes=10, in_channels=1)
    model.train()
    first, last = [], []
    for x, y in batches:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for out, block in ((first, model.layer1[0]), (last, model.layer3[-1])):
            out.append(math.sqrt(sum(float(p.grad.double().square().sum()) for p in block.parameters())))
    assert c["runs"][1]["grad_first_batches"] == pytest.approx(first, rel=1e-6)
    assert c["runs"][1]["grad_last_batches"] == pytest.approx(last, rel=1e-6)


def test_high_lr_pair_blows_up_without_clipping_only(survey):
    raw, clipped = [c for c in survey["cells"] if c["group"] == "high_lr"]
    assert raw["shortcut"] == "residual" and raw["norm"] == "none" and raw["depth"] == 20
    for r, k in zip(raw["runs"], clipped["runs"]):
        assert r["outcome"] == "diverged" and r["verdict"] in ("exploding", "nonfinite")
        assert k["outcome"] != "diverged" and k["steps_run"] == survey["settings"]["steps"]


# ------------------------------------------------------------------------------- claims

def _verdict(answers) -> str:
    """The documented rule, written out again: every seed agrees, or inconclusive."""
    answers = list(answers)
    if all(a is True for a in answers):
        return "supported"
    return "contradicted" if all(a is False for a in answers) else "inconclusive"


def _better(a, b, by_verdict=False, at_least=False):
    """Trained beats not trained, then healthy beats not (by_verdict), then (both trained) the drop."""
    ka = (a["outcome"] == "trained",) + ((a["verdict"] == "healthy",) if by_verdict else ())
    kb = (b["outcome"] == "trained",) + ((b["verdict"] == "healthy",) if by_verdict else ())
    if ka != kb:
        return ka > kb
    if a["outcome"] != "trained":
        return None
    return a["loss_drop"] >= b["loss_drop"] if at_least else a["loss_drop"] > b["loss_drop"]


def _recompute(result: dict) -> dict:
    """The documented rules, written out again from the per-seed runs."""
    def runs(*key, **kw):
        return _cell(result, *key, **kw)["runs"]

    def all_pairs(a, b, **kw):
        return [_better(x, y, **kw) for x in a for y in b]

    def every(verdicts):
        verdicts = list(verdicts)
        if "contradicted" in verdicts:
            return "contradicted"
        return "supported" if all(v == "supported" for v in verdicts) else "inconclusive"

    depths = sorted({c["depth"] for c in result["cells"] if c["group"] == "switches"})
    deep = depths[-1]
    tens = [d for d in depths if 20 <= d < 100]
    out = {}
    out["bn_plain_trainable"] = (every(_verdict(True if r["outcome"] == "trained" else
                                                (False if r["loss_end"] is None else None)
                                                for r in runs("plain", d, "batch", "relu", "he")) for d in tens)
                                 if tens else "not measured")
    out["residual_gradient"] = every(_verdict(1 / ORDER <= r["ratio"] <= ORDER
                                              for r in runs("residual", d, "batch", "relu", "he")) for d in depths)
    out["sigmoid_vanishes"] = _verdict(r["ratio"] < VANISH_RATIO for r in runs("plain", deep, "none", "sigmoid", "he"))
    out["he_beats_normal"] = _verdict(all_pairs(runs("plain", deep, "none", "relu", "he"),
                                                runs("plain", deep, "none", "relu", "normal"), by_verdict=True))
    raw, clipped = [c["runs"] for c in result["cells"] if c["group"] == "high_lr"]
    out["clip_prevents_blowup"] = ("not measured" if all(r["outcome"] != "diverged" for r in raw) else
                                   _verdict(None if r["outcome"] != "diverged" else k["outcome"] != "diverged"
                                            for r, k in zip(raw, clipped)))
    out["residual_trains_faster"] = _verdict(all_pairs(runs("residual", deep, "batch", "relu", "he"),
                                                       runs("plain", deep, "batch", "relu", "he"), at_least=True))
    return out


def test_a_cell_of_one_step_is_described_in_the_singular():
    from resnet_lab.experiments.survey.findings import _describe

    cell = {"name": "plain20-batch-relu-he", "loss_drop": 0.64, "loss_drop_range": (0.64, 0.64), "runs": [{}],
            "outcomes": {"trained": 1}, "verdicts": {"healthy": 1}, "steps": 1}
    assert _describe(cell) == "plain20-batch-relu-he: loss drop 64% in 1 step, trained 1/1, monitor healthy 1/1"


def test_claims_follow_from_the_cells(survey):
    expected = _recompute(survey)
    got = {c["id"]: c["verdict"] for c in survey["claims"]}
    assert got == expected
    # the evidence quotes the cells it rests on, and the claim records their per-seed values
    for claim in survey["claims"]:
        assert any(name in claim["evidence"] for name in claim["cells"])
        for name, values in claim["measured"].items():
            assert all(len(v) == 2 for v in values.values()), name


def _edit_runs(cell: dict, **per_seed) -> None:
    """Set per-seed values (lists, one per seed) in a cell's runs and recompute its summary."""
    for key, values in per_seed.items():
        for r, v in zip(cell["runs"], values):
            r[key] = v
    cell.update(combine_runs({k: v for k, v in cell.items() if k != "runs"}, cell["runs"]))


def test_claims_change_when_the_measurements_change(survey):
    """Nothing is hard-coded: edit the measurements and the verdicts follow."""
    cells = json.loads(json.dumps(survey["cells"]))
    by = {c["name"]: c for c in cells}
    _edit_runs(by["resnet20-batch-relu-he"], ratio=[1e3, 2e3])
    _edit_runs(by["plain20-none-sigmoid-he"], ratio=[0.5, 0.6])
    _edit_runs(by["plain20-batch-relu-he"], outcome=["diverged"] * 2, loss_end=[None] * 2, loss_drop=[None] * 2)
    raw, clipped = (by["resnet20-none-relu-he@lr=1"], by["resnet20-none-relu-he@lr=1+clip=1"])
    _edit_runs(clipped, outcome=["diverged"] * 2, loss_end=[None] * 2, loss_drop=[None] * 2)
    claims = {c["id"]: c["verdict"] for c in judge_claims(cells)}
    assert claims["residual_gradient"] == claims["sigmoid_vanishes"] == "contradicted"
    assert claims["bn_plain_trainable"] == claims["clip_prevents_blowup"] == "contradicted"
    _edit_runs(raw, outcome=["stalled"] * 2, loss_end=[2.0] * 2, loss_drop=[0.1] * 2)
    assert {c["id"]: c for c in judge_claims(cells)}["clip_prevents_blowup"]["verdict"] == "not measured"
    shallow = {c["id"]: c for c in judge_claims([c for c in cells if c["depth"] == 8])}
    # Claims about deep nets are not judged from 8 layers (He vs normal was once SUPPORTED there,
    # sigmoid CONTRADICTED at a ratio of 0.0012 against 0.001, while BatchNorm's said NOT MEASURED).
    for claim in ("bn_plain_trainable", "he_beats_normal", "sigmoid_vanishes"):
        assert shallow[claim]["verdict"] == "not measured" and "--depths 20 56" in shallow[claim]["evidence"]


# ------------------------------------------------------------------------------- the verdict rule, by hand

def _run(seed: int, **values) -> dict:
    """One seed's measurements of a cell, made up: a healthy run that trained, unless told otherwise."""
    run = {"seed": seed, "first_block": "layer1.0", "last_block": "layer3.8", "grad_first": 1.0, "grad_last": 1.0,
           "ratio": 1.0, "loss_start": 2.3, "loss_end": 1.0, "loss_drop": 0.57, "global_grad_norm": 1.0,
           "steps_to_90": 3, "steps_to_half": 10, "outcome": "trained", "verdict": "healthy", "time_s": 0.1}
    return {**run, **values}


def _handmade(shortcut: str, depth: int, norm: str, activation: str, init: str, **per_seed) -> dict:
    """A cell measured with as many seeds as the lists in ``per_seed`` are long."""
    n = len(next(iter(per_seed.values())))
    runs = [_run(i, **{k: v[i] for k, v in per_seed.items()}) for i in range(n)]
    cell = {"name": cell_name(shortcut, depth, norm, activation, init), "group": "switches",
            "variant": f"{norm}/{activation}/{init}", "depth": depth, "shortcut": shortcut, "norm": norm,
            "activation": activation, "init": init, "lr": 0.1, "clip_norm": None, "steps": 24, "batches_at_init": 2}
    return combine_runs(cell, runs)


def _judge(*cells) -> dict:
    return {c["id"]: c for c in judge_claims(list(cells))}


def test_decide_needs_every_seed():
    assert decide([True, True, True]) == "supported"
    assert decide([False, False, False]) == "contradicted"
    assert decide([True, False, True]) == decide([True, None, True]) == decide([None, None]) == "inconclusive"
    assert decide([]) == "inconclusive"


def test_cases_that_differ_by_less_than_the_seeds_spread_are_inconclusive():
    """resnet56 beats plain56 on average (drop 0.70 vs 0.62), but the seeds overlap: no verdict."""
    res = _handmade("residual", 56, "batch", "relu", "he", loss_drop=[0.55, 0.70, 0.85])
    plain = _handmade("plain", 56, "batch", "relu", "he", loss_drop=[0.60, 0.62, 0.64])
    claim = _judge(res, plain)["residual_trains_faster"]
    assert claim["verdict"] == "inconclusive" and claim["supported"] is None
    assert claim["budget"] == {"seeds": 3, "steps": 24}
    assert claim["measured"]["resnet56-batch-relu-he"]["loss_drop"] == [0.55, 0.70, 0.85]
    assert "70% (55%..85%)" in claim["evidence"] and "62% (60%..64%)" in claim["evidence"]
    text = survey_text({"cells": [res, plain], "claims": [claim], "data": "digits", "run_time_s": 1.0,
                        "hardware": {"cpu": "x"}, "settings": {**DEMO_SETTINGS, "seeds": [0, 1, 2], "momentum": 0.9,
                                                               "lr": 0.1, "high_lr": 1.0, "clip_norm": 1.0,
                                                               "device": "cpu"}})
    assert ("INCONCLUSIVE at this budget (3 seeds x 24 steps): Residual nets train at least as fast as their "
            "plain twins at depth") in text


def test_seeds_that_agree_decide_a_comparison():
    res = _handmade("residual", 56, "batch", "relu", "he", loss_drop=[0.80, 0.85, 0.90])
    plain = _handmade("plain", 56, "batch", "relu", "he", loss_drop=[0.30, 0.40, 0.50])
    assert _judge(res, plain)["residual_trains_faster"]["verdict"] == "supported"
    assert _judge(_handmade("residual", 56, "batch", "relu", "he", loss_drop=[0.30, 0.40, 0.50]),
                  _handmade("plain", 56, "batch", "relu", "he", loss_drop=[0.80, 0.85, 0.90])
                  )["residual_trains_faster"]["verdict"] == "contradicted"
    # a run that trained beats one that did not, whatever the drops
    stalled = _handmade("plain", 56, "batch", "relu", "he", outcome=["stalled"] * 3, loss_drop=[0.05, 0.0, 0.08])
    assert _judge(res, stalled)["residual_trains_faster"]["verdict"] == "supported"
    # two nets that both stalled are not ranked by their losses' noise: inconclusive
    res_stalled = _handmade("residual", 56, "batch", "relu", "he", outcome=["stalled"] * 3,
                            loss_drop=[-0.6, -0.3, 0.02])
    assert _judge(res_stalled, stalled)["residual_trains_faster"]["verdict"] == "inconclusive"


@pytest.mark.parametrize("ratios, verdict", [([5.0, 6.0, 7.0], "supported"), ([8.0, 9.5, 11.0], "inconclusive"),
                                             ([11.0, 12.0, 15.0], "contradicted"), ([0.05, 0.2, 1.0], "inconclusive")])
def test_threshold_claims_against_every_seed(ratios, verdict):
    """Within an order of magnitude (1/10..10): decided only when no seed is across the threshold."""
    claim = _judge(_handmade("residual", 56, "batch", "relu", "he", ratio=ratios))["residual_gradient"]
    assert claim["verdict"] == verdict and claim["budget"] == {"seeds": 3, "batches_at_init": 2}


def test_a_stalled_plain_net_is_no_evidence_against_trainability():
    """The demo used to print CONTRADICTED because plain56 lowered its loss 2% in 16 steps."""
    def judge(**per_seed):
        return _judge(_handmade("plain", 56, "batch", "relu", "he", **per_seed))["bn_plain_trainable"]["verdict"]

    assert judge(outcome=["trained"] * 3) == "supported"
    assert judge(outcome=["stalled", "trained", "stalled"], loss_drop=[0.02, 0.2, 0.05]) == "inconclusive"
    assert judge(outcome=["diverged"] * 3, loss_end=[None] * 3, loss_drop=[None] * 3) == "contradicted"
    # a finite rise (a spike in the first steps) is not a dead run
    assert judge(outcome=["diverged"] * 3, loss_end=[5.0] * 3, loss_drop=[-1.2] * 3) == "inconclusive"


def test_reversals_are_supported_against_contradicted_only():
    def claims(*verdicts):
        return [{"id": i, "verdict": v} for i, v in enumerate(verdicts)]

    assert reversals(claims("supported", "inconclusive", "contradicted", "not measured"),
                     claims("supported", "supported", "inconclusive", "supported")) == []
    assert reversals(claims("supported", "contradicted"), claims("contradicted", "supported")) == [0, 1]


def test_demo_budget_gives_no_verdict_a_longer_run_reverses():
    """The committed check: the demo's survey at its budget and at 10x its steps (same seeds), judged
    again here with today's rules. A verdict SUPPORTED at one and CONTRADICTED at the other means the
    default budget (or the claim's rule) decides from noise."""
    short, long = (json.loads((RESULTS / f"survey-digits-{which}-cpu.json").read_text())
                   for which in ("default", "10x"))
    assert short["settings"]["seeds"] == long["settings"]["seeds"] == list(range(DEMO_SETTINGS["seeds"]))
    assert long["settings"]["steps"] == 10 * short["settings"]["steps"]
    for key in ("depths", "steps", "batch_size", "image_size", "batches_at_init"):
        assert short["settings"][key] == list(DEMO_SETTINGS[key]) if key == "depths" else DEMO_SETTINGS[key], key
    short_claims, long_claims = judge_claims(short["cells"]), judge_claims(long["cells"])
    assert reversals(short_claims, long_claims) == []
    # the files' own verdicts are today's rules' verdicts
    assert [c["verdict"] for c in short["claims"]] == [c["verdict"] for c in short_claims]
    assert [c["verdict"] for c in long["claims"]] == [c["verdict"] for c in long_claims]


def test_loss_summary_rules():
    s = loss_summary([2.0, 1.9, 1.7, 1.5, 0.9])
    assert s["loss_start"] == 2.0 and s["loss_end"] == pytest.approx((1.7 + 1.5 + 0.9) / 3)
    assert s["steps_to_90"] == 2 and s["steps_to_half"] == 4 and s["outcome"] == "trained"
    assert loss_summary([2.0, 2.0, 2.1, 1.95])["outcome"] == "stalled"
    assert loss_summary([2.0, 2.0, 2.0, 2.0])["steps_to_90"] is None
    assert loss_summary([2.0, 3.0, None])["outcome"] == "diverged"
    assert loss_summary([2.0, 5.0, 6.0, 7.0])["outcome"] == "diverged"  # >= DIVERGE_FACTOR x start
    assert loss_summary([2.0, 1.0, 1.0], stopped=True)["loss_end"] is None
    assert DIVERGE_FACTOR == 2.0 and TRAINED_DROP == 0.10


# ------------------------------------------------------------------------------- outputs

def test_table_and_markdown_have_one_row_per_cell(survey):
    text = survey_table(survey).splitlines()
    assert len(text) == 2 + len(survey["cells"])
    md = survey_markdown(survey)
    rows = [line for line in md.splitlines() if line.startswith("| plain") or line.startswith("| resnet")]
    assert len(rows) == len(survey["cells"])
    for claim in survey["claims"]:
        assert claim["claim"] in md


def test_the_tables_monitor_column_shows_seeds_that_disagree_as_the_outcome_column_does():
    """A cell whose seeds got different monitor verdicts is not one verdict in the table: the row counts them
    (as the claims' evidence and the outcome column do), instead of printing the worse one alone."""
    split = _handmade("residual", 8, "none", "relu", "he", verdict=["exploding", "healthy"],
                      outcome=["stalled", "stalled"])
    agreed = _handmade("plain", 8, "batch", "relu", "he", verdict=["healthy", "healthy"])
    result = {"cells": [split, agreed]}
    lines = {line.split()[0]: line for line in survey_table(result).splitlines()[2:]}
    assert "exploding 1/2, healthy 1/2" in lines[split["name"]]
    assert " healthy " in lines[agreed["name"]] and "2/2" not in lines[agreed["name"]]
    assert "exploding 1/2, healthy 1/2" in survey_table(result, markdown=True)  # survey.md and the report


def test_outputs_written(survey, tmp_path):
    written = write_survey_outputs(survey, tmp_path)
    data = json.loads((tmp_path / "survey.json").read_text())
    assert data == json.loads(json.dumps(survey))
    for stem in ("survey_gradient_ratio", "survey_loss_drop"):
        for ext in ("png", "svg"):
            assert (tmp_path / f"{stem}.{ext}").stat().st_size > 1000
    html = (tmp_path / "report.html").read_text()
    assert written["html"] == tmp_path / "report.html" and len(html) > 20_000
    assert html.count("data:image/png;base64,") == 2  # heat maps embedded, not linked
    for text in ("Claims and the measurements behind them", "Settings", "Seeds", "Hardware", "Library versions",
                 "Run time", "Raw data (survey.json)", "plain20-batch-relu-he"):
        assert text in html
    assert html.index("Run time") < html.index("Claims and the measurements")  # run facts at the top
    assert "http://" not in html.replace("http://www.w3.org", "")


def test_budget_benchmark_smoke(tmp_path, capsys):
    """bench_survey_budget.py: the smoke run, a rerun of only the cells its verdicts rest on, the comparison."""
    import runpy
    import sys

    script = str(RESULTS.parent / "bench_survey_budget.py")

    def bench(*argv):
        saved = sys.argv
        sys.argv = [script, *argv]
        try:
            runpy.run_path(script, run_name="__main__")
        finally:
            sys.argv = saved

    short, long = tmp_path / "short.json", tmp_path / "long.json"
    bench("--smoke", "--out", str(short))
    bench("--smoke", "--factor", "2", "--cells-of", str(short), "--out", str(long))
    a, b = (json.loads(p.read_text()) for p in (short, long))
    assert a["hardware"]["torch"] and a["time"] and len(a["load_average"]) == 2
    assert b["settings"]["steps"] == 2 * a["settings"]["steps"] and b["factor"] == 2
    assert {c["name"] for c in b["cells"]} == {n for c in a["claims"] for n in c["measured"]}
    capsys.readouterr()
    bench("--compare", str(short), str(long))
    assert "reversed: none" in capsys.readouterr().out


# ------------------------------------------------------------------------------- physics

def test_known_physics_at_56_layers(digits):
    """Regression checks at initialisation: sigmoid without normalisation vanishes in a plain 56-layer
    net; the residual twin with BatchNorm keeps first and last within a few orders of magnitude; the
    plain net with BatchNorm grows the gradient towards the input far more than the residual one."""
    batches = _batches(digits, 16, 2, device=torch.device("cpu"), seed=0, image_size=16)

    def ratio(name, **options):
        torch.manual_seed(0)
        return measure_init_gradients(create_model(name, num_classes=10, in_channels=1, **options), batches)["ratio"]

    sigmoid_plain = ratio("plain56", norm="none", activation="sigmoid")
    res_bn = ratio("resnet56")
    plain_bn = ratio("plain56")
    assert sigmoid_plain < 1e-3 < 1e-2 < res_bn
    assert sigmoid_plain < 1e-10
    assert plain_bn > 10 * res_bn


def test_a_survey_cell_of_depth_50_is_the_cifar_net_not_imagenets_resnet50(digits):
    """The residual cell at depth 50 was once ``resnet50`` (the ImageNet bottleneck net, 23.5M parameters)
    set against the CIFAR ``plain50``: the pair must differ in the shortcut only."""
    from resnet_lab.experiments.survey.cells import run_cell

    batches = _batches(digits, 8, 1, device=torch.device("cpu"), seed=0, image_size=8)
    cells = [{"shortcut": shortcut, "depth": 50, "norm": "batch", "activation": "relu", "init": "he", "lr": 0.1,
              "clip_norm": None} for shortcut in ("plain", "residual")]
    runs = [run_cell(cell, batches, batches, steps=1, seed=0, device="cpu", num_classes=10, in_channels=1)
            for cell in cells]
    assert [(r["first_block"], r["last_block"]) for r in runs] == [("layer1.0", "layer3.7")] * 2  # 3 x 8 blocks


def test_demo_settings_are_valid():
    assert set(DEMO_SETTINGS) <= set(inspect.signature(run_survey).parameters)
    assert max(DEMO_SETTINGS["depths"]) >= 20 and DEMO_SETTINGS["seeds"] >= 3


@pytest.mark.parametrize("keywords, fragment", [({"seed": 0.5}, "seed must be an integer >= 0, got 0.5"),
                                               ({"image_size": 32.5}, "image-size must be an integer from 8"),
                                               ({"lr": True}, "lr must be a positive number, got True")])
def test_run_survey_refuses_a_seed_or_size_of_the_wrong_kind_in_one_line(keywords, fragment):
    """From Python a float seed once raised a TypeError from range() after the data had loaded; lr=True
    trained every cell at lr 1.0."""
    with pytest.raises(UserError, match=re.escape(fragment)):
        run_survey([8], steps=1, log=None, **keywords)


@pytest.mark.parametrize("depths, keywords, fragment", [
    (None, {}, "depths must be a list such as [8, 20, 56] (or one depth), got None"),
    (8.0, {}, "depths must be a list such as [8, 20, 56] (or one depth), got 8.0"),
    (8, {"only": 5}, "only must be a list such as ['resnet20-batch-relu-he'] (or one cell name), got 5"),
    (8, {"full": "no"}, "full must be True or False, got 'no'"),  # a non-empty string: the whole product
    (8, {"out": 5}, "out is a folder path (a str or Path), got 5"),
])
def test_run_survey_refuses_a_value_of_the_wrong_kind_in_one_line(depths, keywords, fragment):
    """run_survey(None), run_survey(8.0) and only=5 raised TypeError: '... object is not iterable'; full="no"
    ran the whole product of switches, and out=5 was taken without a word."""
    with pytest.raises(UserError, match="^" + re.escape(fragment) + "$"):
        run_survey(depths, steps=1, log=None, **keywords)


def test_survey_settings_hold_every_keyword_of_run_survey():
    """The helpers take one SurveySettings: a keyword added to run_survey must be a field of it too."""
    keywords = [name for name in inspect.signature(run_survey).parameters if name != "log"]
    assert [f.name for f in dataclasses.fields(SurveySettings)] == keywords


# ------------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("argv, fragment", [
    (["survey", "--depths", "21"], "depth 21"),
    (["survey", "--depths", "8", "--steps", "0"], "steps"),
    (["survey", "--depths", "8", "--lr", "-1"], "lr"),
    (["survey", "--data", "nosuchdata"], "unknown data set"),
    (["survey", "--depths", "8", "--jobs", "0"], "--jobs must be a positive integer or 'auto', got 0"),
    (["survey", "--depths", "8", "--jobs", "many"], "--jobs must be a positive integer or auto, got 'many'"),
    (["survey", "--depths", "8", "--devices", "cpu"], "--devices applies to measuring the cells as a sweep"),
    (["survey", "--depths", "8", "--jobs", "2", "--threads", "0"], "threads must be a positive integer, got 0"),
    (["survey", "--depths", "8", "--jobs", "2", "--devices", "cpu", "cpu"], "names a device twice"),
    (["survey", "--depths", "8", "--jobs", "2", "--batch-size", "5000"], "--batch-size 5000 is larger than"),
    # a typo's size once reached torch: a traceback asking for 1.28 TB
    (["survey", "--depths", "8", "--image-size", "100000"], "image-size must be an integer from 8 (CIFAR nets"),
    (["survey", "--depths", "8", "--seed", "-1"], "seed must be an integer >= 0, got -1"),
])
def test_cli_bad_input_exits_2(capsys, argv, fragment, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-lab: error:") and fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "cells").exists()  # refused before any cell was started


def test_cli_out_must_be_a_folder(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["survey", "--depths", "8", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_cli_runs_and_writes(capsys, tmp_path):
    out = tmp_path / "s"
    assert main(["survey", "--depths", "8", "--steps", "2", "--batch-size", "4", "--image-size", "8",
                 "--batches-at-init", "1", "--seeds", "1", "--threads", "1", "--high-lr", "1", "--out", str(out),
                 "--json", "--quiet"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == "" and len(data["cells"]) == 2 * len(VARIANTS) + 2
    assert data["settings"]["high_lr_depth"] == 8
    assert {p.name for p in out.iterdir()} >= {"survey.json", "survey.md", "report.html", "survey_loss_drop.png"}


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["survey", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  resnet-lab survey" in out and "--jobs N|auto" in out and "--devices DEVICE" in out


# ------------------------------------------------------------------------------- measured as a sweep (jobs=)

# Four cells (three claims judged), two seeds: each cell and seed is a worker process (~5 s each here).
SWEPT = dict(depths=(8,), steps=4, seeds=2, batch_size=16, image_size=16, batches_at_init=2, threads=1,
             only=["plain8-batch-relu-he", "resnet8-batch-relu-he", "resnet8-none-relu-he@lr=1",
                   "resnet8-none-relu-he@lr=1+clip=1"])


def _untimed(cells: list[dict]) -> list[dict]:
    """The cells' measurements without their timings (which differ between any two runs)."""
    return [{**{k: v for k, v in c.items() if k != "time_s"},
             "runs": [{k: v for k, v in r.items() if k != "time_s"} for r in c["runs"]]} for c in cells]


def test_survey_as_a_sweep_equals_in_process_resumes_and_reports_a_failed_cell(tmp_path, capsys):
    alone = run_survey(**SWEPT, log=None)  # one thread (the module's fixture), as each worker
    lines = []
    swept = run_survey(**SWEPT, jobs=2, out=tmp_path, log=lines.append)
    assert _untimed(swept["cells"]) == _untimed(alone["cells"]) and swept["claims"] == alone["claims"]
    assert sum(c["verdict"] != "not measured" for c in swept["claims"]) == 3
    s = swept["settings"]
    assert (s["jobs"], s["threads"], s["devices"], s["cells_dir"]) == (2, 1, ["cpu"], str(tmp_path / "cells"))
    assert "2 jobs per device of 1 thread on cpu" in lines[1]
    assert sum(" done resnet8-none-relu-he@lr=1-seed1: first/last " in line for line in lines) == 1
    cells = tmp_path / "cells"
    names = [f"{c}-seed{seed}" for seed in (0, 1) for c in SWEPT["only"]]
    assert sorted(p.name for p in cells.iterdir()) == sorted(names + ["sweep.json"])
    assert [r.state for r in sweep_status(cells)] == ["done"] * 8
    capsys.readouterr()
    assert main(["sweep", "--out", str(cells), "--status"]) == 0  # the cells' table, each with its line
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "state", "result"] and len(table) == 2 + 8
    assert table[2].split()[:4] == ["plain8-batch-relu-he-seed0", "done", "first/last", "1.1,"]

    # Two cells unfinished, as after a kill: one without its result, one whose result cannot be written
    # (a directory in the way: its worker measures, then fails to write). The rest are not measured again.
    results = {name: cells / name / "sweep_result.json" for name in names}
    redo, broken = "resnet8-batch-relu-he-seed1", "plain8-batch-relu-he-seed0"
    results[redo].unlink()
    results[broken].unlink()
    results[broken].mkdir()
    kept = {name: p.stat().st_mtime_ns for name, p in results.items() if name not in (redo, broken)}
    lines.clear()
    with pytest.raises(SweepFailed, match=rf"1 of 8 runs did not finish \({re.escape(broken)}\); why: "
                                          r"IsADirectoryError.*\(exit status 1\) \(see .*worker.err\)"):
        run_survey(**SWEPT, jobs=2, out=tmp_path, log=lines.append)
    assert any(f"FAILED {broken}: IsADirectoryError" in line and "worker.err" in line for line in lines)
    assert results[redo].is_file() and not (tmp_path / "survey.json").exists()
    kept[redo] = results[redo].stat().st_mtime_ns
    results[broken].rmdir()
    lines.clear()
    again = run_survey(**SWEPT, jobs=2, out=tmp_path, log=lines.append)
    assert "7 done, 1 to run" in lines[1] and f"trying {broken} again" in lines[2]
    assert {name: results[name].stat().st_mtime_ns for name in kept} == kept
    assert _untimed(again["cells"]) == _untimed(alone["cells"]) and again["claims"] == alone["claims"]

    # Other settings for cells already measured: refused in one line, nothing measured.
    argv = ["survey", "--depths", "8", "--steps", "5", "--seeds", "2", "--batch-size", "16", "--image-size", "16",
            "--batches-at-init", "2", "--jobs", "2", "--quiet", "--out", str(tmp_path)]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was started with steps=4, this grid gives it steps=5" in err
    assert {name: results[name].stat().st_mtime_ns for name in kept} == kept

    # A result that is JSON but not a cell's measurements (hand-edited, a damaged disk): one line naming it,
    # not a KeyError traceback.
    results[redo].write_text('{"summary": "edited"}')
    with pytest.raises(UserError, match=re.escape(f"{results[redo]} holds no measurements (damaged)")):
        run_survey(**SWEPT, jobs=2, out=tmp_path, log=None)
    with pytest.raises(UserError, match="give an output folder"):
        run_survey(**SWEPT, jobs=2)


def test_jobs_never_replace_the_results_of_a_survey_measured_in_one_process(tmp_path, capsys):
    """--jobs continues its own sweep in DIR/cells; the survey.json of a survey measured in one process (no
    sweep there) was replaced by the cells measured with --jobs' own settings, exit 0."""
    (tmp_path / "survey.json").write_text('{"settings": {"steps": 2}}')  # what a survey without --jobs leaves
    argv = ["survey", "--depths", "8", "--steps", "3", "--seeds", "1", "--jobs", "2", "--quiet", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "already holds the results of an earlier survey (survey.json) in one process" in err and \
        err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["survey.json"]


def test_survey_cli_with_jobs_stops_on_sigterm_keeping_the_measured_cells(tmp_path):
    out = tmp_path / "s"
    cli = [sys.executable, "-m", "resnet_lab", "survey", "--depths", "8", "--steps", "2", "--seeds", "1",
           "--batch-size", "8", "--image-size", "8", "--batches-at-init", "1", "--jobs", "2", "--threads", "1",
           "--out", str(out)]
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not list(out.glob("cells/*/sweep_result.json")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "survey: sweep: SIGTERM received; stopping" in stderr
    assert re.search(r"resnet-lab: survey interrupted; \d running runs? stopped \(they start again from the "
                     r"beginning\); run the same command again to continue", stderr)
    states = {r.name: r.state for r in sweep_status(out / "cells")}
    assert len(states) == 2 * len(VARIANTS) + 2 and "failed" not in states.values()
    assert 1 <= list(states.values()).count("done") < len(states)
    assert not (out / "survey.json").exists() and stdout == ""


def test_numpy_integers_are_counts_like_ints_and_the_result_stays_json_ready():
    import numpy as np

    result = run_survey([8], steps=np.int64(2), seeds=np.int64(1), batches_at_init=np.int32(1),
                        batch_size=np.int64(16), image_size=8, only=["plain8-batch-relu-he"], threads=1, log=None)
    json.dumps(result)
    assert result["settings"]["steps"] == 2 and type(result["settings"]["steps"]) is int


def test_only_given_one_cell_name_runs_that_cell_not_its_letters():
    result = run_survey([8], steps=1, seeds=1, batches_at_init=1, batch_size=16, image_size=8,
                        only="plain8-batch-relu-he", threads=1, log=None)
    assert [c["name"] for c in result["cells"]] == ["plain8-batch-relu-he"]


def test_the_survey_does_not_reseed_the_callers_random_numbers():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_survey([8], steps=1, seeds=1, batches_at_init=1, batch_size=16, image_size=8,
               only=["plain8-batch-relu-he"], threads=1, log=None)
    assert torch.equal(torch.rand(3), expected)


def test_numpy_depths_learning_rate_and_image_size_are_taken_as_numbers():
    import numpy as np

    result = run_survey(np.int64(8), steps=1, seeds=1, batches_at_init=1, batch_size=16, image_size=np.int64(8),
                        lr=np.float32(0.1), only=["plain8-batch-relu-he"], threads=1, log=None)
    json.dumps(result)
    assert list(result["settings"]["depths"]) == [8]
