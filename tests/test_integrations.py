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
                  optimizer="sgd"):
    """A resnet8 LightningModule on random CIFAR-shaped data, trained ``steps`` optimizer steps."""
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
            loss = F.cross_entropy(self(x), y)
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
        module.net.get_submodule(fault).register_forward_hook(nan_hook)
    module.initial_state = copy.deepcopy(module.state_dict())
    made = {"csv": lambda: CSVLogger(tmp_path, name="csv"), "tb": lambda: TensorBoardLogger(tmp_path, name="tb")}
    callback = GradientMonitorCallback(**(callback_kwargs or {}))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=[made[k]() for k in loggers],
                        callbacks=[callback], log_every_n_steps=1, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on num_workers etc.
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=16))
    return trainer, module, callback


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


def test_lightning_diverging_learning_rate_is_judged(tmp_path):
    _, _, callback = lightning_run(tmp_path, lr=1e4, steps=6, callback_kwargs={"every": 1, "out": tmp_path / "g"})
    kinds = {e.kind for e in callback.monitor.events()}
    assert kinds & {"exploding", "nonfinite"}, kinds
    report = json.loads((tmp_path / "g" / "gradient_report.json").read_text())
    assert {e["kind"] for e in report["events"]} & {"exploding", "nonfinite"}


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


def test_lightning_callback_rejects_bad_arguments():
    pytest.importorskip("lightning")
    from resnet_lab.integrations.lightning import GradientMonitorCallback

    with pytest.raises(UserError, match="every must be an integer"):
        GradientMonitorCallback(every=0)
    with pytest.raises(UserError, match="set by the callback"):
        from resnet_lab.integrations.common import make_monitor

        make_monitor(nn.Linear(2, 2), None, 1, {"jsonl_path": "x"}, print)
