"""The Lightning and Hugging Face adapters over GradientMonitor, with the real libraries on CPU:
scalars reach the trainers' own loggers, a diverging run is judged, a NaN made by one named
layer is located to it, a dropped step leaves the optimizer state alone, and importing
resnet_lab imports neither library."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from resnet_lab.errors import UserError
from resnet_lab.integrations.common import drop_step

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the HF models here are built from configs, never downloaded


def nan_hook(module, args, output):
    """A forward hook that turns a layer's output into NaN: the injected fault."""
    return output * float("nan")


def test_importing_resnet_lab_imports_no_trainer_library():
    code = ("import sys, resnet_lab, resnet_lab.integrations, resnet_lab.diagnostics; "
            "print([m for m in ('lightning', 'pytorch_lightning', 'transformers', 'accelerate') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("make", [
    lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda params: torch.optim.Adam(params, lr=1e-2, weight_decay=1e-2),
    lambda params: torch.optim.AdamW(params, lr=1e-2),
], ids=["sgd-momentum-wd", "adam", "adamw"])
def test_a_dropped_step_leaves_weights_and_optimizer_state_unchanged(make):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = make(model.parameters())
    for _ in range(2):  # a real state to protect: momentum buffers, Adam moments and step counts
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
    weights, state = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    model(torch.randn(5, 4)).sum().backward()
    drop_step(opt)
    opt.step()
    for name, value in model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    after = opt.state_dict()["state"]
    for index, slots in state["state"].items():
        for key, value in slots.items():
            assert torch.equal(torch.as_tensor(after[index][key]), torch.as_tensor(value)), (index, key)


# -- PyTorch Lightning ---------------------------------------------------------------------

def lightning_run(tmp_path, *, lr=0.05, steps=4, callback_kwargs=None, loggers=("csv",), fault=None,
                  optimizer="sgd", plugins=None, fault_steps=None, call_net=False):
    """A resnet8 LightningModule on random CIFAR-shaped data, trained ``steps`` optimizer steps;
    ``fault`` names a layer whose output is NaN (at every step, or at ``fault_steps``); with ``call_net``
    its training_step calls ``self.net(x)``, never its own forward (as the README's example does)."""
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from resnet_lab.integrations.lightning import GradientMonitorCallback
    from resnet_lab.models import create_model

    class Classifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = create_model("resnet8", num_classes=10)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x) if call_net else self(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            if optimizer == "adam":
                return torch.optim.Adam(self.parameters(), lr=lr)
            return torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,)))
    module = Classifier()
    if fault is not None:
        module.net.get_submodule(fault).register_forward_hook(
            lambda m, a, out: nan_hook(m, a, out) if fault_steps is None or module.trainer.global_step in fault_steps
            else out)
    module.initial_state = copy.deepcopy(module.state_dict())
    made = {"csv": lambda: CSVLogger(tmp_path, name="csv"), "tb": lambda: TensorBoardLogger(tmp_path, name="tb")}
    callback = GradientMonitorCallback(**(callback_kwargs or {}))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=[made[k]() for k in loggers],
                        callbacks=[callback], log_every_n_steps=1, enable_checkpointing=False, plugins=plugins,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on num_workers etc.
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16))
    return trainer, module, callback


