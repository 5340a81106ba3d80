"""`run_survey`, its claims, outputs and CLI.

A tiny survey (depths 8 and 20, 5 steps, batch 8, 16 px) runs once per module: the tests check the
structure of its JSON, that the numbers come from real runs (re-measured independently here), and
that every claim's verdict follows from the cells by the documented rule (re-derived here). The
known physics is checked on 56-layer nets at initialisation (no training: fast).
"""

from __future__ import annotations

import inspect
import json
import math
import statistics

import pytest
import torch

from resnet_lab.cli.main import main
from resnet_lab.data import load_data
from resnet_lab.diagnostics import KINDS
from resnet_lab.experiments import run_survey
from resnet_lab.experiments.survey import (CLAIMS, DEMO_SETTINGS, DIVERGE_FACTOR, LOSS_SMOOTH, ORDER, OUTCOMES,
                                           TRAINED_DROP, VANISH_RATIO, VARIANTS, judge_claims, loss_summary,
                                           measure_init_gradients, survey_markdown, survey_table,
                                           write_survey_outputs)
from resnet_lab.experiments.survey.cells import _batches
from resnet_lab.models import create_model

TINY = dict(depths=(8, 20), steps=5, batch_size=16, image_size=16, batches_at_init=2, seed=0, threads=1, log=None)
CELL_KEYS = {"name", "group", "variant", "depth", "shortcut", "norm", "activation", "init", "lr", "clip_norm",
             "first_block", "last_block", "grad_first_batches", "grad_last_batches", "grad_first", "grad_last",
             "ratio", "verdict", "reason", "verdict_step", "steps_run", "global_grad_norm", "losses", "loss_start",
             "loss_end", "loss_drop", "steps_to_90", "steps_to_half", "outcome", "time_s"}


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
    assert s["seed"] == 0 and s["threads"] == 1 and s["high_lr"] == pytest.approx(10 * s["lr"])
    assert survey["hardware"]["torch"] == torch.__version__ and survey["run_time_s"] > 0
    cells = survey["cells"]
    # one switch at a time: every variant for every depth and shortcut, plus the high-lr pair
    assert len(cells) == 2 * 2 * len(VARIANTS) + 2
    assert len({c["name"] for c in cells}) == len(cells)
    for c in cells:
        assert set(c) == CELL_KEYS, c["name"]
        assert c["variant"] == f"{c['norm']}/{c['activation']}/{c['init']}"
    high = [c for c in cells if c["group"] == "high_lr"]
    assert [c["clip_norm"] for c in high] == [None, 1.0] and {c["lr"] for c in high} == {s["high_lr"]}
    assert [c["id"] for c in survey["claims"]] == list(CLAIMS)
    for claim in survey["claims"]:
        assert claim["supported"] in (True, False, None)
        assert claim["evidence"] and claim["claim"] == CLAIMS[claim["id"]]
        names = {c["name"] for c in cells}
        assert set(claim["cells"]) <= names
    json.loads(json.dumps(survey, allow_nan=False))  # valid JSON as returned: no NaN/Inf


def test_numbers_come_from_runs(survey):
    s = survey["settings"]
    for c in survey["cells"]:
        assert len(c["grad_first_batches"]) == len(c["grad_last_batches"]) == s["batches_at_init"]
        assert c["grad_first"] == pytest.approx(statistics.fmean(c["grad_first_batches"]), rel=1e-12)
        assert c["grad_last"] == pytest.approx(statistics.fmean(c["grad_last_batches"]), rel=1e-12)
        assert math.isfinite(c["grad_first"]) and c["grad_first"] > 0, c["name"]
        assert math.isfinite(c["grad_last"]) and c["grad_last"] > 0, c["name"]
        assert c["ratio"] == pytest.approx(c["grad_first"] / c["grad_last"], rel=1e-12)
        assert (c["first_block"], c["last_block"]) == ("layer1.0", f"layer3.{(c['depth'] - 2) // 6 - 1}")
        assert c["verdict"] in KINDS and c["reason"]
        assert c["outcome"] in OUTCOMES and c["time_s"] > 0
        # the losses are the monitor's records of the short run
        assert 1 <= c["steps_run"] <= s["steps"] and len(c["losses"]) == c["steps_run"]
        assert c["loss_start"] == c["losses"][0]
        if c["loss_end"] is not None:
            assert c["loss_end"] == pytest.approx(statistics.fmean(c["losses"][-LOSS_SMOOTH:]))
            assert c["loss_drop"] == pytest.approx(1 - c["loss_end"] / c["loss_start"])
        else:
            assert c["outcome"] == "diverged"
    # real measurements differ from cell to cell
    assert len({round(c["grad_first"], 12) for c in survey["cells"]}) > len(survey["cells"]) // 2


def test_init_gradients_match_an_independent_measurement(survey, digits):
    """Re-measure one cell by hand: same seed, same batches, the first and last blocks' gradients."""
    c = _cell(survey, "plain", 20, "batch", "tanh", "he")
    batches = _batches(digits, 16, 2, device=torch.device("cpu"), seed=0, image_size=16)
    torch.manual_seed(0)
    model = create_model("plain20", norm="batch", activation="tanh", init="he", num_classes=10, in_channels=1)
    model.train()
    first, last = [], []
    for x, y in batches:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for out, block in ((first, model.layer1[0]), (last, model.layer3[-1])):
            out.append(math.sqrt(sum(float(p.grad.double().square().sum()) for p in block.parameters())))
    assert c["grad_first_batches"] == pytest.approx(first, rel=1e-6)
    assert c["grad_last_batches"] == pytest.approx(last, rel=1e-6)


