"""Failure paths of `resnet-lab train`, end to end: non-finite policies, fp16 overflow, runs that
die early, resume that may not change the run, and an empty --out.

The rule they protect: no policy or check turns itself off silently; nothing that ends with exit
0 has lost the run; a non-finite stop exits 3 and keeps the last finite state, BatchNorm
statistics included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_lab.cli.main import main
from resnet_lab.diagnostics import GradientMonitor, NonFiniteError
from resnet_lab.training import load_checkpoint
from resnet_lab.training.checkpoint import all_finite
from resnet_lab.training.eager_step import EagerStep

# resnet8 (BatchNorm) on digits at a learning rate that overflows BatchNorm's running variance
# within a few steps; constant schedule, so a shorter run takes exactly the same first steps.
DIVERGING = ["train", "--model", "resnet8", "--data", "digits", "--batch-size", "64", "--lr", "1e6",
             "--schedule", "constant", "--warmup", "0", "--deterministic", "--seed", "1", "--quiet",
             "--no-tensorboard"]


def _train(*argv) -> int:
    return main([*DIVERGING, *argv])


def _stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_stop_exits_3_and_keeps_the_state_of_the_step_before_the_failure(tmp_path, capsys):
    stopped, before = tmp_path / "stopped", tmp_path / "before"
    assert _train("--steps", "20", "--on-nonfinite", "stop", "--out", str(stopped)) == 3
    report = json.loads((stopped / "nonfinite_report.json").read_text())
    failing = report["step"]
    assert report["verdict"]["kind"] == "nonfinite" and report["verdict"]["step"] == failing
    assert report["nonfinite_location"]["module_name"]  # a module is named, not "not reproducible"
    assert "holds the last finite state" in _stderr_lines(capsys)[-1]
    kept = load_checkpoint(stopped / "last.pt")
    assert kept["step"] == failing and all_finite(kept["model"])
    # A run told to stop just before the failing step ends with exactly that state (warn: these finite
    # weights already overflow in the forward pass, so a nan test loss, which warn records and saves).
    assert failing >= 1 and _train("--steps", str(failing), "--on-nonfinite", "warn", "--out", str(before)) == 3
    reference = load_checkpoint(before / "last.pt")["model"]
    assert kept["model"].keys() == reference.keys()
    for name, tensor in reference.items():  # weights and BatchNorm buffers alike
        assert torch.equal(kept["model"][name], tensor), name


def test_skip_gives_up_with_exit_3_and_a_finite_checkpoint_locating_once(tmp_path, capsys, monkeypatch):
    import resnet_lab.diagnostics.policy as policy

    located = []
    original = policy.locate_nonfinite
    monkeypatch.setattr(policy, "locate_nonfinite", lambda *a, **k: located.append(1) or original(*a, **k))
    out = tmp_path / "run"
    assert _train("--steps", "40", "--on-nonfinite", "skip", "--out", str(out)) == 3
    lines = _stderr_lines(capsys)
    skipped = [line for line in lines if line.startswith("warning: skipped the optimizer step")]
    assert len(skipped) == GradientMonitor(nn.Linear(1, 1)).max_skips  # then it gives up, loudly
    assert "skip gives up" in lines[-1] and "holds the last finite state" in lines[-1]
    assert len(located) == 1  # one re-run for the streak, not one per skipped step
    assert all_finite(load_checkpoint(out / "last.pt")["model"])
    events = json.loads((out / "events.json").read_text())
    assert [e["kind"] for e in events].count("skipped") == len(skipped)
    # Resumed, it gives up again at once: the streak travels with the checkpoint (a resume once
    # started it from 0, skipped 20 steps in a row and exited 0).
    assert main(["train", "--resume", str(out), "--quiet"]) == 3
    lines = _stderr_lines(capsys)
    assert "skip gives up" in lines[-1] and not any(line.startswith("warning: skipped") for line in lines)


def test_finite_weights_whose_test_loss_is_nan_are_a_stop_not_a_success(tmp_path, capsys):
    """Skip kept the weights finite, but they overflow in the forward pass: the run once exited 0 with
    "test loss nan", saving last.pt and best.pt that cannot classify."""
    out = tmp_path / "run"
    assert _train("--steps", "5", "--on-nonfinite", "skip", "--out", str(out)) == 3
    last = _stderr_lines(capsys)[-1]
    assert "test loss is nan (the weights are finite but overflow" in last and "no checkpoint was written" in last
    assert not [p.name for p in out.glob("*.pt")] and not (out / "result.json").exists()
    assert json.loads((out / "events.json").read_text())[-1]["kind"] == "nonfinite"  # the report says why


def test_warn_ending_with_a_nan_test_loss_is_not_exit_0(tmp_path, capsys, monkeypatch):
    import resnet_lab.training.trainer as trainer

    real = trainer.evaluate_epoch
    monkeypatch.setattr(trainer, "evaluate_epoch", lambda *a: {**real(*a), "test_loss": float("nan")})
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet8", "--data", "digits", "--steps", "2", "--quiet", "--report", "none",
                 "--on-nonfinite", "warn", "--out", str(out)]) == 3
    assert "training ended at step 2 with a nan test loss (--on-nonfinite warn)" in _stderr_lines(capsys)[-1]
    assert not (out / "best.pt").exists() and not (out / "result.json").exists()


def test_a_checkpoint_whose_outputs_are_not_finite_is_refused_by_evaluate_and_predict(tmp_path, capsys):
    from resnet_lab.training.checkpoint import save_checkpoint

    good = tmp_path / "good"
    assert main(["train", "--model", "resnet8", "--data", "digits", "--steps", "1", "--quiet", "--report", "none",
                 "--out", str(good)]) == 0
    state = load_checkpoint(good / "last.pt")
    state["model"] = {k: v * 1e30 if k.endswith("conv1.weight") else v for k, v in state["model"].items()}
    save_checkpoint(tmp_path / "overflowing.pt", state)  # finite weights, NaN outputs
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.new("L", (8, 8)).save(image)
    assert main(["evaluate", "--checkpoint", str(tmp_path / "overflowing.pt"), "--json"]) == 2
    assert main(["predict", "--checkpoint", str(tmp_path / "overflowing.pt"), str(image)]) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 2 and all("gives non-finite outputs" in line for line in lines)


def test_no_monitor_keeps_the_stop_policy(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train("--steps", "20", "--no-monitor", "--out", str(out)) == 3  # default policy: stop
    assert all_finite(load_checkpoint(out / "last.pt")["model"])
    assert not (out / "gradients.jsonl").exists()  # no records: that is what --no-monitor turns off


def test_warn_policy_ending_with_nonfinite_weights_is_not_exit_0(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train("--steps", "20", "--on-nonfinite", "warn", "--out", str(out)) == 3
    assert "training ended at step 20 with non-finite weights" in _stderr_lines(capsys)[-1]
    assert not (out / "last.pt").exists() or all_finite(load_checkpoint(out / "last.pt")["model"])


def test_a_warn_run_ending_nonfinite_has_its_end_in_events_and_its_report_says_why(tmp_path, capsys):
    """It once left no event: its report read 'not finished (it stopped, or is still training; see the
    events)' with no events to see."""
    out = tmp_path / "run"
    assert _train("--steps", "20", "--on-nonfinite", "warn", "--out", str(out)) == 3
    events = json.loads((out / "events.json").read_text())
    assert events[-1]["kind"] == "nonfinite" and events[-1]["step"] == 20
    assert "training ended at step 20 with non-finite weights" in events[-1]["detail"]
    page = (out / "report.html").read_text()
    assert "ended at step 20 with non-finite values (--on-nonfinite warn; see the events)" in page
    assert "still training" not in page


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_what_was_saved(tmp_path, capsys, monkeypatch):
    """A write that fails (ENOSPC) once ended in a traceback naming no file."""
    import errno

    import resnet_lab.files as files

    out = tmp_path / "run"
    real_fsync, writes = files.os.fsync, []

    def fill_the_disk_after_the_first_checkpoint(fd):
        writes.append(fd)
        if (out / "last.pt").exists():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fill_the_disk_after_the_first_checkpoint)
    assert main(["train", "--model", "resnet8", "--data", "digits", "--epochs", "2", "--quiet", "--report", "none",
                 "--no-tensorboard", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("resnet-lab: error: No space left on device: ") and err.count("\n") == 1, err
    assert load_checkpoint(out / "last.pt")["step"] > 0 and not list(out.glob(".*.tmp"))


def test_empty_out_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--model", "resnet8", "--steps", "1", "--quiet", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_run_refused_during_its_setup_leaves_no_folder_behind(tmp_path, capsys):
    """An unknown model or a bad model option once left an empty run folder; a folder that was there
    already stays."""
    out = tmp_path / "new" / "run"
    assert main(["train", "--model", "resnet9000x", "--steps", "1", "--quiet", "--out", str(out)]) == 2
    assert not out.exists() and "unknown model" in capsys.readouterr().err
    assert main(["train", "--model", "plain8", "--zero-init-residual", "--steps", "1", "--quiet",
                 "--out", str(tmp_path)]) == 2
    assert "drop zero_init_residual" in capsys.readouterr().err and tmp_path.is_dir()


def test_out_that_cannot_be_created_is_refused_before_the_data_is_loaded(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["train", "--model", "resnet8", "--steps", "1", "--quiet", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the run directory" in err and err.count("\n") == 1


# ----------------------------------------------------------------------------- early death, resume

SMALL = ["train", "--model", "resnet8", "--data", "digits", "--steps", "6", "--batch-size", "64",
         "--deterministic", "--seed", "2", "--quiet", "--no-tensorboard", "--monitor-every", "1"]


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("small") / "run"
    assert main([*SMALL, "--out", str(out)]) == 0
    return out


def _died_before_first_checkpoint(run_dir: Path, reference: Path) -> None:
    """What a run killed in its first epoch leaves: config.json and some records, no last.pt."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text((reference / "config.json").read_text())
    records = (reference / "gradients.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "gradients.jsonl").write_text("".join(records[:3]) + records[3][:20])  # torn last line


@pytest.mark.parametrize("how", ["resume", "new run"])
def test_a_run_that_died_before_its_first_checkpoint_can_be_resumed_or_reused(how, tmp_path, small_reference,
                                                                             capsys):
    from resnet_lab.diagnostics.records import read_jsonl

    out = tmp_path / "run"
    _died_before_first_checkpoint(out, small_reference)
    argv = ["train", "--resume", str(out), "--quiet"] if how == "resume" else [*SMALL, "--out", str(out)]
    assert main(argv) == 0
    ours, reference = load_checkpoint(out / "last.pt"), load_checkpoint(small_reference / "last.pt")
    for name, tensor in reference["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    assert [r["step"] for r in read_jsonl(out / "gradients.jsonl")] == list(range(6))  # each step once


def test_a_run_directory_being_trained_by_another_process_is_refused(tmp_path, capsys):
    """Two processes once trained one folder at once, both exiting 0 over each other's files."""
    import os

    from resnet_lab.files import try_lock

    out = tmp_path / "run"
    out.mkdir()
    held = try_lock(out)  # what a training process holds (another descriptor: a conflict)
    try:
        assert main([*SMALL, "--out", str(out)]) == 2
        assert "another process is training" in capsys.readouterr().err
        assert not any(out.iterdir())  # nothing written, not even a lock file
    finally:
        os.close(held)
    assert main([*SMALL, "--out", str(out)]) == 0  # released: the folder trains
    after = try_lock(out)  # and a finished training releases its lock
    assert after is not None
    os.close(after)


def test_resuming_a_finished_run_trains_nothing_and_says_so(small_reference, capsys):
    """It once printed 'resuming at epoch 3' of 2, evaluated again and redrew the report."""
    before = {p.name: p.read_bytes() for p in small_reference.iterdir() if p.is_file()}
    assert main(["train", "--resume", str(small_reference), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{small_reference} already finished (") and "nothing to train" in out
    assert {p.name: p.read_bytes() for p in small_reference.iterdir() if p.is_file()} == before


def test_resume_refuses_settings_that_would_change_the_run(small_reference, capsys):
    before = (small_reference / "last.pt").read_bytes()
    assert main(["train", "--resume", str(small_reference), "--epochs", "3", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--epochs, --lr cannot change when resuming" in err and err.count("\n") == 1
    assert "--no-tensorboard" in err and "--tensorboard," not in err  # the flags that exist
    # ... in what is refused too: it once said '--augment, --lr-scaling, --monitor cannot change'
    assert main(["train", "--resume", str(small_reference), "--no-augment", "--no-lr-scaling", "--no-monitor",
                 "--no-wd-on-norm-and-bias"]) == 2
    assert "--no-augment, --no-lr-scaling, --no-wd-on-norm-and-bias, --no-monitor cannot change" in \
        capsys.readouterr().err
    assert main(["train", "--resume", str(small_reference), "--out", str(small_reference / "elsewhere")]) == 2
    assert "drop --out" in capsys.readouterr().err
    # The run's own values change nothing: once refused as "cannot change" all the same.
    assert main(["train", "--resume", str(small_reference), "--data", "digits", "--model", "resnet8", "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().out
    # A model switch the run left at its default, given that value: once refused as "--norm cannot change".
    assert main(["train", "--resume", str(small_reference), "--norm", "batch", "--shortcut", "A", "--activation",
                 "relu", "--init", "he", "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(["train", "--resume", str(small_reference), "--norm", "group", "--shortcut", "B"]) == 2
    assert "--shortcut, --norm cannot change" in capsys.readouterr().err
    # A list flag too: the saved milestones are a tuple, the flag's a list (once refused as changed).
    assert main(["train", "--resume", str(small_reference), "--milestones", "0.5", "0.75", "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().out
    assert (small_reference / "last.pt").read_bytes() == before


@pytest.mark.parametrize("how", ["cli", "python"])
def test_a_resumed_run_not_given_its_resumable_settings_takes_its_recipes_defaults(how, tmp_path, capsys):
    """A fast-recipe run resumed with no flag once took TrainConfig's defaults, not the recipe's: last.pt
    written at every epoch end instead of every 30 s, the report drawn before exit instead of after, while
    the same run restarted by torchrun (its flags given again) kept the recipe's."""
    from resnet_lab.training import resolve_config, train

    out = tmp_path / "run"  # a fast run that died before its first checkpoint: config.json alone
    out.mkdir()
    config = resolve_config("fast", model="resnet8", data="digits", image_size=8, epochs=1, device="cpu",
                            tensorboard=False, out=str(out))
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    if how == "cli":
        assert main(["train", "--resume", str(out), "--quiet", "--no-tensorboard"]) == 0
    else:
        train(None, resume=out, log=print)
    assert "rendering in the background" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert (saved["checkpoint_min_s"], saved["report"]) == (30.0, "background")


def test_train_from_python_resumes_with_the_runs_settings_and_refuses_a_config_that_changes_them(
        tmp_path, interrupted_run):
    """``train(config, resume=run)`` once took only the resumable fields of ``config``: a different
    model or lr passed silently and the run went on with its old ones."""
    from resnet_lab.errors import UserError
    from resnet_lab.training import load_run_config, resolve_config, train

    out = interrupted_run(tmp_path / "run")
    before = (out / "last.pt").read_bytes()
    other_model = resolve_config("default", model="resnet14", data="digits", image_size=16, batch_size=512,
                                 epochs=2, lr=0.05, progress=False, tensorboard=False)
    with pytest.raises(UserError, match=r"changes model 'resnet14' \(the run has 'resnet8'\), lr 0.05"):
        train(other_model, resume=out, log=None)
    elsewhere = load_run_config(out)
    elsewhere.out = str(tmp_path / "elsewhere")
    with pytest.raises(UserError, match="leave out as None"):
        train(elsewhere, resume=out, log=None)
    assert (out / "last.pt").read_bytes() == before and not (tmp_path / "elsewhere").exists()

    on_cpu = load_run_config(out)  # the run's settings; the resumable ones may change
    on_cpu.device, on_cpu.progress = "cpu", False
    assert train(on_cpu, resume=out, log=None).steps == 4
    lines = []  # once more: it said "resuming at epoch 3, step 4/4"
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = train(None, resume=out, log=lines.append)
    assert again.steps == 4 and again.run_dir == out and again.final["test_acc"] is not None
    assert f"{out} already finished (4 steps); nothing to train" in lines and not any("resuming" in x for x in lines)
    assert not any(x.startswith("training resnet8") for x in lines), lines  # nor, after it, that it trains
    # and it writes nothing there: it once added a TensorBoard file and rewrote result.json and the report
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert train(None, resume=interrupted_run(tmp_path / "again"), log=None).steps == 4  # None: the run's own
    with pytest.raises(UserError, match="or resume=RUN_DIR"):
        train(None, log=None)


# ----------------------------------------------------------------------------- fp16

class _TinyConvNet(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


def _fp16_steps(lr: float, steps: int, init_scale: float):
    """Train the tiny net for ``steps`` fp16 steps under the stop policy; return (model, events)."""
    torch.manual_seed(0)
    model = _TinyConvNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)
    monitor = GradientMonitor(model, nonfinite="stop")
    events: list[dict] = []
    step = EagerStep(model, model, optimizer, scaler, nn.functional.cross_entropy, "fp16", torch.device("cpu"),
                     None, None, monitor, None, events, log=lambda _: None)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    for s in range(steps):
        step(x, y, s)
    return model, events


def test_fp16_overflow_steps_are_the_scalers_business_not_a_stop():
    # A huge initial loss scale makes the first steps overflow, as GradScaler's probing does.
    model, events = _fp16_steps(lr=0.01, steps=30, init_scale=2.0 ** 40)
    overflows = [e for e in events if e["kind"] == "scaler_overflow"]
    assert overflows and len(overflows) < 30  # it overflowed, backed off, then trained
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fp16_run_that_really_diverges_still_stops():
    with pytest.raises(NonFiniteError):
        _fp16_steps(lr=1e12, steps=60, init_scale=2.0 ** 16)


def test_a_cuda_graph_that_fell_back_to_eager_is_recorded_in_the_run(tmp_path, monkeypatch, capsys):
    from resnet_lab.training import graphed_step, trainer

    class FailedCapture(graphed_step.TrainStep):  # what a capture failure leaves: the reason, eager steps
        def __call__(self, x, y, lr):
            self.capture_error = "operation not permitted when stream is capturing"
            return super().__call__(x, y, lr)

    monkeypatch.setattr(trainer, "TrainStep", FailedCapture)
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet8", "--steps", "2", "--batch-size", "64", "--cuda-graph",
                 "--on-nonfinite", "warn", "--quiet", "--no-tensorboard", "--out", str(out)]) == 0
    events = json.loads((out / "events.json").read_text())
    assert [e["kind"] for e in events] == ["cuda_graph_fallback"]
    assert "stream is capturing" in events[0]["detail"]
    assert "cuda_graph_fallback" in (out / "report.html").read_text()


def test_a_gradient_whose_norm_overflows_float32_is_named_as_such_not_as_a_nonfinite_loss():
    model = nn.Linear(4, 4)
    monitor = GradientMonitor(model, nonfinite="stop")
    loss = model(torch.ones(1, 4)).sum()
    loss.backward()
    model.weight.grad.fill_(3e38)  # every element finite; the float32 norm is not
    monitor.step(loss)
    with pytest.raises(NonFiniteError, match="^overflow at step 0: every value is finite") as stop:
        monitor.check_step(inputs=torch.ones(1, 4), targets=torch.zeros(1, dtype=torch.long),
                           loss_fn=lambda out, y: out.sum())
    # no re-run to "locate" a non-finite value that does not exist (it once blamed non-determinism)
    assert "not reproducible" not in str(stop.value) and monitor.last_report is None


def test_an_absurd_image_size_is_refused_before_resizing_the_data(tmp_path, capsys):
    assert main(["train", "--model", "resnet8", "--data", "digits", "--image-size", "22400", "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image-size must be in 8..1024" in err[0]


def test_an_optimizer_value_past_float32_is_one_line_and_the_largest_taken_trains(tmp_path, capsys):
    """--lr 1e39 (or such a weight decay, clip value, warm-up lr) was taken, and the first step ended in
    'RuntimeError: value cannot be converted to type float without overflow' (a traceback, exit 1)."""
    tiny = ["train", "--model", "resnet8", "--data", "digits", "--image-size", "8", "--steps", "1", "--quiet",
            "--no-tensorboard", "--report", "none"]
    for flags in (["--lr", "1e39"], ["--weight-decay", "1e39"], ["--clip-value", "1e39"],
                  ["--recipe", "paper", "--warmup-lr", "1e39"]):
        assert main([*tiny, *flags, "--out", str(tmp_path / "refused")]) == 2, flags
        err = capsys.readouterr().err
        assert f"{flags[-2]} must be at most 1e+30" in err and err.count("\n") == 1, err
    assert not (tmp_path / "refused").exists()
    # The bound is far inside float32's: Adam's first step multiplies the lr by 10 and still applies it.
    largest = ["--optimizer", "adam", "--lr", "1e30", "--weight-decay", "1e30", "--clip-value", "1e30"]
    assert main([*tiny, *largest, "--out", str(tmp_path / "run")]) == 3  # its weights overflow: a stop
    assert "Traceback" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- resuming a damaged folder

def test_resuming_another_runs_checkpoint_is_refused_and_a_lost_config_json_is_restored(tmp_path, interrupted_run,
                                                                                        capsys):
    """A resume once trained whatever last.pt held, under the folder's config.json of another run; and with
    config.json lost, trained to the end and then exited 2 on the report."""
    import shutil

    run = interrupted_run(tmp_path / "run")
    other = tmp_path / "other"
    assert main(["train", "--model", "resnet14", "--data", "digits", "--steps", "1", "--quiet", "--report", "none",
                 "--out", str(other)]) == 0
    mixed = tmp_path / "mixed"
    shutil.copytree(run, mixed)
    shutil.copy(other / "last.pt", mixed / "last.pt")
    before = {p.name: p.read_bytes() for p in mixed.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", str(mixed), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{mixed / 'last.pt'} and {mixed / 'config.json'} describe different runs (model 'resnet14' vs " \
           "'resnet8'" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in mixed.iterdir() if p.is_file()} == before

    (run / "config.json").unlink()
    assert main(["train", "--resume", str(run), "--quiet", "--report", "wait"]) == 0
    assert "config.json is missing or damaged; it is written again from the checkpoint" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["model"] == "resnet8" and (run / "report.html").exists()


NOT_A_RUNS_CONFIG = ['[1, 2]', 'null', '{"name": "my-app", "debug": true}']  # the last: another tool's config.json


@pytest.mark.parametrize("content", NOT_A_RUNS_CONFIG)
def test_a_config_json_that_is_not_a_runs_settings_is_neither_replaced_nor_trained_from(content, tmp_path, capsys):
    """A folder holding some other config.json: a new run wrote over it (exit 0); --resume there ended in a
    traceback (a list, null) or, for an object without the run's settings, trained a default resnet20 run."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(content)
    assert main(["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--steps", "1", "--quiet",
                 "--report", "none", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a config.json that is not a run's settings (" in err and err.count("\n") == 1
    assert main(["train", "--resume", str(out), "--quiet", "--report", "none"]) == 2
    err = capsys.readouterr().err
    assert f"{out / 'config.json'} is damaged (" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] and (out / "config.json").read_text() == content


@pytest.mark.parametrize("content", NOT_A_RUNS_CONFIG)
def test_a_config_json_that_is_not_a_runs_settings_is_written_again_from_the_checkpoint(content, tmp_path,
                                                                                          interrupted_run, capsys):
    """Beside a last.pt it ended in a traceback (a list, null), or was read as the default settings and the resume
    refused with 'the config given changes model 'resnet20' (the run has 'resnet8')', though none was given."""
    run = interrupted_run(tmp_path / "run")
    (run / "config.json").write_text(content)
    assert main(["train", "--resume", str(run), "--quiet", "--report", "none"]) == 0
    assert "config.json is missing or damaged; it is written again from the checkpoint" in capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["model"] == "resnet8" and (run / "result.json").exists()


def test_a_damaged_gradient_record_file_is_refused_in_one_line_on_resume(tmp_path, interrupted_run, capsys):
    run = interrupted_run(tmp_path / "run")
    (run / "gradients.jsonl").write_text('x\n{"step":\n')
    assert main(["train", "--resume", str(run), "--quiet"]) == 2  # was a traceback (ValueError)
    err = capsys.readouterr().err
    assert f"{run / 'gradients.jsonl'} is damaged" in err and "delete it to go on" in err and err.count("\n") == 1


@pytest.mark.parametrize("line,said", [
    ("null", "a record is null, not an object"),
    ("[1, 2]", "a record is [1, 2], not an object"),
    ('{"epoch": "x", "step": "y"}', "a record's step is 'y', not a step number"),
    ('{"step": 0, "verdict": "healthy"}', "the record of step 0 lacks the monitor's norms or groups"),
])
def test_a_gradient_record_that_is_json_but_not_the_monitors_is_refused_in_one_line_on_resume(
        line, said, tmp_path, interrupted_run, capsys):
    """Only a line that is not JSON was refused: JSON of another shape ended the resume in a traceback
    (AttributeError, TypeError, KeyError('groups')), the other records already rewritten."""
    run = interrupted_run(tmp_path / "run")
    records = (run / "gradients.jsonl").read_text().splitlines(keepends=True)
    damaged = "".join([records[0], line + "\n", *records[1:]])
    (run / "gradients.jsonl").write_text(damaged)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'gradients.jsonl'} is damaged ({said}); restore it" in err and err.count("\n") == 1
    assert (run / "gradients.jsonl").read_text() == damaged



def _write_npz(path: Path, n_train: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 8, 8), dtype=np.uint8), y_train=np.arange(n_train) % 2,
             x_test=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8), y_test=np.arange(40) % 2)


def test_a_run_resumed_where_its_relative_data_path_names_other_images_is_refused(tmp_path, interrupted_run,
                                                                                  monkeypatch, capsys):
    """npz:data.npz is read from the current folder: resumed from another folder holding another data.npz, the
    run went on training on those images (with another run length) and ended with exit 0."""
    (tmp_path / "here").mkdir(), (tmp_path / "there").mkdir()
    _write_npz(tmp_path / "here" / "data.npz", 1100)
    _write_npz(tmp_path / "there" / "data.npz", 1050)
    monkeypatch.chdir(tmp_path / "here")
    run = interrupted_run(tmp_path / "run", data="npz:data.npz")
    saved = (run / "last.pt").read_bytes()
    monkeypatch.chdir(tmp_path / "there")
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "now loads data at 16x16: 1,050 train" in err and "the run trained on data at 16x16: 1,100 train" in err
    assert "resume from the folder the run was started in" in err and err.count("\n") == 1
    assert (run / "last.pt").read_bytes() == saved
    monkeypatch.chdir(tmp_path / "here")  # from its own folder it goes on
    assert main(["train", "--resume", str(run), "--quiet", "--report", "none"]) == 0

def test_evaluate_on_its_own_data_refuses_a_relative_path_that_now_names_other_images(tmp_path, interrupted_run,
                                                                                       monkeypatch, capsys):
    """evaluate without --data reads the run's npz:data.npz from the current folder: from another folder it
    gave the accuracy on other images as the run's own, exit 0."""
    (tmp_path / "here").mkdir(), (tmp_path / "there").mkdir()
    _write_npz(tmp_path / "here" / "data.npz", 1100)
    _write_npz(tmp_path / "there" / "data.npz", 1050)
    monkeypatch.chdir(tmp_path / "here")
    run = interrupted_run(tmp_path / "run", data="npz:data.npz")
    monkeypatch.chdir(tmp_path / "there")
    assert main(["evaluate", "--checkpoint", str(run)]) == 2
    err = capsys.readouterr().err
    assert "was trained on data at 16x16: 1,100 train" in err and "now loads data at 16x16: 1,050 train" in err
    assert err.count("\n") == 1
    monkeypatch.chdir(tmp_path / "here")
    assert main(["evaluate", "--checkpoint", str(run)]) == 0

def _assert_rows_as_uninterrupted(run: Path, reference: Path) -> None:
    """The resumed run's metrics rows (epoch, step, lr) are those of the same run trained in one go."""
    assert main(["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--batch-size", "512",
                 "--epochs", "2", "--quiet", "--no-tensorboard", "--report", "none", "--out", str(reference)]) == 0
    rows, expected = ([json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
                      for d in (run, reference))
    assert [(r["epoch"], r["step"], r["lr"]) for r in rows] == [(r["epoch"], r["step"], r["lr"]) for r in expected]


def test_a_run_stopped_at_the_last_step_of_an_epoch_resumes_to_the_end(tmp_path, interrupted_run, capsys):
    """Stopped during an epoch's last step, the checkpoint holds every step of that epoch and no
    metrics row: the resume had no step left to take in it, and its row's learning rate was None,
    a TypeError on every resume (in a sweep: a run failed for good after one SIGKILL or Ctrl-C)."""
    run = interrupted_run(tmp_path / "run", stop_at=1)
    assert load_checkpoint(run / "last.pt")["step"] == 2 and not (run / "metrics.jsonl").exists()
    assert main(["train", "--resume", str(run), "--quiet", "--report", "none"]) == 0
    _assert_rows_as_uninterrupted(run, tmp_path / "reference")


def test_a_run_stopped_in_its_very_last_step_ends_its_last_epoch_when_resumed(tmp_path, interrupted_run, capsys):
    """Stopped during the run's last step, the checkpoint holds every step but not the last epoch's end:
    --resume said 'already finished; nothing to train' and exited 0 with the first epoch's accuracy as the
    final one, the last epoch never evaluated (no metrics row, no result.json, no report), as often as it was
    resumed; a sweep counted such a run done."""
    from resnet_lab.training.sweep.run_state import read_status

    run = interrupted_run(tmp_path / "run", stop_at=3)
    assert load_checkpoint(run / "last.pt")["step"] == 4 and not (run / "result.json").exists()
    assert read_status(run, "run").state == "interrupted"
    assert main(["train", "--resume", str(run), "--quiet", "--report", "none"]) == 0
    assert "already finished" not in capsys.readouterr().out
    _assert_rows_as_uninterrupted(run, tmp_path / "reference")
    assert json.loads((run / "result.json").read_text())["steps"] == 4
    assert read_status(run, "run").state == "done"


class _Killed(BaseException):
    """A SIGKILL, as far as the trainer can tell: nothing of it catches this."""


def _killed_after(monkeypatch, out: Path, method: str, at_step: int, tensorboard: bool = False) -> None:
    """resnet8 on digits (2 epochs of 2 steps) killed when ``RunFiles.<method>`` is called at ``at_step``."""
    from resnet_lab.training.run_files import RunFiles

    original = getattr(RunFiles, method)

    def killed(self, *args):
        if self.state.step == at_step:
            if method == "save":
                original(self, *args)  # killed just after this checkpoint
            raise _Killed
        return original(self, *args)

    argv = ["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--batch-size", "512",
            "--epochs", "2", "--quiet", "--report", "none", "--out", str(out)]
    with monkeypatch.context() as patch:
        patch.setattr(RunFiles, method, killed)
        with pytest.raises(_Killed):
            main(argv + ([] if tensorboard else ["--no-tensorboard"]))


def test_a_run_killed_between_its_last_checkpoint_and_result_json_writes_it_when_resumed(tmp_path, monkeypatch,
                                                                                        capsys):
    """Killed after its final last.pt but before result.json, a run stayed without result.json for good:
    --resume said 'already finished' and wrote nothing, its report called it unfinished, a sweep counted it
    done without its result and the reproduction's pack carried its weights from session to session."""
    from resnet_lab.training.sweep.run_state import read_status

    run = tmp_path / "run"
    _killed_after(monkeypatch, run, "write_result", at_step=4)
    rows = (run / "metrics.jsonl").read_text()
    assert load_checkpoint(run / "last.pt")["step"] == 4 and not (run / "result.json").exists()
    assert read_status(run, "run").state == "interrupted"
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "took all 4 steps but stopped before writing result.json; nothing to train, writing it now" in out
    assert "training resnet8" not in out and (run / "report.html").exists()
    assert json.loads((run / "result.json").read_text())["steps"] == 4
    assert (run / "metrics.jsonl").read_text() == rows  # nothing trained or evaluated again
    assert read_status(run, "run").state == "done"
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert "already finished (4 steps); nothing to train" in capsys.readouterr().out


def test_a_resume_at_an_epochs_end_keeps_that_epochs_tensorboard_points(tmp_path, monkeypatch):
    """The resumed run's SummaryWriter hid every event from the checkpoint's step on, and the epoch's row
    is logged at that step just before the checkpoint: each resume at an epoch's end lost a point from
    every TensorBoard curve (loss, accuracy, lr)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    _killed_after(monkeypatch, run, "save", at_step=2, tensorboard=True)
    assert main(["train", "--resume", str(run), "--quiet", "--report", "none"]) == 0
    events = EventAccumulator(str(run / "tb")).Reload()
    for tag in ("loss/train_loss", "loss/test_loss", "accuracy/test_acc", "lr/lr"):
        assert [e.step for e in events.Scalars(tag)] == [2, 4], tag


def test_resuming_from_best_pt_says_that_last_pt_is_replaced(tmp_path, interrupted_run, capsys):
    run = interrupted_run(tmp_path / "run")  # best.pt at step 2, last.pt at step 3
    assert main(["train", "--resume", str(run / "best.pt"), "--quiet", "--report", "none"]) == 0
    assert ("note: resuming from best.pt (step 2), not last.pt: the steps after it are trained again and last.pt "
            "is replaced") in capsys.readouterr().out


def test_a_signal_while_the_report_is_drawn_exits_with_its_code_and_names_what_is_saved(tmp_path, monkeypatch,
                                                                                     capsys):
    """SIGTERM while report.html is drawn used to kill the process silently (exit 143, no line): the run
    itself is saved by then, so the command says so and how to draw the report."""
    import os
    import signal
    import time

    import resnet_lab.report.render as render

    def killed_while_drawing(run_dir, mode, log):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("the signal did not stop the report")

    monkeypatch.setattr(render, "render_run_report", killed_while_drawing)
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--batch-size", "512",
            "--epochs", "1", "--quiet", "--no-tensorboard", "--out", str(out)]
    assert main(argv) == 128 + signal.SIGTERM
    last = _stderr_lines(capsys)[-1]
    assert "interrupted while drawing report.html" in last and f"resnet-lab report {out}" in last
    assert load_checkpoint(out / "last.pt")["step"] == 2 and (out / "result.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
