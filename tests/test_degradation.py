"""The degradation experiment: real (tiny) runs, their records, findings computed from them, outputs, CLI."""

from __future__ import annotations

import html
import json
import os
import re
import runpy
import sys
from pathlib import Path

import pytest

from resnet_lab.cli.main import main
from resnet_lab.data import limit_dataset, load_data, resize_dataset
from resnet_lab.errors import UserError
from resnet_lab.experiments import run_degradation, write_degradation_outputs
from resnet_lab.experiments.degradation import TIE, snapshot_epochs
from resnet_lab.experiments.degradation.findings import findings

EPOCHS = 2
SEEDS = (0, 1)
BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_degradation_cifar.py"


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def run(digits, tmp_path_factory):
    """plain/resnet 8 and 14 on a digits subset (384 train, 96 test, 16x16, 6 steps per epoch), 2 epochs, 2 seeds."""
    small = resize_dataset(limit_dataset(digits, train=384, test=96, seed=0), 16)
    result = run_degradation((14, 8), data="digits", dataset=small, seeds=SEEDS, epochs=EPOCHS, device="cpu",
                             batch_size=64, monitor_every=2, log=None)
    out = tmp_path_factory.mktemp("degradation")
    paths = write_degradation_outputs(result, out)
    return result, out, paths


def test_one_entry_per_network_with_real_measurements(run):
    result, out, _ = run
    nets = result["networks"]
    assert [(n["model"], n["depth"], n["shortcut"]) for n in nets] == [
        ("plain8", 8, False), ("resnet8", 8, True), ("plain14", 14, False), ("resnet14", 14, True)]
    assert result["settings"]["steps_per_epoch"] == 6 and result["settings"]["epochs_run"] == EPOCHS
    for n in nets:
        for key in ("train_error", "test_error", "train_error_std", "test_error_std"):
            assert len(n[key]) == EPOCHS, key  # one value per epoch
        for key in ("train_error", "test_error"):
            assert all(0.0 <= e <= 1.0 for e in n[key])
            # the per-network curve is the mean of the per-seed curves, which come from the runs
            per_seed = [r[key] for r in n["runs"]]
            assert len(per_seed) == len(SEEDS) and all(len(c) == EPOCHS for c in per_seed)
            assert n[key] == pytest.approx([sum(c[i] for c in per_seed) / len(SEEDS) for i in range(EPOCHS)])
            assert n[f"final_{key}"] == pytest.approx(n[key][-1])
            assert n[f"final_{key}_std"] >= 0.0
        # 96 test images: every test error is a multiple of 1/96
        for r in n["runs"]:
            assert all(abs(e * 96 - round(e * 96)) < 1e-6 for e in r["test_error"])
        assert n["seeds"] == list(SEEDS) and n["time_s"] > 0
        assert n["params"] > 0
    # different seeds give different curves (measured, not copied)
    assert any(n["runs"][0]["train_error"] != n["runs"][1]["train_error"] for n in nets)


def test_plain_and_residual_twins_have_equal_parameters(run):
    result, _, _ = run
    by = {(n["depth"], n["shortcut"]): n for n in result["networks"]}
    for d in (8, 14):
        assert by[(d, False)]["params"] == by[(d, True)]["params"]  # option A adds no parameters
        assert by[(d, True)]["shortcut_option"] == "A" and by[(d, False)]["shortcut_option"] == "none"
    assert by[(14, True)]["params"] > by[(8, True)]["params"]


def test_finer_curve_and_gradient_snapshots(run):
    result, _, _ = run
    log_every = result["settings"]["log_every"]
    assert log_every >= 1
    for n in result["networks"]:
        steps = [r["step"] for r in n["step_curve"]]
        assert len(steps) == EPOCHS * 6 // log_every and steps == sorted(steps)
        assert all(0.0 <= r["train_error"] <= 1.0 and r["train_error_std"] >= 0 for r in n["step_curve"])
        snaps = n["gradient_flow"]
        assert [s["epoch"] for s in snaps] == [1, 2]
        for s in snaps:
            assert s["groups"] and s["groups"][0]["name"] == "stem"
            assert all(g["grad_norm"] > 0 for g in s["groups"])
            assert [g["depth_index"] for g in s["groups"]] == sorted(g["depth_index"] for g in s["groups"])
    # a deeper net has more layer groups
    by = {n["model"]: n for n in result["networks"]}
    assert len(by["plain14"]["gradient_flow"][0]["groups"]) > len(by["plain8"]["gradient_flow"][0]["groups"])