@pytest.mark.slow
def test_lightning_logs_gradient_scalars_to_csv_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _, callback = lightning_run(tmp_path, callback_kwargs={"every": 2}, loggers=("csv", "tb"))
    out = Path(trainer.log_dir)
    assert callback.out == out  # default: the first logger's log_dir
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("gradients/global_grad_norm")]
    assert [int(r["step"]) for r in logged] == [0, 2]  # every=2 over 4 steps
    group_columns = [k for k in rows[0] if k.startswith("gradients/grad_norm/")]
    assert group_columns[0] == "gradients/grad_norm/00.net.conv1" and len(group_columns) >= 8  # in execution order
    assert any(k.startswith("gradients/update_ratio/") and logged[1][k] for k in rows[0])  # from the 2nd record
    assert float(logged[0]["gradients/verdict"]) == 0.0  # healthy

    events = EventAccumulator(str(Path(trainer.loggers[1].log_dir))).Reload()
    assert "gradients/global_grad_norm" in events.Tags()["scalars"]

    records = [json.loads(line) for line in (out / "gradients.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 2]
    report = json.loads((out / "gradient_report.json").read_text())
    assert report["verdict"]["kind"] == "healthy"
    for name in ("gradient_table.txt", "gradient_flow.png", "gradient_heatmap.png", "gradient_loss.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_lightning_diverging_learning_rate_is_judged(tmp_path):
    _, _, callback = lightning_run(tmp_path, lr=1e4, steps=6, callback_kwargs={"every": 1, "out": tmp_path / "g"})
    kinds = {e.kind for e in callback.monitor.events()}
    assert kinds & {"exploding", "nonfinite"}, kinds
    report = json.loads((tmp_path / "g" / "gradient_report.json").read_text())
    assert {e["kind"] for e in report["events"]} & {"exploding", "nonfinite"}


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lightning_locates_a_nan_made_by_one_named_layer_and_skips_the_step(tmp_path, optimizer):
    trainer, module, callback = lightning_run(
        tmp_path, steps=3, fault="layer2.0.conv1", optimizer=optimizer,
        callback_kwargs={"nonfinite": "skip", "every": 1, "out": tmp_path / "g"})
    report = callback.monitor.last_report
    assert report is not None and report.module_name == "net.layer2.0.conv1" and report.phase == "forward"
    assert callback.monitor.skipped_steps == [0, 1, 2]
    saved = json.loads((tmp_path / "g" / "gradient_report.json").read_text())
    assert saved["nonfinite_location"]["module_name"] == "net.layer2.0.conv1"
    # Every step was dropped: the weights are still the initial ones and the optimizer has no state.
    for name, value in module.state_dict().items():
        assert torch.equal(value, module.initial_state[name]), name
    assert not trainer.optimizers[0].state


def test_lightning_skip_puts_back_the_batchnorm_statistics_when_training_step_bypasses_forward(tmp_path):
    """The buffers were kept by a hook on the LightningModule's forward, which a training_step calling
    self.net never runs: one NaN batch left the running statistics NaN and every later step was dropped."""
    _, module, callback = lightning_run(
        tmp_path, steps=3, fault="layer2.0.conv1", fault_steps={1}, call_net=True,
        callback_kwargs={"nonfinite": "skip", "every": 1, "out": tmp_path / "g"})
    assert callback.monitor.skipped_steps == [1]
    assert all(torch.isfinite(b).all() for b in module.buffers() if b.is_floating_point())


@pytest.mark.slow
def test_lightning_fp16_scaler_overflow_steps_are_not_failures(tmp_path):
    """fp16 with a loss scale far too high: every step overflows, which the scaler handles (it skips
    the step and halves the scale). The stop policy must not stop, nor count a skipped step."""
    from lightning.pytorch.plugins import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40)
    _, module, callback = lightning_run(tmp_path, steps=3, plugins=[MixedPrecision("16-mixed", "cpu", scaler)],
                                        callback_kwargs={"nonfinite": "stop", "every": 1, "out": tmp_path / "g"})
    assert callback.monitor.skipped_steps == [] and callback.monitor.events() == []
    assert scaler.get_scale() == 2.0 ** 37  # halved at each of the 3 overflowing steps
    for name, value in module.state_dict().items():
        if name.endswith("weight"):
            assert torch.equal(value, module.initial_state[name]), name  # the scaler did not step


def test_lightning_callback_rejects_bad_arguments():
    pytest.importorskip("lightning")
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    with pytest.raises(UserError, match="every must be a positive integer"):
        GradientMonitorCallback(every=0)
    # checked when the callback is made, not deep inside the trainer's start (a misspelt keyword was a TypeError)
    with pytest.raises(UserError, match=r"^'nonfinte': not a GradientMonitor keyword; it takes groups, every, "):
        GradientMonitorCallback(nonfinte="skip")
    with pytest.raises(UserError, match=r"^nonfinite='skp' is not valid; choose one of: warn, skip, stop, rollback$"):
        GradientMonitorCallback(nonfinite="skp")
    with pytest.raises(UserError, match="set by the callback"):
        from resnet_lab.integrations.common import make_monitor

        make_monitor(nn.Linear(2, 2), None, 1, {"jsonl_path": "x"}, print)


def test_integrations_out_that_is_not_a_folder_is_one_line(tmp_path):
    """out=5 was a TypeError from inside pathlib, and out= an existing file a FileExistsError from deep
    inside the trainer's start."""
    pytest.importorskip("lightning")
    from resnet_lab.integrations.common import make_monitor
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    with pytest.raises(UserError, match="out is a file or folder path"):
        GradientMonitorCallback(out=5)
    (tmp_path / "notes.txt").write_text("kept")
    with pytest.raises(UserError, match=r"cannot write out .*notes.txt is a file, not a folder"):
        make_monitor(nn.Linear(2, 2), tmp_path / "notes.txt", 1, {}, print)
    assert (tmp_path / "notes.txt").read_text() == "kept"


def tiny_lightning_run(tmp_path, *, steps=3, callback=None, manual=False, fault_batches=(), logger=False,
                       schedule=False, ckpt_path=None, skipped_batches=(), trainer_options=None, **callback_kwargs):
    """A LightningModule of two small MLPs with no buffers (no BatchNorm) on random data, ``steps`` batches;
    with ``manual`` it steps them with two optimizers itself (``automatic_optimization=False``, as a GAN
    does); the batches in ``fault_batches`` make a NaN loss; ``schedule``: a constant LambdaLR stepped each
    step; ``ckpt_path``: resumed from that checkpoint; ``skipped_batches``: training_step returns None for them
    (Lightning's way to skip a batch); ``trainer_options``: more ``L.Trainer`` arguments. Returns the trainer,
    module and callback."""
    L = pytest.importorskip("lightning.pytorch")
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    class TwoMLPs(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = not manual
            self.first = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
            self.second = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

        def training_step(self, batch, batch_idx):
            if batch_idx in skipped_batches:
                return None
            x, y = batch
            hidden = self.first(x) * (float("nan") if batch_idx in fault_batches else 1.0)
            if not manual:
                return F.cross_entropy(self.second(hidden), y)
            for opt, loss in zip(self.optimizers(), (lambda: self.second(hidden).square().mean(),
                                                      lambda: F.cross_entropy(self.second(hidden.detach()), y))):
                opt.zero_grad()
                self.manual_backward(loss())
                opt.step()

        def configure_optimizers(self):
            if manual:
                return torch.optim.Adam(self.first.parameters(), 1e-3), torch.optim.Adam(self.second.parameters(), 1e-3)
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
            if schedule:
                return {"optimizer": opt, "lr_scheduler": {
                    "scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), "interval": "step"}}
            return opt

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(8 * steps, 8), torch.randint(0, 3, (8 * steps,)))
    callback = callback or GradientMonitorCallback(**{"out": tmp_path / "g", "every": 1, **callback_kwargs})
    module = TwoMLPs()
    trainer = L.Trainer(max_steps=(2 if manual else 1) * steps, accelerator="cpu", logger=logger,
                        callbacks=[callback], enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path,
                        **{"log_every_n_steps": 1, **(trainer_options or {})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8), ckpt_path=ckpt_path)
    return trainer, module, callback


def test_lightning_skip_on_a_model_without_buffers_takes_every_step(tmp_path):
    """A model with no buffers (no BatchNorm: an MLP, most transformers) under skip, stop or rollback:
    the buffers kept at each batch's start were an empty list, and copying into it raised
    "Tensor list must have at least one tensor" at the second batch."""
    trainer, _, callback = tiny_lightning_run(tmp_path, steps=3, fault_batches={1}, nonfinite="skip")
    assert trainer.global_step == 3 and callback.monitor.skipped_steps == [1]


@pytest.mark.parametrize("nonfinite", ["warn", "skip"])
def test_lightning_training_step_returning_none_skips_the_batch_without_ending_the_fit(tmp_path, nonfinite):
    """A training_step that returns None has Lightning skip the batch's backward, yet it still calls the
    optimizer step and its hooks: the monitor found no gradients and the fit ended in a UserError that told the
    user to call step() after loss.backward(). The batch is not judged; the steps around it are."""
    trainer, module, callback = tiny_lightning_run(tmp_path, steps=4, skipped_batches={1}, fault_batches={2},
                                                   nonfinite=nonfinite)
    assert trainer.global_step == 4 and _steps(tmp_path / "g" / "gradients.jsonl") == [0, 2, 3]
    if nonfinite == "skip":
        assert callback.monitor.skipped_steps == [2]
        assert all(torch.isfinite(p).all() for p in module.parameters())


def test_lightning_backbone_finetuning_records_the_backbone_once_it_is_unfrozen(tmp_path):
    """The README's fine-tuning case: Lightning's BackboneFinetuning freezes the backbone at the fit's start and
    unfreezes it at epoch 1. The monitor's records then showed the head alone for the whole fit (with a warning):
    the backbone's gradient flow, what a fine-tuner wants to see, never appeared. It now joins the records from
    the first step after the unfreezing, under the depth its layers have in the network."""
    L = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.callbacks import BackboneFinetuning

    from resnet_lab.integrations.lightning import GradientMonitorCallback

    class FineTuned(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16))
            self.head = nn.Linear(16, 3)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.head(self.backbone(x)), y)

        def configure_optimizers(self):
            return torch.optim.SGD(filter(lambda p: p.requires_grad, self.parameters()), lr=0.05)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,)))
    callback = GradientMonitorCallback(every=1, groups=2)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=1), callback],
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on num_workers etc.
        trainer.fit(FineTuned(), torch.utils.data.DataLoader(data, batch_size=8))
    seen = [[(g["name"], g["depth_index"]) for g in r["groups"] if g["grad_norm"] is not None]
            for r in callback.monitor.records()]
    assert seen == [[("head", 2)]] * 2 + [[("backbone.0", 0), ("backbone.2", 1), ("head", 2)]] * 2


