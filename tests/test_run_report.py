"""A training run's report drawn from its run directory: `write_run_report`, `resnet-lab report`,
and `train --report wait|background|none`.

What it protects: the report drawn from the folder alone says what the in-memory result says
(no checkpoint read); it can be drawn for a stopped run and again after a resume; a bad folder
is refused in one line (exit 2); the fast recipe draws it in a detached process after the
command exits, and that process's output (a failure's traceback included) is in report.log.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_lab.cli.main import main
from resnet_lab.report.background import start_report_renderer, wait_for_report
from resnet_lab.report.meta import format_duration
from resnet_lab.report.train_report import format_timings, write_run_report
from resnet_lab.training import resolve_config, train
from resnet_lab.training.config import RESUMABLE

# resnet8 on digits at 16x16, batch 512: 2 steps an epoch, a couple of seconds on a CPU.
TINY = dict(model="resnet8", data="digits", image_size=16, batch_size=512, epochs=2, monitor_every=1, seed=0,
            progress=False, tensorboard=False)
TINY_ARGV = ["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--batch-size", "512",
             "--epochs", "1", "--quiet", "--no-tensorboard"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run (with a weight average) and its in-memory result."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = train(resolve_config("default", **TINY, ema=0.9, out=str(out)), log=lambda _: None)
    return out, result


def test_step_numbers_a_step_record_gives_its_index_an_epoch_row_the_steps_done(finished):
    """The README's convention: gradients.jsonl counts from 0 as a plain loop does; metrics rows count steps done."""
    run, _ = finished
    records = [json.loads(line)["step"] for line in (run / "gradients.jsonl").read_text().splitlines()]
    rows = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records == [0, 1, 2, 3] and rows == [2, 4]  # 2 steps an epoch, monitor_every=1