def test_high_lr_pair_blows_up_without_clipping_only(survey):
    raw, clipped = [c for c in survey["cells"] if c["group"] == "high_lr"]
    assert raw["shortcut"] == "residual" and raw["norm"] == "none" and raw["depth"] == 20
    assert raw["outcome"] == "diverged" and raw["verdict"] in ("exploding", "nonfinite")
    assert clipped["outcome"] != "diverged" and clipped["steps_run"] == survey["settings"]["steps"]


# ------------------------------------------------------------------------------- claims

def _recompute(result: dict) -> dict:
    """The documented rules, written out again from the cells."""
    def find(*key, **kw):
        return _cell(result, *key, **kw)

    def rank(c, by_verdict=False):
        order = {"diverged": 0, "stalled": 1, "trained": 2}[c["outcome"]]
        drop = -math.inf if c["loss_drop"] is None else c["loss_drop"]
        return (order, int(c["verdict"] == "healthy"), drop) if by_verdict else (order, drop)

    depths = sorted({c["depth"] for c in result["cells"] if c["group"] == "switches"})
    deep = depths[-1]
    tens = [d for d in depths if 20 <= d < 100]
    out = {}
    out["bn_plain_trainable"] = (all(find("plain", d, "batch", "relu", "he")["outcome"] == "trained" for d in tens)
                                 if tens else None)
    out["residual_gradient"] = all(1 / ORDER <= find("residual", d, "batch", "relu", "he")["ratio"] <= ORDER
                                   for d in depths)
    out["sigmoid_vanishes"] = find("plain", deep, "none", "sigmoid", "he")["ratio"] < VANISH_RATIO
    out["he_beats_normal"] = (rank(find("plain", deep, "none", "relu", "he"), True)
                              > rank(find("plain", deep, "none", "relu", "normal"), True))
    raw, clipped = [c for c in result["cells"] if c["group"] == "high_lr"]
    out["clip_prevents_blowup"] = (clipped["outcome"] != "diverged") if raw["outcome"] == "diverged" else None
    out["residual_trains_faster"] = (rank(find("residual", deep, "batch", "relu", "he"))
                                     >= rank(find("plain", deep, "batch", "relu", "he")))
    return out


def test_claims_follow_from_the_cells(survey):
    expected = _recompute(survey)
    got = {c["id"]: c["supported"] for c in survey["claims"]}
    assert got == expected
    # the evidence quotes the cells it rests on
    for claim in survey["claims"]:
        assert any(name in claim["evidence"] for name in claim["cells"])


def test_claims_change_when_the_measurements_change(survey):
    """Nothing is hard-coded: edit the measurements and the verdicts follow."""
    cells = [dict(c) for c in survey["cells"]]
    by = {c["name"]: c for c in cells}
    by["resnet20-batch-relu-he"]["ratio"] = 1e3
    by["plain20-none-sigmoid-he"]["ratio"] = 0.5
    by["plain20-batch-relu-he"].update(outcome="stalled", loss_drop=0.0)
    raw, clipped = (by["resnet20-none-relu-he@lr=1"], by["resnet20-none-relu-he@lr=1+clip=1"])
    clipped.update(outcome="diverged", loss_end=None, loss_drop=None)
    claims = {c["id"]: c["supported"] for c in judge_claims(cells)}
    assert claims["residual_gradient"] is False and claims["sigmoid_vanishes"] is False
    assert claims["bn_plain_trainable"] is False and claims["clip_prevents_blowup"] is False
    raw.update(outcome="stalled", loss_end=2.0, loss_drop=0.1)
    assert {c["id"]: c for c in judge_claims(cells)}["clip_prevents_blowup"]["supported"] is None
    shallow = [c for c in cells if c["depth"] == 8]
    assert {c["id"]: c["supported"] for c in judge_claims(shallow)}["bn_plain_trainable"] is None


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


def test_demo_settings_are_valid():
    assert set(DEMO_SETTINGS) <= set(inspect.signature(run_survey).parameters)
    assert max(DEMO_SETTINGS["depths"]) >= 20


# ------------------------------------------------------------------------------- CLI

@pytest.mark.parametrize("argv, fragment", [
    (["survey", "--depths", "21"], "depth 21"),
    (["survey", "--depths", "8", "--steps", "0"], "steps"),
    (["survey", "--depths", "8", "--lr", "-1"], "lr"),
    (["survey", "--data", "nosuchdata"], "unknown data set"),
])
def test_cli_bad_input_exits_2(capsys, argv, fragment, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("resnet-lab: error:") and fragment in err and len(err.splitlines()) == 1


def test_cli_out_must_be_a_folder(capsys, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["survey", "--depths", "8", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_cli_runs_and_writes(capsys, tmp_path):
    out = tmp_path / "s"
    assert main(["survey", "--depths", "8", "--steps", "2", "--batch-size", "4", "--image-size", "8",
                 "--batches-at-init", "1", "--threads", "1", "--high-lr", "1", "--out", str(out), "--json",
                 "--quiet"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert captured.err == "" and len(data["cells"]) == 2 * len(VARIANTS) + 2
    assert data["settings"]["high_lr_depth"] == 8
    assert {p.name for p in out.iterdir()} >= {"survey.json", "survey.md", "report.html", "survey_loss_drop.png"}


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["survey", "--help"])
    assert exc.value.code == 0
    assert "examples:\n  resnet-lab survey" in capsys.readouterr().out