def test_lightning_fast_dev_run_writes_no_files_and_can_run_again(tmp_path):
    """fast_dev_run suppresses Lightning's logging and checkpoints, yet the callback wrote gradients.jsonl, the
    report and three plots into default_root_dir (the working directory by default), and the next fast_dev_run
    there was refused as a new run into a folder holding an earlier run's records. It records in memory now;
    out= given still writes there."""
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    for _ in range(2):
        callback = GradientMonitorCallback(every=1, nonfinite="skip")
        trainer, _, _ = tiny_lightning_run(tmp_path, callback=callback, fault_batches={0},
                                           trainer_options={"fast_dev_run": True})
        assert trainer.global_step == 1 and callback.monitor.skipped_steps == [0]
        assert [r["step"] for r in callback.monitor.records()] == [0] and callback.report_paths == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    _, _, callback = tiny_lightning_run(tmp_path, trainer_options={"fast_dev_run": True})  # out= tmp_path / "g"
    assert _steps(tmp_path / "g" / "gradients.jsonl") == [0] and (tmp_path / "g" / "gradient_report.json").is_file()


def test_lightning_fit_shorter_than_log_every_n_steps_records_its_last_step_too(tmp_path):
    """Lightning numbers steps from 0, so a fit shorter than log_every_n_steps (50 by default) was recorded at
    step 0 only: its report judged the untrained model. With every= left to its default, its last step is
    recorded too. log_every_n_steps=0 (barebones=True) under warn, which acts on records only, was refused for
    an every=0 the user never gave: the line now names the trainer's setting and the callback's every=."""
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    _, _, callback = tiny_lightning_run(tmp_path, steps=5, callback=GradientMonitorCallback(out=tmp_path / "g"),
                                        trainer_options={"log_every_n_steps": 50})
    assert _steps(tmp_path / "g" / "gradients.jsonl") == [0, 4]
    with pytest.raises(UserError, match=r"^log_every_n_steps=0 \(barebones=True\) leaves GradientMonitorCallback "
                                        r"no step to record.*GradientMonitorCallback\(every=N\)"):
        tiny_lightning_run(tmp_path, callback=GradientMonitorCallback(out=tmp_path / "h"),
                           trainer_options={"log_every_n_steps": 0})


def test_lightning_manual_optimization_skip_does_not_rerun_its_training_step(tmp_path):
    """Locating the NaN re-ran training_step, which under manual optimization steps the optimizers: the
    step re-entered the callback, which located again, until a RecursionError ended the fit."""
    trainer, module, callback = tiny_lightning_run(tmp_path, steps=3, manual=True, fault_batches={1},
                                                   nonfinite="skip")
    assert trainer.global_step == 6 and callback.monitor.skipped_steps == [2, 3]  # both optimizers' steps of batch 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_lightning_rollback_with_several_optimizers_is_refused_in_one_line(tmp_path):
    """The monitor keeps the state of the optimizer it is handed: with two, a rollback at the second's step
    loaded the first's kept state into it (its Adam moments wiped or of the wrong shapes), and lowered
    each lr once while the record said x0.25."""
    with pytest.raises(UserError, match="one optimizer for now .*has 2.*use 'skip' or 'stop'"):
        tiny_lightning_run(tmp_path, manual=True, nonfinite="rollback")