def test_findings_agree_with_the_numbers(run):
    result, _, _ = run
    by = {(n["depth"], n["shortcut"]): n["final_train_error"] for n in result["networks"]}
    f = result["findings"]
    plain = by[(14, False)] - by[(8, False)] > TIE
    res_gap = by[(14, True)] - by[(8, True)]
    assert f["degradation_plain"] is plain
    assert f["deeper_resnet_better"] is (res_gap < -TIE)
    assert f["degradation_observed"] is (plain and res_gap <= TIE)
    head = f["text"][0]
    assert head.startswith("Degradation showed up" if f["degradation_observed"] else "Degradation did NOT")
    assert f"{100 * by[(14, False)]:.1f}%" in head and f"{100 * by[(8, True)]:.1f}%" in head


def test_outputs_written(run):
    result, out, paths = run
    saved = json.loads((out / "results.json").read_text())
    assert saved["networks"][0]["train_error"] == pytest.approx(result["networks"][0]["train_error"])
    for name in ("model", "depth", "shortcut", "params", "train_error", "test_error", "final_train_error",
                 "final_test_error"):
        assert all(name in n for n in saved["networks"])
    for name in ("degradation.png", "degradation.svg", "gradient_flow.png", "report.html"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "degradation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    for line in result["findings"]["text"]:
        assert html.escape(line) in page
    assert page.index("Findings") < page.index("Final errors") < page.index("Training curves")
    for fact in ("Settings", "Seeds", "Hardware", "Library versions", "Run time", "torch"):
        assert fact in page
    assert "data:image/svg+xml;base64," in page  # figures embedded, nothing fetched
    assert "src=\"http" not in page and "href=\"http" not in page


def test_outputs_never_replace_another_commands_report_or_results(run, tmp_path):
    result, out, _ = run
    run_dir = tmp_path / "r20"  # a training run's folder: its report.html is not the experiment's
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    (run_dir / "report.html").write_text("the run's report")
    with pytest.raises(UserError, match=r"r20 holds a report.html that is not an earlier degradation experiment's"):
        write_degradation_outputs(result, run_dir)
    assert (run_dir / "report.html").read_text() == "the run's report" and not (run_dir / "results.json").exists()
    table6 = tmp_path / "table6"
    table6.mkdir()
    (table6 / "results.json").write_text('{"experiment": "table6"}')
    with pytest.raises(UserError, match=r"table6 holds the results of a table6 experiment \(results.json\)"):
        write_degradation_outputs(result, table6)
    assert json.loads((table6 / "results.json").read_text()) == {"experiment": "table6"}
    with pytest.raises(UserError, match=r"^cannot write out_dir .*: .*config.json is a file, not a folder"):
        write_degradation_outputs(result, run_dir / "config.json" / "degradation")
    assert write_degradation_outputs(result, out)["report"] == out / "report.html"  # its own earlier outputs: replaced


def test_report_renders_in_headless_chromium(run):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from browser import browser_missing, open_in_browser

    reason = browser_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    _, out, _ = run
    images, errors = open_in_browser(out / "report.html")
    assert errors == [] and images["failed"] == []
    assert len(images["images"]) == 2  # the training curves and the gradient flow
    assert not images["layout"]["phone"]["overflows"] and not images["layout"]["laptop"]["overflows"]


def test_findings_on_known_numbers():
    def net(depth, shortcut, err, std=0.0):
        return {"model": f"{'resnet' if shortcut else 'plain'}{depth}", "depth": depth, "shortcut": shortcut,
                "params": 1000 * depth, "seeds": [0], "final_train_error": err, "final_test_error": err + 0.05,
                "final_train_error_std": std, "final_test_error_std": std}

    settings = {"seeds": [0], "epochs_run": 3}
    yes = findings([net(20, False, 0.10), net(20, True, 0.08), net(56, False, 0.20), net(56, True, 0.05)], settings)
    assert yes["degradation_observed"] and yes["text"][0].startswith(
        "Degradation showed up in this run: plain56 ended at 20.0% training error vs 10.0% for plain20, "
        "while resnet56 reached 5.0% vs 8.0% for resnet20")
    # both ResNets near 0% training error: the deeper one cannot end lower, but it did not degrade
    matched = findings([net(20, False, 0.02), net(20, True, 0.008), net(56, False, 0.57), net(56, True, 0.009)],
                       settings)
    assert matched["degradation_observed"] and not matched["deeper_resnet_better"]
    assert matched["text"][0].startswith("Degradation showed up") and "within the 0.5-point tie" in matched["text"][0]
    assert "no room" in matched["text"][0]
    high = findings([net(20, False, 0.30), net(20, True, 0.25), net(56, False, 0.50), net(56, True, 0.252)], settings)
    assert high["degradation_observed"] and "no room" not in high["text"][0]
    half = findings([net(20, False, 0.10), net(20, True, 0.08), net(56, False, 0.20), net(56, True, 0.12)], settings)
    assert half["degradation_plain"] and not half["deeper_resnet_better"] and not half["degradation_observed"]
    assert "did NOT" in half["text"][0] and "too few epochs (3 epochs)" in half["text"][0]
    tie = findings([net(20, False, 0.10), net(20, True, 0.10), net(56, False, 0.102), net(56, True, 0.099)], settings)
    assert not tie["degradation_plain"] and not tie["deeper_resnet_better"]
    one = findings([net(20, False, 0.1), net(20, True, 0.1)], settings)
    assert not one["degradation_observed"] and "cannot be judged" in one["text"][0]
    # One seed and nets that barely trained: the verdict stands, with the two cautions beside it.
    assert "Caution: one seed" in yes["text"][1] and not any("chance" in t for t in yes["text"])
    noise = findings([net(8, False, 0.832), net(8, True, 0.857), net(14, False, 0.884), net(14, True, 0.822)],
                     {**settings, "num_classes": 10})
    assert noise["degradation_observed"] and any(t.startswith("Caution: every net ended within 10 points of "
                                                              "chance (90.0%") for t in noise["text"])


def test_shortcut_option_applies_to_the_resnets_only(digits):
    tiny = resize_dataset(limit_dataset(digits, train=64, test=16), 8)
    result = run_degradation((8,), data="digits", dataset=tiny, epochs=1, device="cpu", batch_size=32, log=None,
                             model_options={"shortcut": "B"})
    plain, res = result["networks"]
    assert (plain["shortcut_option"], res["shortcut_option"]) == ("none", "B")
    assert res["params"] > plain["params"]  # projections where the shape changes
    assert "cannot be judged" in result["findings"]["text"][0]
    with pytest.raises(UserError, match="plain"):
        run_degradation((8,), dataset=tiny, epochs=1, log=None, model_options={"shortcut": "none"})


def test_an_evaluation_interval_other_than_every_epoch_is_refused(digits):
    """eval_every=2 once crashed after training (an unevaluated epoch has no test error for the curves)."""
    with pytest.raises(UserError, match="eval_every must be 1 here"):
        run_degradation((8,), dataset=limit_dataset(digits, train=64, test=16), epochs=2, eval_every=2, log=None)


@pytest.mark.parametrize("options, fragment", [
    ({"log_every": "2"}, "--log-every must be an integer >= 0 (steps), got '2'"),
    ({"log_every": -1}, "--log-every must be an integer >= 0 (steps), got -1"),
    ({"out": 3}, "out is a file or folder path (a str or Path), got 3"),
    ({"model_options": "none"}, "model_options is a dict of create_model keywords"),
])
def test_a_value_of_the_wrong_kind_is_one_line(options, fragment, tmp_path):
    """log_every="2", out=3 and model_options="none" ended in a TypeError or a bare ValueError from inside."""
    with pytest.raises(UserError, match=re.escape(fragment)):
        run_degradation((8,), data="digits", steps=1, log=None, **options)


def test_sweep_settings_without_jobs_are_refused_not_ignored(digits):
    """threads= and devices= once did nothing without jobs=: the networks trained with torch's own threads."""
    tiny = limit_dataset(digits, train=64, test=16)
    with pytest.raises(UserError, match="--threads apply to concurrent training; add --jobs N"):
        run_degradation((8,), dataset=tiny, epochs=1, threads=1, log=None)
    with pytest.raises(UserError, match="--devices apply to concurrent training"):
        run_degradation((8,), dataset=tiny, epochs=1, devices=["cpu"], log=None)


def test_settings_list_the_snapshot_epochs_taken_not_those_planned(digits):
    """An epoch without a monitor record has no gradient snapshot; the settings once listed it anyway."""
    tiny = limit_dataset(digits, train=64, test=16)  # batch 32: 2 steps an epoch, records at steps 0 and 4
    result = run_degradation((8,), data="digits", dataset=tiny, epochs=3, device="cpu", batch_size=32,
                             monitor_every=4, log=None)
    assert snapshot_epochs(3) == [1, 2, 3] and result["settings"]["snapshot_epochs"] == [1, 3]
    assert all([g["epoch"] for g in n["gradient_flow"]] == [1, 3] for n in result["networks"])


def test_snapshot_epochs():
    assert snapshot_epochs(1) == [1]
    assert snapshot_epochs(3) == [1, 2, 3]
    assert snapshot_epochs(182) == [1, 61, 122, 182]


def test_data_helpers(digits):
    small = limit_dataset(digits, train=100, test=20, seed=1)
    assert len(small.y_train) == 100 and len(small.y_test) == 20
    assert len(set(small.y_train.tolist())) > 5  # shuffled, not a prefix
    half = resize_dataset(small, 16)
    assert half.image_size == 16 and half.x_train.dtype == digits.x_train.dtype
    with pytest.raises(UserError):
        limit_dataset(digits, train=0)


@pytest.mark.parametrize("argv, words", [
    (["--depths", "21"], "6n+2"),
    (["--depths", "20", "20"], "each depth once"),
    (["--epochs", "-1"], "--epochs must be at least 1"),
    (["--seeds", "1", "1"], "each seed once"),
    (["--lr", "0"], "--lr must be positive"),
    (["--data", "nope"], "unknown data set"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, words, capsys, tmp_path):
    assert main(["degradation", "--out", str(tmp_path / "o"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err and err.startswith("resnet-lab: error:")
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


def test_cli_runs_end_to_end(capsys, tmp_path):
    out = tmp_path / "deg"
    code = main(["degradation", "--depths", "8", "14", "--epochs", "1", "--image-size", "8", "--batch-size", "256",
                 "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "plain14" in printed and "findings:" in printed and str(out / "report.html") in printed
    saved = json.loads((out / "results.json").read_text())
    assert [n["model"] for n in saved["networks"]] == ["plain8", "resnet8", "plain14", "resnet14"]
    assert saved["settings"]["data_description"].startswith("digits at 8x8")
    assert (out / "degradation.png").stat().st_size > 0 and (out / "report.html").stat().st_size > 0
    # Run again into the same folder, with other settings: refused before training, the results kept.
    before = (out / "results.json").read_bytes()
    assert main(["degradation", "--depths", "8", "--epochs", "1", "--out", str(out)]) == 2
    assert "already holds the results of an earlier degradation experiment" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before


def test_jobs_never_replace_the_results_of_an_experiment_trained_in_one_process(capsys, tmp_path):
    """--jobs continues its own sweep in DIR/runs; given the folder of an experiment trained in one process
    (no sweep there), it trained the networks again with its own settings and replaced results.json,
    exit 0: the earlier results, of other settings, were lost."""
    out = tmp_path / "deg"
    argv = ["degradation", "--depths", "8", "--seeds", "0", "--image-size", "8", "--device", "cpu", "--quiet",
            "--out", str(out)]
    assert main([*argv, "--steps", "2"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([*argv, "--steps", "3", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert ("already holds the results of an earlier degradation experiment (results.json) in one process" in err
            and err.count("\n") == 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["degradation", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_cifar_benchmark_smoke(shared_data_dir, tmp_path):
    assert (shared_data_dir / "cifar10-small.npz").is_file()
    out = tmp_path / "bench.json"
    argv = sys.argv
    sys.argv = [str(BENCH), "--smoke", "--quiet", "--out", str(out)]
    try:
        runpy.run_path(str(BENCH), run_name="__main__")
    finally:
        sys.argv = argv
    result = json.loads(out.read_text())
    assert result["hardware"]["torch"] and result["hardware"]["cpu"]
    assert [n["model"] for n in result["networks"]] == ["plain8", "resnet8", "plain14", "resnet14"]
    assert all(len(n["train_error"]) == 1 and 0 <= n["final_train_error"] <= 1 for n in result["networks"])
    assert "cifar10-small" in result["data"] and "256 train" in result["data_description"]
    f = result["findings"]
    assert isinstance(f["degradation_observed"], bool) and f["text"]


@pytest.mark.parametrize("depths,seeds", [([8.7], (0,)), (["8"], (0,)), ([8], (0.5,))])
def test_depths_and_seeds_that_are_not_integers_are_refused_not_cut_to_one(depths, seeds):
    import numpy as np

    with pytest.raises(UserError, match="must be integers such as"):
        run_degradation(depths, seeds=seeds, data="digits", steps=1, image_size=16, log=None)
    from resnet_lab.experiments.degradation import check_depths
    assert check_depths(np.array([14, 8])) == [8, 14]  # numpy integers are integers


def test_one_depth_and_one_seed_where_a_list_goes_are_taken_as_lists():
    """run_degradation(8, seeds=0) was refused with "depths must be integers such as 20 56, got 8"."""
    from resnet_lab.experiments.degradation import check_depths, check_seeds

    assert check_depths(8) == [8] and check_seeds(0) == [0]
    result = run_degradation(8, seeds=0, data="digits", steps=1, image_size=16, log=None)
    assert [n["model"] for n in result["networks"]] == ["plain8", "resnet8"] and result["settings"]["seeds"] == [0]


def test_val_split_with_a_data_set_given_already_loaded_is_refused_not_ignored():
    ds = load_data("digits")
    with pytest.raises(UserError, match=r"val_split=100 .* pass dataset\.with_holdout\(100, seed\) or drop val_split"):
        run_degradation([8], dataset=ds, val_split=100, steps=1, image_size=16, log=None)
    held = run_degradation([8], dataset=ds.with_holdout(100, 0), val_split=100, steps=1, image_size=16, log=None)
    assert held["settings"]["eval_split"] == "val"
    alone = run_degradation([8], data="digits", val_split=100, steps=1, image_size=16, log=None)
    assert alone["settings"]["eval_split"] == "val"


def test_numpy_depths_and_log_every_are_numbers_and_the_result_stays_json_ready():
    import numpy as np

    result = run_degradation(np.array([8]), data="digits", steps=2, image_size=16, log_every=np.int64(1), log=None)
    json.dumps(result)


def test_an_interrupted_experiment_with_save_runs_names_the_runs_it_kept(tmp_path):
    """Interrupted with --save-runs, it said "nothing was written" while DIR/runs held the first network's run
    (its last.pt), and the same command was then refused for that folder."""
    import signal
    import subprocess
    import time

    out = tmp_path / "deg"
    proc = subprocess.Popen([sys.executable, "-m", "resnet_lab", "degradation", "--depths", "8", "--steps", "100000",
                             "--image-size", "8", "--device", "cpu", "--quiet", "--save-runs", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = out / "runs" / "plain8-seed0" / "config.json"
    deadline = time.time() + 120
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    line = err.strip().splitlines()[-1]
    assert "nothing was written" not in line and f"run directories so far are kept in {out / 'runs'}" in line
    assert first.exists() and not (out / "results.json").exists()
