"""The rollback policy: recover from a blow-up instead of stopping, and resume exactly after it.

What it protects: on a non-finite or spiking loss, the last good weights, BatchNorm statistics and
optimizer state come back, the learning rate drops, the batch is dropped and the run goes on; it
gives up with exit 3 after --max-rollbacks; the events are in events.json, metrics.jsonl and the
report; a run interrupted before or after a rollback resumes bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import signal
import warnings
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from resnet_lab.cli.main import main
from resnet_lab.diagnostics import GradientMonitor, NonFiniteError, Rollback
from resnet_lab.diagnostics.records import read_jsonl
from resnet_lab.training import TrainingInterrupted, load_checkpoint, resolve_config, train
from resnet_lab.training.checkpoint import all_finite
from resnet_lab.training.eager_step import EagerStep

# resnet8 on digits whose batch at step POISONED has its images times Inf (``_poisoned``), so that its
# gradients are non-finite on any machine. A real blow-up (peak lr 8) depended on the CPU's floating
# point: it overflowed at step 31 on one 2-core machine and never in 88 steps on another.
POISONED = 15
RUN = dict(model="resnet8", data="digits", batch_size=64, steps=88, lr_scaling=False, deterministic=True, seed=1,
           progress=False, tensorboard=False, checkpoint_every=5)


def _argv(out, policy: str) -> list[str]:
    return ["train", "--model", "resnet8", "--data", "digits", "--batch-size", "64", "--steps", "88",
            "--no-lr-scaling", "--deterministic", "--seed", "1", "--quiet", "--no-tensorboard",
            "--checkpoint-every", "5", "--on-nonfinite", policy, "--out", str(out)]


@contextmanager
def _poisoned():
    original = EagerStep.__call__

    def call(self, x, y, step):
        return original(self, x * float("inf") if step == POISONED else x, y, step)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EagerStep, "__call__", call)
        yield


@pytest.fixture(scope="module")
def rolled_back(tmp_path_factory):
    out = tmp_path_factory.mktemp("rollback") / "run"
    with _poisoned():
        assert main(_argv(out, "rollback")) == 0
    return out


def test_rollback_recovers_a_run_that_stop_ends_with_exit_3(tmp_path, rolled_back, capsys):
    with _poisoned():
        assert main(_argv(tmp_path / "stopped", "stop")) == 3
    capsys.readouterr()

    kept = load_checkpoint(rolled_back / "last.pt")
    assert kept["step"] == 88 and all_finite(kept["model"])
    events = [e for e in json.loads((rolled_back / "events.json").read_text()) if e["kind"] == "rollback"]
    assert [e["step"] for e in events] == [POISONED] and "back to step" in events[0]["detail"]
    assert kept["rollback"]["lr_scale"] == 0.5
    metrics = read_jsonl(rolled_back / "metrics.jsonl")
    assert [e["kind"] for row in metrics for e in row.get("events", [])].count("rollback") == len(events)
    # The dropped batch is in no average: its NaN loss made the epoch's training loss NaN.
    assert all(math.isfinite(row["train_loss"]) for row in metrics)
    first_loss = read_jsonl(rolled_back / "gradients.jsonl")[0]["loss"]
    assert metrics[-1]["train_loss"] < first_loss  # recovered: below where it started
    assert "rollback" in (rolled_back / "report.html").read_text()


def _interrupt_at(monkeypatch, step: int) -> None:
    """SIGTERM to this process at ``step``: the trainer checkpoints at the step boundary and stops."""
    original = EagerStep.__call__

    def call(self, x, y, s):
        if s == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x, y, s)
    monkeypatch.setattr(EagerStep, "__call__", call)


@pytest.mark.parametrize("stop_at", [12, 20], ids=["before-the-rollback", "after-the-rollback"])
def test_resume_across_a_rollback_is_bit_identical(tmp_path, rolled_back, monkeypatch, stop_at):
    out = tmp_path / "run"
    config = resolve_config("default", **RUN, on_nonfinite="rollback", out=str(out))
    with _poisoned(), monkeypatch.context() as patch:
        _interrupt_at(patch, stop_at)
        with pytest.raises(TrainingInterrupted):
            train(config, log=lambda _: None)
    assert load_checkpoint(out / "last.pt")["step"] == stop_at + 1
    with _poisoned():  # resumed at step 13, the run meets the poisoned batch as the reference did
        train(config, resume=out, log=lambda _: None)
    ours, reference = load_checkpoint(out / "last.pt"), load_checkpoint(rolled_back / "last.pt")
    for name, tensor in reference["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    assert ours["rollback"]["rollbacks"] == reference["rollback"]["rollbacks"]


def test_a_rollback_puts_the_weight_average_back_with_the_weights(tmp_path, monkeypatch):
    """--ema under rollback: the weights went back to step 10's, the average kept the steps rolled back
    (after an explosion rolled back, its weights were 5,000x the model's and its test loss 6030)."""
    averages = {}
    config = resolve_config("default", **{**RUN, "steps": POISONED + 2}, ema=0.9, on_nonfinite="rollback",
                            out=str(tmp_path / "run"))
    with _poisoned(), monkeypatch.context() as patch:
        poisoned = EagerStep.__call__

        def call(self, x, y, step):
            averages[step] = {k: v.clone() for k, v in self.ema.model.state_dict().items()}  # before the step
            return poisoned(self, x, y, step)
        patch.setattr(EagerStep, "__call__", call)
        train(config, log=lambda _: None)
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    (event,) = checkpoint["rollback"]["rollbacks"]
    back_to = event["back_to"]
    assert event["step"] == POISONED and back_to < POISONED
    for name, tensor in averages[back_to].items():  # after the rollback: the average of the state gone back to
        assert torch.equal(averages[POISONED + 1][name], tensor), name
    # and a resumed run rolls it back the same: it travels in the checkpoint with the kept weights
    assert checkpoint["rollback"]["kept"]["also"][0].keys() == checkpoint["ema"].keys()


# ----------------------------------------------------------------------------- the monitor alone

def _loop(policy_steps: dict, rollback: Rollback, nan_at: set[int], steps: int = 30):
    """A plain loop with Adam and BatchNorm; a NaN is injected into ``fc2``'s output at ``nan_at``."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(8, 16))
    model.add_module("bn", nn.BatchNorm1d(16))
    model.add_module("relu", nn.ReLU())
    model.add_module("fc2", nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    policy_steps[-1] = {"model": model, "optimizer": optimizer}
    monitor = GradientMonitor(model, nonfinite="rollback", rollback=rollback)
    poison = {"on": False}
    model.fc2.register_forward_hook(lambda m, a, out: out * float("nan") if poison["on"] else out)
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    for step in range(steps):
        poison["on"] = step in nan_at
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        policy_steps[step] = {"before": _state(model, optimizer)}
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            took = monitor.guarded_step(optimizer, loss, inputs=x, targets=y, loss_fn=nn.functional.mse_loss)
        policy_steps[step].update(took=took, after=_state(model, optimizer))
    return monitor


def _state(model, optimizer) -> dict:
    return {"model": {k: v.clone() for k, v in model.state_dict().items()},
            "exp_avg": [optimizer.state[p]["exp_avg"].clone() for p in model.parameters() if p in optimizer.state],
            "lr": optimizer.param_groups[0]["lr"]}


def test_monitor_rollback_restores_the_kept_state_exactly_and_names_the_layer():
    seen: dict = {}
    monitor = _loop(seen, Rollback(every=5), nan_at={13})
    assert [s for s, v in seen.items() if s >= 0 and not v["took"]] == [13]
    (event,) = monitor.rollbacks
    assert event["back_to"] == 10 and "fc2" in event["reason"]  # the locator named the poisoned layer
    restored, kept = seen[13]["after"], seen[10]["before"]  # the state checked good at step 10
    for name, tensor in kept["model"].items():  # weights and BatchNorm running statistics
        assert torch.equal(restored["model"][name], tensor), name
    for a, b in zip(restored["exp_avg"], kept["exp_avg"]):  # Adam's moments too
        assert torch.equal(a, b)
    assert restored["lr"] == 0.005 and monitor.lr_scale == 0.5
    assert all(math.isfinite(float(t.sum())) for t in seen[29]["after"]["model"].values())


def test_monitor_rollback_gives_up_after_max_rollbacks_holding_the_kept_state():
    seen: dict = {}
    with pytest.raises(NonFiniteError, match="after 2 rollbacks"):
        _loop(seen, Rollback(every=5, max_rollbacks=2), nan_at={7, 8, 9})
    assert max(seen) == 9 and "after" not in seen[9]
    # Put back to step 5's state before giving up: what the trainer's checkpoint then keeps.
    now, kept = _state(seen[-1]["model"], seen[-1]["optimizer"]), seen[5]["before"]
    for name, tensor in kept["model"].items():
        assert torch.equal(now["model"][name], tensor), name


def test_monitor_rollback_on_a_loss_spike():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, nonfinite="rollback", rollback=Rollback(every=1, spike_factor=10))
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    took = []
    for step in range(12):
        scale = 1e3 if step == 10 else 1.0  # one batch with a loss far above the rest
        loss = nn.functional.mse_loss(model(x * scale), y)
        optimizer.zero_grad()
        loss.backward()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            took.append(monitor.guarded_step(optimizer, loss))
    assert took == [True] * 10 + [False, True]
    assert monitor.rollbacks[0]["reason"].startswith("loss spike") and monitor.verdict().kind != "nonfinite"


@pytest.mark.parametrize("flag, value", [("--rollback-factor", "1.5"), ("--max-rollbacks", "-1"),
                                         ("--spike-factor", "0.5")])
def test_bad_rollback_settings_are_refused_in_one_line(tmp_path, capsys, flag, value):
    assert main([*_argv(tmp_path / "run", "rollback"), flag, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]


@pytest.mark.parametrize("policy", ["stop", "skip", "warn"])
def test_rollback_settings_with_another_policy_are_refused_not_ignored(tmp_path, capsys, policy):
    """--spike-factor 3 with the default policy (stop) trained on, judging no spike at all."""
    assert main([*_argv(tmp_path / "run", policy), "--spike-factor", "3", "--max-rollbacks", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--on-nonfinite is {policy}, which ignores them" in err[0], err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="--rollback-factor tunes the rollback policy"):
        resolve_config("default", on_nonfinite=policy, rollback_factor=0.25)
    assert resolve_config("default", on_nonfinite="rollback", rollback_factor=0.25).rollback_factor == 0.25


@pytest.mark.parametrize("policy", ["warn", "skip", "stop"])
def test_the_monitors_rollback_settings_with_another_policy_are_refused_not_ignored(policy):
    from resnet_lab.errors import UserError

    with pytest.raises(UserError, match=f"rollback= sets the rollback policy, but nonfinite='{policy}'"):
        GradientMonitor(nn.Linear(2, 2), nonfinite=policy, rollback=Rollback(spike_factor=3))