def test_lightning_callback_used_again_by_another_trainer_writes_into_that_trainers_log_dir(tmp_path):
    """The first fit's log_dir stuck to the callback: a second trainer's records were appended to the first
    run's gradients.jsonl and its report replaced the first run's."""
    from lightning.pytorch.loggers import CSVLogger

    from resnet_lab.integrations.lightning import GradientMonitorCallback

    callback = GradientMonitorCallback(every=1)
    for steps in (2, 3):
        trainer, _, _ = tiny_lightning_run(tmp_path, steps=steps, callback=callback,
                                           logger=CSVLogger(tmp_path, name="c"))
        assert callback.out == Path(trainer.log_dir)
    first, second = tmp_path / "c" / "version_0", tmp_path / "c" / "version_1"
    assert [json.loads(line)["step"] for line in (first / "gradients.jsonl").read_text().splitlines()] == [0, 1]
    assert [json.loads(line)["step"] for line in (second / "gradients.jsonl").read_text().splitlines()] == [0, 1, 2]
    assert json.loads((first / "gradient_report.json").read_text())["step"] == 1


def _steps(jsonl: Path) -> list[int]:
    return [json.loads(line)["step"] for line in jsonl.read_text().splitlines()]


def test_lightning_new_fit_refuses_a_folder_holding_an_earlier_runs_records(tmp_path):
    """A second fit into the same folder (out=, or logger=False and one default_root_dir) appended its
    records to the first run's gradients.jsonl (steps 0, 1, 0, 1) and replaced its report."""
    tiny_lightning_run(tmp_path, steps=2)
    before = (tmp_path / "g" / "gradients.jsonl").read_bytes()
    with pytest.raises(UserError, match=r"g already holds the gradients.jsonl of an earlier run, which this new one "
                                        r"would mix its records into .*give another out="):
        tiny_lightning_run(tmp_path, steps=2)
    assert (tmp_path / "g" / "gradients.jsonl").read_bytes() == before


def test_lightning_fit_resumed_from_a_checkpoint_continues_its_records_exactly_once(tmp_path):
    """A fit resumed with ckpt_path= continues the folder's gradients.jsonl from the restored step: the
    records of the steps it replays are not written twice."""
    tiny_lightning_run(tmp_path, steps=4)  # records of steps 0..3 in tmp_path / "g"
    trainer, _, _ = tiny_lightning_run(tmp_path / "short", steps=2)  # a run stopped at step 2 ...
    trainer.save_checkpoint(tmp_path / "at2.ckpt")
    resumed, _, _ = tiny_lightning_run(tmp_path, steps=4, ckpt_path=tmp_path / "at2.ckpt")  # ... resumed there
    assert resumed.global_step == 4 and _steps(tmp_path / "g" / "gradients.jsonl") == [0, 1, 2, 3]


def test_lightning_fit_resumed_after_a_rollback_keeps_its_lowered_rate_and_kept_state(tmp_path):
    """The callback kept nothing in the trainer's checkpoint: a resumed fit started again at lr_scale 1 with
    no rollback counted (max_rollbacks started over) and no state to roll back to."""
    from resnet_lab.diagnostics import Rollback

    rollback = dict(nonfinite="rollback", rollback=Rollback(every=1), schedule=True)
    trainer, _, callback = tiny_lightning_run(tmp_path, steps=3, fault_batches={2}, **rollback)
    assert callback.monitor.lr_scale == 0.5 and len(callback.monitor.rollbacks) == 1
    trainer.save_checkpoint(tmp_path / "at3.ckpt")
    resumed, _, callback = tiny_lightning_run(tmp_path, steps=5, ckpt_path=tmp_path / "at3.ckpt", **rollback)
    assert callback.monitor.lr_scale == 0.5 and len(callback.monitor.rollbacks) == 1
    assert callback.monitor.rollback_state_dict()["kept"] is not None
    assert resumed.lr_scheduler_configs[0].scheduler.base_lrs == [pytest.approx(0.025)]  # not halved again
    assert resumed.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)


def test_lightning_fit_resumed_under_another_policy_than_its_checkpoint_goes_on(tmp_path):
    """A checkpoint of a fit under rollback resumed under skip: its rollback state was loaded into a monitor
    that keeps none, and the resumed fit ended in an AttributeError before its first step."""
    from resnet_lab.diagnostics import Rollback

    trainer, _, _ = tiny_lightning_run(tmp_path / "first", steps=2, nonfinite="rollback", rollback=Rollback(every=1))
    trainer.save_checkpoint(tmp_path / "at2.ckpt")
    resumed, _, callback = tiny_lightning_run(tmp_path, steps=4, ckpt_path=tmp_path / "at2.ckpt", nonfinite="skip",
                                              fault_batches={3})
    assert resumed.global_step == 4 and callback.monitor.skipped_steps == [3]


def test_lightning_callback_used_again_after_a_rollback_leaves_the_next_schedule_alone(tmp_path):
    """The scheduler follower outlived the fit: the next fit's monitor starts at lr_scale 1, which the
    follower read as a rollback undone, and doubled the new trainer's base learning rates."""
    from resnet_lab.diagnostics import Rollback

    trainer, _, callback = tiny_lightning_run(tmp_path, steps=3, fault_batches={2}, schedule=True,
                                              nonfinite="rollback", rollback=Rollback(every=1))
    assert len(callback.monitor.rollbacks) == 1
    assert trainer.lr_scheduler_configs[0].scheduler.base_lrs == [pytest.approx(0.025)]  # followed the rollback
    for name in ("gradients.jsonl", "gradient_report.json"):  # its out= is taken: a new fit would be refused
        (tmp_path / "g" / name).unlink()
    trainer, _, _ = tiny_lightning_run(tmp_path, steps=2, schedule=True, callback=callback)
    assert trainer.lr_scheduler_configs[0].scheduler.base_lrs == [pytest.approx(0.05)]
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.05)