def _copy(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    return copy


def test_report_from_the_run_directory_says_what_the_in_memory_result_says(finished, tmp_path):
    run, result = finished
    copy = _copy(run, tmp_path)
    for checkpoint in copy.glob("*.pt"):  # drawn from the records alone: no torch.load
        checkpoint.unlink()
    page = write_run_report(copy).read_text()
    final = result.final
    assert "<title>Training resnet8</title>" in page
    assert (f"final test accuracy {final['test_acc']:.2%} (best {result.best_acc:.2%}) after 2 epochs, "
            f"{result.steps} steps") in page
    assert f"weight average (--ema 0.9): final test accuracy {final['ema_test_acc']:.2%}" in page
    # The median epoch's rate, not the last epoch's (a run's last epoch may be a few steps).
    typical = statistics.median(row["images_per_s"] for row in result.history)
    assert f"throughput {typical:,.0f} images/s on {result.device} (median of the epochs)" in page
    recorded = {k: v for k, v in result.timings.items() if k != "report_s"}  # result.json's: before the report
    assert "time from setup to the last record (start-up and drawing this report: see timings.json): " \
           f"{format_timings(recorded)}" in page
    run_time = format_duration(sum(recorded.values()))  # the same total, not a third figure
    assert f"<dt>Run time</dt><dd>{run_time}</dd>" in page
    assert f"gradient monitor: {final['gradients']['verdict']}" in page
    assert page.count("<figure>") == 2 and 'src="data:image/svg+xml;base64,' in page  # curves, gradient flow
    assert "Per-epoch metrics (metrics.jsonl)" in page and "not finished" not in page
    assert "Library versions" in page and json.loads((run / "result.json").read_text())["steps"] == result.steps


def test_the_finer_curve_is_on_disk_as_the_run_keeps_it(tmp_path):
    """--log-every's rows go to steps.jsonl as well as the checkpoint, so a finished run read from its
    records alone (its weights removed) has its finer curve: the reproductions draw it."""
    from resnet_lab.report.run_record import read_run

    out = tmp_path / "run"
    result = train(resolve_config("default", **{**TINY, "epochs": 1}, log_every=1, report="none", out=str(out)),
                   log=lambda _: None)
    rows = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and rows == result.step_history
    for checkpoint in out.glob("*.pt"):
        checkpoint.unlink()
    assert read_run(out).step_history == result.step_history


def test_train_from_python_draws_the_report_its_config_asks_for(finished, tmp_path):
    """``train(config)`` from a notebook once wrote no report.html whatever ``config.report`` said: only
    the command drew it."""
    run, result = finished  # report "wait", the default recipe's
    assert (run / "report.html").exists() and result.timings["report_s"] > 0
    config = resolve_config("default", **{**TINY, "epochs": 1}, report="none", out=str(tmp_path / "none"))
    unreported = train(config, log=lambda _: None)
    assert not (tmp_path / "none" / "report.html").exists() and "report_s" not in unreported.timings


def test_report_command_draws_the_report_and_prints_its_path(finished, tmp_path, capsys):
    copy = _copy(finished[0], tmp_path)
    (copy / "report.html").unlink(missing_ok=True)
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out == f"report: {copy / 'report.html'}\n"
    assert "final test accuracy" in (copy / "report.html").read_text()


DAMAGE = {
    "missing": (None, "does not exist"),
    "a_file": (None, "is not a directory"),
    "no_config": ("config.json", "not a run directory (no config.json)"),
    "config_not_json": ("config.json", "config.json cannot be read"),
    # Another tool's config.json (a Hugging Face model's folder) was called a damaged record to restore:
    "config_of_another_tool": ("config.json", "is not a run directory (its config.json is not one 'resnet-lab train'"),
    "metrics_bad_line": ("metrics.jsonl", "metrics.jsonl is damaged (line 2"),
    "metrics_row_incomplete": ("metrics.jsonl", "metrics.jsonl is damaged (line 1 has no"),
    "result_a_list": ("result.json", "result.json is damaged (a JSON list"),
    "result_incomplete": ("result.json", "damaged record"),
    # Hand-damaged values of the right JSON type once ended in a TypeError or ValueError traceback:
    "metrics_text_accuracy": ("metrics.jsonl", "metrics.jsonl is damaged (line 1 has no number for test_acc)"),
    "events_not_events": ("events.json", "events.json is damaged (an event without its step and kind)"),
    "result_text_accuracy": ("result.json", "result.json is damaged (not a number where one belongs: best_acc)"),
    "result_text_timing": ("result.json", "result.json is damaged (not a number where one belongs: timings)"),
    "metrics_no_test_loss": ("metrics.jsonl", "metrics.jsonl is damaged (line 1 has no number for test_loss)"),
    "metrics_gradients_null": ("metrics.jsonl", "metrics.jsonl is damaged (line 1 has a damaged gradient summary)"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_report_command_refuses_a_bad_run_directory_in_one_line(case, finished, tmp_path, capsys):
    name, fragment = DAMAGE[case]
    target = tmp_path / "missing" if case == "missing" else _copy(finished[0], tmp_path)
    if case == "a_file":
        target = target / "config.json"
    elif case == "no_config":
        (target / name).unlink()
    elif case != "missing":
        metrics, result = (target / "metrics.jsonl").read_text(), (target / "result.json").read_text()
        text = {"config_not_json": "{",
                "config_of_another_tool": '{"model_type": "resnet", "num_labels": 10}',
                "metrics_bad_line": metrics.splitlines()[0] + "\n{\n",
                "metrics_row_incomplete": '{"epoch": 1}\n', "result_a_list": "[]", "result_incomplete": "{}",
                "metrics_text_accuracy": metrics.replace('"test_acc": ', '"test_acc": "x", "a": '),
                "events_not_events": '[1, 2, "x"]',
                "result_text_accuracy": re.sub(r'"best_acc": [^,]+', '"best_acc": "0.9"', result),
                "result_text_timing": re.sub(r'"train_s": [^,]+', '"train_s": "2 s"', result),
                "metrics_no_test_loss": re.sub(r'"test_loss": [^,]+, ', "", metrics),
                "metrics_gradients_null": re.sub(r'"gradients": .*}', '"gradients": null}', metrics)}[case]
        (target / name).write_text(text)
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert "resnet-lab train" in err  # the fix: which folder to give, or where the files come from


def test_an_interruption_recorded_without_its_detail_is_reported_not_a_traceback(finished, tmp_path, capsys):
    copy = _copy(finished[0], tmp_path)
    (copy / "result.json").unlink()
    (copy / "events.json").write_text('[{"step": 1, "kind": "interrupted"}]')
    assert main(["report", str(copy)]) == 0, capsys.readouterr().err
    assert "not finished: interrupted at step 1 (no detail)" in (copy / "report.html").read_text()


def test_a_report_stopped_while_drawing_its_figure_leaves_the_earlier_figure_whole(finished, tmp_path,
                                                                                   monkeypatch):
    """The gradient-flow figure was written in place: a report killed mid-draw left half an SVG in the run
    directory, and a second report drawn at the same time could embed it."""
    from matplotlib.figure import Figure

    copy = _copy(finished[0], tmp_path)
    before = (copy / "gradient_flow.svg").read_bytes()
    real, calls = Figure.savefig, []

    def stopped_half_way(self, target, **kwargs):  # the curves drawn, then stopped in the gradient flow
        calls.append(target)
        if len(calls) == 1:
            return real(self, target, **kwargs)
        if hasattr(target, "write"):
            target.write(b"<svg half")
        else:
            Path(target).write_bytes(b"<svg half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", stopped_half_way)
    with pytest.raises(KeyboardInterrupt):
        write_run_report(copy)
    assert (copy / "gradient_flow.svg").read_bytes() == before
    assert not list(copy.glob(".*.tmp"))


def test_report_command_refuses_an_empty_run_dir_rather_than_report_the_current_folder(finished, tmp_path,
                                                                                         capsys, monkeypatch):
    """'resnet-lab report "$RUN"' with RUN unset once drew the report of whatever run the shell was in."""
    copy = _copy(finished[0], tmp_path)
    (copy / "report.html").unlink(missing_ok=True)
    monkeypatch.chdir(copy)
    assert main(["report", ""]) == 2
    err = capsys.readouterr().err
    assert "run_dir is empty (an unset shell variable?)" in err and err.count("\n") == 1, err
    assert not (copy / "report.html").exists()


def test_report_command_never_imports_torch(finished, tmp_path):
    """The renderer that draws every fast-recipe run's report after it exits would spend ~1.5 s
    importing torch; the command line names its command, so only that module is imported."""
    copy = _copy(finished[0], tmp_path)
    code = ("import sys; from resnet_lab.cli.main import main; status = main(['report', sys.argv[1]]); "
            "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
            "print(status, loaded[:3])")
    done = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "0 []", done.stdout + done.stderr
    assert "final test accuracy" in (copy / "report.html").read_text()


def test_fast_recipe_draws_the_report_in_the_background_after_the_command(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_ARGV, "--recipe", "fast", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (f"report: {out / 'report.html'} (rendering in the background; log and any failure in "
            f"{out / 'report.log'}; 'resnet-lab report {out}' renders it now)") in printed
    # Polled, never raced: the renderer imports torch and matplotlib on a machine shared with others.
    page = wait_for_report(out, timeout_s=120).read_text()
    assert "final test accuracy" in page and page.count("<figure>") == 2
    log = (out / "report.log").read_text()
    assert f"rendering {out / 'report.html'}" in log and "Traceback" not in log, log
    assert json.loads((out / "timings.json").read_text())["report_s"] is not None  # the launch, timed


def test_a_renderer_that_fails_says_so_in_report_log(tmp_path):
    start_report_renderer(tmp_path)  # an empty folder: no run to draw
    with pytest.raises(RuntimeError, match="not a run directory"):
        wait_for_report(tmp_path, timeout_s=120)
    assert "resnet-lab: error:" in (tmp_path / "report.log").read_text()


def test_report_none_draws_nothing_and_says_how_to_draw_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_ARGV, "--report", "none", "--out", str(out)]) == 0
    assert f"report: not rendered (--report none); 'resnet-lab report {out}' renders it" in capsys.readouterr().out
    assert not (out / "report.html").exists() and not (out / "report.log").exists()
    assert "report_s" not in json.loads((out / "timings.json").read_text())


def test_a_suggested_command_naming_a_folder_with_spaces_runs_when_pasted_as_shown(tmp_path, capsys):
    """'resnet-lab report DIR' put the folder in as it is: pasted, a path with spaces was several arguments.
    The shell's rules apply to what is shown: bash reads special characters back as they were."""
    import shlex

    from resnet_lab.files import shell_arg

    for name in ('my runs/a "b" $HOME `x` back\\slash', "runs/plain-1.0"):
        echoed = subprocess.run(["bash", "-c", f"printf %s {shell_arg(name)}"], capture_output=True, text=True)
        assert echoed.stdout == name
    assert shell_arg("runs/plain-1.0") == "runs/plain-1.0"  # nothing added where nothing is needed
    out = tmp_path / "my runs" / "run 1"
    assert main([*TINY_ARGV, "--report", "none", "--out", str(out)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("report:"))
    command = line.split("'")[1]
    assert command == f'resnet-lab report "{out}"'
    assert main(shlex.split(command)[1:]) == 0 and (out / "report.html").exists()


def test_report_none_on_resume_says_the_report_left_there_is_older(tmp_path, interrupted_run, capsys):
    """A run stopped with its report drawn, then resumed with --report none, kept that report.html and said
    only 'not rendered': opened, it showed the stopped run's curves as the finished run's."""
    out = interrupted_run(tmp_path / "run", report="wait")
    assert (out / "report.html").exists()
    assert main(["train", "--resume", str(out), "--quiet", "--report", "none"]) == 0
    assert (f"report: not redrawn (--report none): {out / 'report.html'} shows the run as it was before; "
            f"'resnet-lab report {out}' redraws it") in capsys.readouterr().out


def test_report_setting_defaults_and_it_is_a_how_it_reports_setting():
    assert resolve_config("fast").report == "background"
    assert resolve_config("default").report == "wait" and resolve_config("paper").report == "wait"
    from resnet_lab.training.sweep.manifest import _NOT_COMPARED

    assert "report" in RESUMABLE and "report" in _NOT_COMPARED  # a resumed run or a sweep may change it


def test_sweep_does_not_take_report_its_runs_write_none(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path / "s"), "--model", "resnet8", "--report", "wait"]) == 2
    assert "unrecognized arguments: --report" in capsys.readouterr().err


def test_a_run_stopped_by_a_nonfinite_loss_gets_a_report_of_its_records(tmp_path, capsys):
    out = tmp_path / "stopped"
    diverging = ["train", "--model", "resnet8", "--data", "digits", "--batch-size", "64", "--lr", "1e6",
                 "--schedule", "constant", "--warmup", "0", "--seed", "1", "--quiet", "--no-tensorboard"]
    assert main([*diverging, "--steps", "20", "--on-nonfinite", "stop", "--out", str(out)]) == 3
    assert not (out / "result.json").exists()
    # train drew it itself (it once left none); it says why the run stopped, not "0.00 s" of run time
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert re.search(r"stopped at step \d+ by the non-finite policy \(see the events\); no epoch recorded", page)
    assert "nonfinite" in page and "not recorded (no epoch ended)" in page and "0.00 s" not in page
    assert main(["report", str(out)]) == 0  # and again on demand


def test_an_interrupted_run_is_reported_unfinished_then_finished_after_its_resume(tmp_path, interrupted_run, capsys):
    out = interrupted_run(tmp_path / "run", monitor_every=1, seed=0)
    page = write_run_report(out).read_text()
    # why it stopped, from its events (a resumed run keeps the break in them), and its records so far
    assert "not finished: interrupted at step 3 (SIGTERM, checkpoint saved); its records up to step 2" in page
    assert "final test accuracy" in page  # epoch 1 of 2
    # a resumed run may change how it reports; its report replaces the unfinished one
    assert main(["train", "--resume", str(out), "--report", "wait", "--quiet"]) == 0
    page = (out / "report.html").read_text()
    assert "not finished" not in page and "after 2 epochs, 4 steps" in page
    # the whole run's time is summed over its two processes; the breakdown is the last one's, and says so
    assert re.search(r"time [\d.]+ s over 2 processes \(each earlier one counted up to its last checkpoint\); "
                     r"the last process, from setup", page)
    assert "not recorded" not in page


def test_a_resumed_runs_time_is_summed_over_its_processes(tmp_path, interrupted_run, capsys):
    from resnet_lab.training.checkpoint import load_checkpoint

    out = interrupted_run(tmp_path / "run", seed=0)
    before = load_checkpoint(out / "last.pt")["run_time_s"]  # the first process's, up to its checkpoint
    assert before > 0
    assert main(["train", "--resume", str(out), "--report", "none"]) == 0
    result = json.loads((out / "result.json").read_text())
    this_process = sum(result["timings"].values())
    assert result["processes"] == 2 and result["run_time_s"] == pytest.approx(before + this_process, abs=0.05)
    assert f"; the whole run over 2 processes: {result['run_time_s']:.1f} s, each earlier process counted " \
           "up to its last checkpoint" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["run_time_s"] > before  # the curves' time runs on across the resume


def test_a_run_resumed_from_a_checkpoint_without_its_time_says_the_time_is_not_whole(tmp_path, interrupted_run,
                                                                                         capsys):
    from resnet_lab.training.checkpoint import load_checkpoint, save_checkpoint

    out = interrupted_run(tmp_path / "run", seed=0)
    state = load_checkpoint(out / "last.pt")
    del state["run_time_s"], state["processes"]  # as a checkpoint of an earlier version
    save_checkpoint(out / "last.pt", state)
    assert main(["train", "--resume", str(out), "--report", "wait"]) == 0
    assert "; the whole run over 2 processes: not recorded (its checkpoint, of an earlier version, kept none)" \
        in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "time of the last process (the run was resumed: earlier ones are not counted), from setup" in page
    assert "not recorded whole (resumed: earlier processes are not counted; the last one took " in page

