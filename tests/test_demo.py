"""The main job end to end (at tiny sizes): every part runs, headlines carry measured numbers,
and the one combined report opens in a real browser with every image loaded."""

from __future__ import annotations

import json
import os
import re

import pytest

from browser import browser_missing, open_in_browser
from resnet_lab.experiments.demo import depth_verdict, run_demo

TINY = {
    "degradation": {"depths": (8, 14), "epochs": 1, "image_size": 16, "batch_size": 64},
    "survey": {"depths": (8,), "steps": 3, "batch_size": 16, "image_size": 16, "batches_at_init": 1},
    "compare": {"models": ["resnet20", "resnet32"], "quick": True},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return run_demo(out=out, sizes=TINY, log=None), out  # None: silent, as for the experiments


def test_demo_writes_each_experiment_and_one_report(demo):
    result, out = demo
    for path in ("degradation/results.json", "degradation/degradation.png", "survey/survey.json",
                 "compare/compare.json", "report.html"):
        assert (out / path).stat().st_size > 0, path
    networks = json.loads((out / "degradation" / "results.json").read_text())["networks"]
    assert {n["model"] for n in networks} == {"plain8", "resnet8", "plain14", "resnet14"}
    assert set(result["timings_s"]) == {"degradation", "survey", "compare"}
    summary = json.loads((out / "demo.json").read_text())  # what the README and bench_demo.py read
    assert summary["timings_s"] == result["timings_s"] and summary["headlines"] == result["headlines"]
    assert summary["hardware"]["torch"] and summary["time"] and summary["report"] == str(out / "report.html")
    paths = re.findall(r'"(/[^"]+)"', json.dumps(summary["outputs"]))
    assert len(paths) >= 10 and all(os.path.exists(p) for p in paths), paths


def test_headlines_are_measured_numbers(demo):
    result, _ = demo
    assert 3 <= len(result["headlines"]) <= 6
    assert all(re.search(r"\d", line) for line in result["headlines"])
    plain14 = next(n for n in result["degradation"]["networks"] if n["model"] == "plain14")
    assert f"{plain14['final_train_error']:.1%}" in result["headlines"][0]
    assert f"({depth_verdict(result['degradation']['findings'])})" in result["headlines"][0]


def test_depth_headline_names_which_nets_degraded():
    def verdict(observed, plain):
        return depth_verdict({"degradation_observed": observed, "degradation_plain": plain})

    assert verdict(True, True) == "the plain net degrades, the ResNet does not"
    assert verdict(False, True) == "both deeper nets train worse here"
    assert verdict(False, False) == "no degradation"


def test_demo_report_opens_in_a_browser_with_every_image_loaded(demo):
    reason = browser_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the browser test cannot run: {reason}")
        pytest.skip(reason)
    _, out = demo
    images, errors = open_in_browser(out / "report.html")
    assert not images["failed"] and len(images["images"]) >= 4
    assert errors == []
    assert not images["layout"]["phone"]["overflows"]


def test_demo_stopped_by_sigterm_says_so_in_one_line_and_exits_143(tmp_path):
    """The degradation part trains in the demo's process, so its loop gets the signal: one line
    saying what happened (no traceback, no '--resume None' for a run that has no directory)."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "resnet_lab", "demo", "--out", str(tmp_path / "demo")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first epoch line: a network's training loop is running
        if "epoch" in line and "train loss" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    assert re.fullmatch(r"resnet-lab: demo interrupted at step \d+ of a network's training; its report was not "
                        r"written; run the command again to start over\n", err), err[-2000:]
    assert not (tmp_path / "demo" / "report.html").exists()



def test_sizes_naming_a_part_the_demo_has_not_is_one_line_before_any_work(tmp_path):
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match="sizes has no part 'degradaton'; its parts are degradation, survey, compare"):
        run_demo(out=tmp_path / "demo", sizes={"degradaton": {"depths": (8,)}}, log=None)
    assert not (tmp_path / "demo").exists()


def test_an_out_holding_another_commands_report_is_refused_before_any_work(tmp_path):
    from resnet_lab.errors import UserError

    (tmp_path / "report.html").write_text("a training run's report")
    with pytest.raises(UserError, match="holds a report.html that is not an earlier demo's"):
        run_demo(out=tmp_path, sizes=TINY, log=None)
    assert (tmp_path / "report.html").read_text() == "a training run's report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_an_empty_out_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch):
    """run_demo(out="") (an unset variable) wrote the whole demo into the current folder."""
    from resnet_lab.errors import UserError

    monkeypatch.chdir(tmp_path)
    for out in ("", "  "):
        with pytest.raises(UserError, match=r"^out_dir is empty \('\s*'\); give a folder to write to$"):
            run_demo(out=out, sizes=TINY, log=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, r"^epochs must be a positive integer, got 0$"),  # once ran the built-in 15 epochs
    ({"epochs": -1}, r"^epochs must be a positive integer, got -1$"),
    ({"epochs": 2.5}, r"^epochs must be a positive integer, got 2.5$"),
    ({"data": None}, r"^data is named by a string"),
    ({"data": "digitz"}, r"^unknown data set 'digitz'"),
    ({"sizes": 5}, r"^sizes is a dict of parts \(degradation, survey, compare\) to their settings, got 5$"),
    ({"sizes": {"compare": None}}, r"^sizes\['compare'\] is a dict of that part's settings, got None$"),
    ({"sizes": {"degradation": 5}}, r"^sizes\['degradation'\] is a dict of that part's settings, got 5$"),
])
def test_bad_arguments_are_one_line_before_the_out_folder_is_made(kwargs, message, tmp_path):
    """They were refused (or a TypeError) only after the folder was made, or, epochs=0, not at all."""
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match=message):
        run_demo(**{"out": tmp_path / "demo", "sizes": TINY, "log": None, **kwargs})
    assert not (tmp_path / "demo").exists()