# -- Hugging Face transformers -------------------------------------------------------------

class TinyTextData(torch.utils.data.Dataset):
    def __init__(self, n: int = 32, length: int = 12):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, 100, (n, length), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def hf_run(tmp_path, *, steps=4, fault=None, report_to=(), attach=True, fault_steps=None, made=None, callback=None,
           config=None, **options):
    """A 2-layer BERT (hidden 32) built from a config, trained ``steps`` steps by ``Trainer`` (and the
    callback, in ``made`` when given, for a run that raises; ``callback``: one made before, attached first;
    ``config``: more ``BertConfig`` options)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from resnet_lab.integrations.huggingface import GradientMonitorCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=2, **(config or {}))
    model = transformers.BertForSequenceClassification(config)
    made = {} if made is None else made
    if fault is not None:
        model.get_submodule(fault).register_forward_hook(
            lambda m, a, out: nan_hook(m, a, out)
            if fault_steps is None or made["trainer"].state.global_step in fault_steps else out)
    monitor_options = {k: options.pop(k) for k in ("every", "nonfinite", "out", "rollback") if k in options}
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), max_steps=steps, per_device_train_batch_size=8, report_to=list(report_to),
        use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0, **{"learning_rate": 1e-3, "logging_steps": 2,
                                                                         **options})
    trainer = made["trainer"] = transformers.Trainer(model=model, args=args, train_dataset=TinyTextData())
    if callback is not None:
        trainer.callback_handler.callbacks.insert(0, callback)
    elif attach:
        callback = GradientMonitorCallback.attach(trainer, **monitor_options)
    else:
        callback = GradientMonitorCallback(**monitor_options)
        trainer.add_callback(callback)
    made["callback"] = callback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return trainer, callback


def test_huggingface_stop_takes_the_callbacks_hooks_off_the_model_and_writes_the_report(tmp_path):
    """The Trainer has no exception event: a stop left the callback's hooks on the model (holding the last
    batch, copying the buffers at every later forward) and wrote no table or plots."""
    from resnet_lab.diagnostics import NonFiniteError

    made = {}
    with pytest.raises(NonFiniteError):
        hf_run(tmp_path, steps=3, fault="bert.encoder.layer.0.output.dense", nonfinite="stop", every=1, made=made)
    model = made["trainer"].model
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules() if m is not model.get_submodule(
        "bert.encoder.layer.0.output.dense"))  # only the test's own fault hook is left
    assert {p.name for p in made["callback"].report_paths} >= {"gradient_report.json", "gradient_table.txt"}


@pytest.mark.slow
def test_huggingface_logs_gradient_scalars_to_log_history_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, callback = hf_run(tmp_path, report_to=["tensorboard"])
    logged = [h for h in trainer.state.log_history if "gradients/global_grad_norm" in h]
    assert [h["step"] for h in logged] == [2, 4]  # the Trainer's logging_steps, its step numbers
    assert any(k.startswith("gradients/grad_norm/") and "encoder.layer.1" in k for k in logged[0])
    assert logged[0]["gradients/verdict"] == 0.0
    out = tmp_path / "hf"
    assert [json.loads(line)["step"] for line in (out / "gradients.jsonl").read_text().splitlines()] == [2, 4]
    trainer.save_state()  # trainer_state.json: the log history as saved with checkpoints
    saved = json.loads((out / "trainer_state.json").read_text())
    assert [h["step"] for h in saved["log_history"] if "gradients/global_grad_norm" in h] == [2, 4]
    event_dirs = {p.parent for p in out.rglob("events.out.tfevents.*")}
    tags = set().union(*(EventAccumulator(str(d)).Reload().Tags()["scalars"] for d in event_dirs))
    assert any("gradients/global_grad_norm" in t for t in tags), tags
    for name in ("gradient_report.json", "gradient_table.txt", "gradient_flow.png"):
        assert (out / name).is_file(), name


def test_huggingface_callback_used_again_by_another_trainer_writes_into_its_output_dir(tmp_path):
    """The first run's output_dir stuck to the callback: the second Trainer's records went into it."""
    from resnet_lab.integrations.huggingface import GradientMonitorCallback

    callback = GradientMonitorCallback(every=1)
    for run, steps in (("a", 1), ("b", 2)):
        hf_run(tmp_path / run, steps=steps, callback=callback)
        assert callback.out == tmp_path / run / "hf"
    for run, steps in (("a", [1]), ("b", [1, 2])):
        lines = (tmp_path / run / "hf" / "gradients.jsonl").read_text().splitlines()
        assert [json.loads(line)["step"] for line in lines] == steps


def test_huggingface_new_run_refuses_an_output_dir_holding_an_earlier_runs_records(tmp_path):
    """Running the same script again (the same output_dir) mixed two runs in one gradients.jsonl (1, 2, 1, 2)."""
    hf_run(tmp_path, steps=2, every=1)
    before = (tmp_path / "hf" / "gradients.jsonl").read_bytes()
    with pytest.raises(UserError, match="hf already holds the gradients.jsonl of an earlier run"):
        hf_run(tmp_path, steps=2, every=1)
    assert (tmp_path / "hf" / "gradients.jsonl").read_bytes() == before


def _hf_train(tmp_path, resume=None, crash_at=None, made=None, nan_at=(), monitor=None, **arguments):
    """The 2-layer BERT of ``hf_run`` trained 4 steps with these ``TrainingArguments``, the callback recording
    every step into ``tmp_path / "hf"`` (``monitor``: its other options); ``crash_at``: a RuntimeError in that
    step's forward; ``nan_at``: the steps whose forward makes a NaN in one layer. Returns the Trainer (also in
    ``made``, with the callback)."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from resnet_lab.integrations.huggingface import GradientMonitorCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=32, num_labels=2)
    args = transformers.TrainingArguments(**{"output_dir": str(tmp_path / "hf"), "max_steps": 4, "report_to": [],
                                             "per_device_train_batch_size": 8, "use_cpu": True, "disable_tqdm": True,
                                             "seed": 0, **arguments})
    trainer = transformers.Trainer(model=transformers.BertForSequenceClassification(config), args=args,
                                   train_dataset=TinyTextData())
    made = {} if made is None else made
    made["trainer"], made["callback"] = trainer, GradientMonitorCallback.attach(trainer, every=1, **(monitor or {}))

    def crash(module, args, output):
        if module.training and trainer.state.global_step + 1 == crash_at:
            raise RuntimeError("CUDA out of memory (injected)")

    trainer.model.register_forward_hook(crash)
    if nan_at:
        trainer.model.get_submodule("bert.encoder.layer.1.attention.self.query").register_forward_hook(
            lambda m, a, out: nan_hook(m, a, out) if trainer.state.global_step + 1 in nan_at else out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_huggingface_run_resumed_from_a_checkpoint_continues_its_records_exactly_once(tmp_path):
    _hf_train(tmp_path, save_steps=2)
    _hf_train(tmp_path, resume=str(tmp_path / "hf" / "checkpoint-2"), save_steps=2)  # replays steps 3 and 4
    assert _steps(tmp_path / "hf" / "gradients.jsonl") == [1, 2, 3, 4]


def test_huggingface_run_resumed_in_a_streak_of_skipped_steps_gives_up_where_the_first_would_have(tmp_path):
    """The callback kept nothing in the Trainer's checkpoints: a run resumed in a streak of NaN steps counted its
    skips from 0 again, skipped past max_skips and ended as if it had succeeded."""
    from resnet_lab.diagnostics import NonFiniteError

    skip = dict(nan_at={1, 2, 3, 4}, monitor={"nonfinite": "skip", "max_skips": 3}, save_steps=2)
    gives_up = r"^non-finite values at step 4: .*, the 4th consecutive non-finite step \(skip gives up\)"
    with pytest.raises(NonFiniteError, match=gives_up):
        _hf_train(tmp_path, **skip)  # saving checkpoint-2 on its way
    with pytest.raises(NonFiniteError, match=gives_up):
        _hf_train(tmp_path, resume=str(tmp_path / "hf" / "checkpoint-2"), **skip)


def test_huggingface_run_resumed_after_a_rollback_keeps_its_count_and_lowered_rate(tmp_path):
    """A resumed run started again at lr_scale 1 with no rollback counted: max_rollbacks started over."""
    from resnet_lab.diagnostics import NonFiniteError, Rollback

    rollback = dict(monitor={"nonfinite": "rollback", "rollback": Rollback(every=1, max_rollbacks=1)},
                    lr_scheduler_type="constant", learning_rate=1e-3, save_steps=3)
    _hf_train(tmp_path, nan_at={2}, max_steps=3, **rollback)  # rolled back at step 2; checkpoint-3
    made = {}
    with pytest.raises(NonFiniteError, match=r"^non-finite values at step 5: .*, after 1 rollbacks \(rollback gives"):
        _hf_train(tmp_path, resume=str(tmp_path / "hf" / "checkpoint-3"), made=made, nan_at={5}, max_steps=6,
                  **rollback)
    assert made["callback"].monitor.lr_scale == 0.5
    assert made["trainer"].lr_scheduler.get_last_lr() == pytest.approx([0.5e-3] * 2)  # not halved again


def test_huggingface_run_resumed_from_a_checkpoint_without_the_callbacks_state_goes_on(tmp_path):
    """A checkpoint made without this callback (an older resnet-lab, or another callback list) has no entry for it
    in trainer_state.json, which the Trainer looks up at the resumed run's next save (KeyError)."""
    _hf_train(tmp_path, save_steps=2)
    saved = tmp_path / "hf" / "checkpoint-2" / "trainer_state.json"
    state = json.loads(saved.read_text())
    del state["stateful_callbacks"]["GradientMonitorCallback"]
    saved.write_text(json.dumps(state))
    trainer = _hf_train(tmp_path, resume=str(saved.parent), save_steps=2)
    assert trainer.state.global_step == 4 and _steps(tmp_path / "hf" / "gradients.jsonl") == [1, 2, 3, 4]


def test_huggingface_restoring_callback_states_by_the_trainer_is_refused_in_one_line(tmp_path):
    """With restore_callback_states_from_checkpoint=True the Trainer replaces the callback by a copy made with no
    arguments: its policy would be warn, whatever was asked."""
    _hf_train(tmp_path, save_steps=2)
    with pytest.raises(UserError, match=r"^restore_callback_states_from_checkpoint=True replaced the "
                                        r"GradientMonitorCallback by a copy without its options; leave it False"):
        _hf_train(tmp_path, resume=str(tmp_path / "hf" / "checkpoint-2"), save_steps=2,
                  restore_callback_states_from_checkpoint=True)


def test_huggingface_finish_after_another_exception_takes_the_hooks_off_and_writes_the_report(tmp_path):
    """The Trainer has no exception event: after a crash that is not the policy's stop only gradients.jsonl was
    left and the callback's hooks stayed on the model; ``finish()`` is the documented way out."""
    made = {}
    with pytest.raises(RuntimeError, match="out of memory"):
        _hf_train(tmp_path, crash_at=3, made=made, save_strategy="no")
    callback, model = made["callback"], made["trainer"].model
    assert callback.report_paths == [] and model._forward_pre_hooks  # the callback's, still on
    callback.finish()
    assert not model._forward_pre_hooks and len(model._forward_hooks) == 1  # the test's crash hook alone is left
    assert {p.name for p in callback.report_paths} >= {"gradient_report.json", "gradient_table.txt"}
    assert json.loads((tmp_path / "hf" / "gradient_report.json").read_text())["step"] == 2


def test_huggingface_loss_of_a_step_of_several_micro_batches_is_the_loss_the_trainer_logs(tmp_path):
    """With gradient accumulation the record held the last micro-batch's share of the loss (half of it here)."""
    trainer = _hf_train(tmp_path, gradient_accumulation_steps=2, per_device_train_batch_size=4, logging_steps=1,
                        save_strategy="no")
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    recorded = {json.loads(line)["step"]: json.loads(line)["loss"]
                for line in (tmp_path / "hf" / "gradients.jsonl").read_text().splitlines()}
    assert sorted(logged) == sorted(recorded) == [1, 2, 3, 4]
    assert all(recorded[step] == pytest.approx(logged[step], abs=2e-4) for step in logged), (recorded, logged)


def test_huggingface_model_returning_a_tuple_has_its_loss_recorded(tmp_path):
    """Under return_dict=False the model returns (loss, logits), whose first element the Trainer takes as the loss;
    the callback looked for output.loss only, so every record had loss None: no loss plot, explode_loss never
    judged, and rollback's loss-spike test silently off."""
    trainer, callback = hf_run(tmp_path, steps=3, every=1, logging_steps=1, config={"return_dict": False})
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    recorded = [r["loss"] for r in callback.monitor.records()]
    assert len(recorded) == 3 and recorded == [pytest.approx(v, abs=2e-4) for v in logged]


def test_huggingface_run_shorter_than_logging_steps_records_its_last_step(tmp_path):
    """Steps are numbered from 1 and recorded every logging_steps (500 by default): a shorter run recorded no step
    at all, and its report, with no table or plots, said "healthy: no step recorded yet"."""
    trainer, callback = hf_run(tmp_path, steps=3, logging_steps=500)
    assert _steps(tmp_path / "hf" / "gradients.jsonl") == [3]
    assert callback.monitor.verdict().kind == "healthy" and callback.monitor.verdict().step == 3
    assert "gradients/global_grad_norm" in trainer.state.log_history[-1]  # the run's closing log
    assert {p.name for p in callback.report_paths} >= {"gradient_table.txt", "gradient_flow.png"}


def test_huggingface_loss_computed_outside_the_model_is_said_once_when_a_policy_judges_it(tmp_path, monkeypatch):
    """With label_smoothing_factor (or a compute_loss of its own) the Trainer computes the loss outside the model,
    whose output then has none: rollback's loss-spike test and explode_loss judged nothing, without a word."""
    from resnet_lab.diagnostics import Rollback

    said = []
    monkeypatch.setattr(warnings, "warn", lambda message, *a, **k: said.append(str(message)))
    hf_run(tmp_path / "rollback", steps=2, every=1, label_smoothing_factor=0.1, nonfinite="rollback",
           rollback=Rollback(every=1))
    assert len([m for m in said if m.startswith("GradientMonitorCallback: the model's forward returned no loss "
                                                "(the Trainer computes it outside the model), so rollback's "
                                                "loss-spike test judge")]) == 1
    said.clear()
    hf_run(tmp_path / "skip", steps=2, every=1, label_smoothing_factor=0.1, nonfinite="skip")  # judges no loss
    hf_run(tmp_path / "loss", steps=2, every=1, nonfinite="rollback", rollback=Rollback(every=1))  # has a loss
    assert not [m for m in said if m.startswith("GradientMonitorCallback")]


def test_huggingface_callback_added_late_still_reaches_log_history(tmp_path):
    trainer, _ = hf_run(tmp_path, attach=False, steps=2)
    assert any("gradients/global_grad_norm" in h for h in trainer.state.log_history)


@pytest.mark.slow
def test_huggingface_diverging_learning_rate_is_judged(tmp_path):
    # No clipping (max_grad_norm=0): the Trainer clips before the callback sees the gradients.
    _, callback = hf_run(tmp_path, steps=6, every=1, optim="sgd", learning_rate=1e4, max_grad_norm=0.0)
    kinds = {e.kind for e in callback.monitor.events()}
    assert kinds & {"exploding", "nonfinite"}, kinds


def test_huggingface_locates_a_nan_made_by_one_named_layer(tmp_path):
    layer = "bert.encoder.layer.1.attention.self.query"
    trainer, callback = hf_run(tmp_path, steps=2, every=1, nonfinite="skip", fault=layer)
    report = callback.monitor.last_report
    assert report is not None and report.module_name == layer and report.phase == "forward"
    assert callback.monitor.skipped_steps == [1, 2]
    saved = json.loads((tmp_path / "hf" / "gradient_report.json").read_text())
    assert saved["nonfinite_location"]["module_name"] == layer


def test_huggingface_language_model_with_tied_embeddings_counts_the_shared_weight_once(tmp_path):
    """GPT-2's lm_head shares the token embedding's weight: the groups listed it under both modules, and
    'lm_head.weight', absent from named_parameters(), ended the Trainer's start with a KeyError."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from resnet_lab.integrations.huggingface import GradientMonitorCallback

    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
                                                                 n_positions=16))
    ids = torch.randint(5, 100, (16, 12))
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=2, per_device_train_batch_size=8,
                                          report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=[{"input_ids": i, "labels": i} for i in ids])
    callback = GradientMonitorCallback.attach(trainer, every=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    names = [n for g in callback.monitor.groups for n in g.param_names]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # each parameter once
    assert [r["step"] for r in callback.monitor.records()] == [1, 2]


def test_accelerate_loop_uses_the_monitor_directly():
    """A plain accelerate loop needs no adapter: step() after accelerator.backward(), check_step() before the step."""
    accelerate = pytest.importorskip("accelerate")
    from resnet_lab.diagnostics import GradientMonitor

    torch.manual_seed(0)
    accelerator = accelerate.Accelerator(cpu=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.utils.data.TensorDataset(torch.randn(32, 8), torch.randint(0, 2, (32,)))
    model, opt, loader = accelerator.prepare(model, opt, torch.utils.data.DataLoader(data, batch_size=8))
    monitor = GradientMonitor(accelerator.unwrap_model(model), nonfinite="skip")
    for x, y in loader:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        accelerator.backward(loss)
        monitor.step(loss)
        if monitor.check_step(inputs=x, targets=y, loss_fn=F.cross_entropy):
            opt.step()
    assert monitor.verdict().kind == "healthy" and len(monitor.records()) == 4
    monitor.close()


@pytest.mark.slow
def test_overhead_benchmark_smoke(tmp_path):
    import runpy

    out = tmp_path / "result.json"
    argv, sys.argv = sys.argv, ["bench_integrations_overhead.py", "--smoke", "--out", str(out)]
    try:
        runpy.run_path(str(ROOT / "benchmarks" / "bench_integrations_overhead.py"), run_name="__main__")
    finally:
        sys.argv = argv
    result = json.loads(out.read_text())
    assert result["hardware"]["torch"] and result["date"] and "before" in result["load_average_1min"]
    for adapter in ("lightning", "huggingface"):
        r = result["adapters"][adapter]
        assert r["step_s_with"] > 0 and r["step_s_without"] > 0 and len(r["overhead_per_round"]) == 1


def test_schedulers_follow_a_rollbacks_lower_learning_rate():
    """After a rollback (monitor.lr_scale 0.5) schedulers that recompute the lr from base values
    must not undo it: LambdaLR (the HF linear schedule) and OneCycleLR give half the lr."""
    from types import SimpleNamespace

    from resnet_lab.integrations.common import SchedulerFollower

    def schedulers():
        a = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
        b = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        return [torch.optim.lr_scheduler.LambdaLR(a, lambda s: 1 - s / 10),
                torch.optim.lr_scheduler.OneCycleLR(b, max_lr=0.1, total_steps=10)]

    plain, followed = schedulers(), schedulers()
    follower = SchedulerFollower()
    follower.follow(SimpleNamespace(lr_scale=0.5), followed)
    follower.follow(SimpleNamespace(lr_scale=0.5), followed)  # no new rollback: nothing more
    for p, f in zip(plain, followed):
        for _ in range(3):
            p.optimizer.step(), f.optimizer.step(), p.step(), f.step()
        assert f.get_last_lr()[0] == pytest.approx(0.5 * p.get_last_lr()[0])


@pytest.mark.slow
def test_lightning_rollback_puts_back_the_kept_state_lowers_the_lr_and_goes_on(tmp_path):
    from resnet_lab.diagnostics import Rollback

    trainer, module, callback = lightning_run(
        tmp_path, steps=6, fault="layer2.0.conv1", fault_steps={3},
        callback_kwargs={"nonfinite": "rollback", "rollback": Rollback(every=2), "every": 1})
    (event,) = callback.monitor.rollbacks
    assert event["step"] == 3 and event["back_to"] == 2 and "net.layer2.0.conv1" in event["reason"]
    assert trainer.global_step == 6 and trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.025)
    assert all(torch.isfinite(v).all() for v in module.state_dict().values() if v.is_floating_point())


@pytest.mark.slow
def test_huggingface_rollback_puts_back_the_kept_state_and_the_schedule_follows(tmp_path):
    from resnet_lab.diagnostics import Rollback

    trainer, callback = hf_run(tmp_path, steps=6, fault="bert.encoder.layer.1.attention.self.query",
                               fault_steps={3}, nonfinite="rollback", rollback=Rollback(every=2), every=1,
                               lr_scheduler_type="constant")
    (event,) = callback.monitor.rollbacks
    # HF numbers steps from 1: the fault in the 4th step (global_step 3 while it runs) is step 4.
    assert event["step"] == 4 and event["back_to"] == 2 and "layer.1.attention.self.query" in event["reason"]
    assert trainer.state.global_step == 6
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.5e-3)  # the schedule keeps the lower lr
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_rollback_across_processes_is_refused_in_one_line():
    from resnet_lab.errors import UserError
    from resnet_lab.integrations.common import make_monitor

    with pytest.raises(UserError, match="one process"):
        make_monitor(nn.Linear(2, 2), None, 1, {"nonfinite": "rollback"}, print, world_size=2)


@pytest.mark.parametrize("script,out", [("lightning_gradients.py", "logs/digits/version_0"),
                                        ("huggingface_gradients.py", "hf_run")])
def test_the_readme_examples_are_the_committed_scripts_and_they_run(tmp_path, script, out):
    """The README's Lightning and Hugging Face code is `examples/` verbatim, and each prints what the
    README shows: a verdict, then its report's folder and files."""
    source = (ROOT / "examples" / script).read_text()
    assert f"```python\n{source}```" in (ROOT / "README.md").read_text()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[-1].split()[0] == out and "gradient_table.txt" in lines[-1].split()
    assert any(line.startswith("healthy at step ") for line in lines)
    assert (tmp_path / out / "gradient_table.txt").read_text().startswith("depth  group")
