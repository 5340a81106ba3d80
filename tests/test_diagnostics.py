"""Gradient diagnostics: verdicts, NaN/Inf location, policies, cost, outputs.

Each test names the behaviour it protects. Models are small or at initialisation, batches
are 8-16 random CIFAR-sized images, so the file runs in well under a minute on two cores.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from resnet_lab.diagnostics import (
    GradientMonitor, NonFiniteError, build_groups, gradient_table, locate_nonfinite, nonfinite_state,
    read_jsonl, run_gradient_check,
)
from resnet_lab.errors import UserError, shown
from resnet_lab.models import create_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny batches: one thread is as fast, and immune to the 100x slowdown of OpenMP
    threads competing with other processes for the same cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batches(n=3, size=16, classes=10, seed=0, shape=(3, 32, 32)):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, *shape, generator=g), torch.randint(0, classes, (size,), generator=g))
            for _ in range(n)]


def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


class InfInBackward(torch.autograd.Function):
    """Identity forward; the backward pass returns Inf."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return torch.full_like(grad, math.inf)


class TimesNaN(nn.Module):
    """Wraps a module and poisons its output."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * math.nan


class SmallMLP(nn.Module):
    """Not from this package, no ``layerN`` attributes: its containers are opened into groups."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3 * 8 * 8, 32)
        self.act = nn.ReLU()  # no parameters: not a group
        self.body = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))
        self.out = nn.Linear(32, 10)

    def forward(self, x):
        return self.out(self.act(self.body(self.act(self.embed(x.flatten(1))))))


def tanh_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def regression_loss(output, y):  # MSE to one-hot targets of size 10: absurd lr diverges geometrically
    return F.mse_loss(output, F.one_hot(y, 10).float() * 10)


# -- grouping ---------------------------------------------------------------------------

def test_block_groups_follow_resnet_layout_and_other_models_open_their_containers():
    names = [g.name for g in build_groups(resnet18())]
    assert names == ["stem"] + [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)] + ["head"]
    zoo = build_groups(create_model("resnet20"))
    assert [g.name for g in zoo][:2] == ["stem", "layer1.0"] and zoo[-1].name == "head"
    assert [g.depth_index for g in zoo] == list(range(11))
    # Fewer than 8 top-level groups: the Sequential is opened (its layers are the units of depth).
    assert [(g.name, g.depth_index) for g in build_groups(SmallMLP())] == [("embed", 0), ("body.0", 1), ("body.2", 2),
                                                                             ("out", 3)]
    model = resnet18()
    per_param = build_groups(model, "parameter")
    assert [g.name for g in per_param] == [n for n, _ in model.named_parameters()]
    assert {g.name for g in build_groups(model, "module_type")} == {"Conv2d", "BatchNorm2d", "Linear"}
    with pytest.raises(UserError, match="groups="):
        build_groups(model, "layers")


# -- verdicts ---------------------------------------------------------------------------

def test_plain56_sigmoid_without_norm_is_vanishing_and_resnet56_is_healthy_on_the_same_data():
    data = batches(3, size=8)
    torch.manual_seed(0)
    plain = create_model("plain56", activation="sigmoid", norm="none", num_classes=10)
    plain_result = run_gradient_check(plain, data, steps=3, lr=0.0)
    torch.manual_seed(0)
    res_result = run_gradient_check(create_model("resnet56", num_classes=10), data, steps=3, lr=0.0)

    assert plain_result["verdict"] == "vanishing", plain_result["reason"]
    assert "early groups" in plain_result["reason"] and "stem" in plain_result["reason"]
    assert res_result["verdict"] == "healthy", res_result["reason"]
    assert res_result["last_verdict"] == "healthy"
    # The table and group means are what the CLI prints.
    assert [g["name"] for g in res_result["groups"]][:2] == ["stem", "layer1.0"]
    assert "layer3.8" in gradient_table(res_result)


def test_absurd_learning_rate_is_exploding_within_a_few_steps_and_clipping_keeps_it_healthy():
    data = batches(4, size=32, shape=(32,), seed=1)
    wild = run_gradient_check(tanh_mlp(), data, steps=12, lr=3.0, momentum=0.0, loss_fn=regression_loss)
    assert wild["verdict"] == "exploding", wild["reason"]
    assert wild["verdict_step"] <= 5
    clipped = run_gradient_check(tanh_mlp(), data, steps=12, lr=3.0, momentum=0.0, loss_fn=regression_loss,
                                 clip_norm=1.0)
    assert clipped["verdict"] == "healthy", clipped["reason"]
    assert clipped["events"] == [] and clipped["steps_run"] == 12


def test_huge_init_scale_is_exploding():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10)
    result = run_gradient_check(model, batches(4, size=32, shape=(32,), seed=1), steps=4, lr=0.01,
                                momentum=0.0, loss_fn=regression_loss)
    assert result["verdict"] == "exploding", result["reason"]
    assert result["verdict_step"] <= 2 and "explode_norm" in result["reason"]


def test_every_n_records_only_those_steps_but_still_guards_the_others():
    model = SmallMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, every=2, nonfinite="skip")
    data = batches(4, shape=(3, 8, 8))
    data[3][0][0] = math.nan  # step 3 is not recorded, but must still be skipped
    stepped = []
    for x, y in data:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            stepped.append(monitor.guarded_step(opt, loss))
    assert [r["step"] for r in monitor.records()] == [0, 2]
    assert stepped == [True, True, True, False]
    assert nonfinite_state(model, opt) == []


def test_on_verdict_callback_sees_every_recorded_step():
    seen = []
    model = SmallMLP()
    monitor = GradientMonitor(model, on_verdict=lambda v, record: seen.append((v.kind, record["step"])))
    for x, y in batches(3, shape=(3, 8, 8)):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        monitor.step()
    monitor.flush()
    assert seen == [("healthy", 0), ("healthy", 1), ("healthy", 2)]


# -- locating NaN / Inf -----------------------------------------------------------------

def test_nan_injected_in_forward_of_one_block_is_located_to_that_block():
    model = resnet18()
    model.layer2[1].register_forward_hook(lambda module, args, out: out * math.nan)
    x, y = batches(1, size=4)[0]
    report = locate_nonfinite(model, x, y, F.cross_entropy, step=5)
    assert (report.module_name, report.phase, report.step) == ("layer2.1", "forward", 5)
    assert report.stats["nan_count"] == report.stats["numel"] == 4 * 128 * 4 * 4
    assert report.stats["shape"] == [4, 128, 4, 4]
    assert "layer2.1" in str(report)


def test_nan_made_inside_a_submodule_is_located_to_the_innermost_module():
    model = create_model("resnet20")
    model.layer2[1].bn2 = TimesNaN(model.layer2[1].bn2)
    x, y = batches(1, size=4)[0]
    report = locate_nonfinite(model, x, y, F.cross_entropy)
    assert (report.module_name, report.phase, report.module_type) == ("layer2.1.bn2", "forward", "TimesNaN")


def test_inf_produced_only_in_backward_is_located_with_phase_backward():
    model = resnet18()
    model.layer3[0].register_forward_hook(lambda module, args, out: InfInBackward.apply(out))
    x, y = batches(1, size=4)[0]
    assert torch.isfinite(F.cross_entropy(model(x), y))  # the forward pass is clean
    report = locate_nonfinite(model, x, y, F.cross_entropy)
    assert (report.module_name, report.phase) == ("layer3.0", "backward")
    assert report.tensor.startswith("grad_input")


def test_locating_has_no_side_effects_on_buffers_grads_or_hooks():
    model = resnet18()
    model.layer2[1].register_forward_hook(lambda module, args, out: out * math.nan)
    x, y = batches(1, size=4)[0]
    F.cross_entropy(model(x), y).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    locate_nonfinite(model, x, y, F.cross_entropy)
    assert all(p.grad is grads[n] for n, p in model.named_parameters())
    assert all(torch.equal(v, state[k]) or (torch.isnan(v).all() and torch.isnan(state[k]).all())
               for k, v in model.state_dict().items())
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 1


def test_monitor_locates_the_nan_of_a_failing_step_in_a_training_loop():
    model = resnet18()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = GradientMonitor(model, nonfinite="skip")
    data = batches(2, size=4)
    for i, (x, y) in enumerate(data):
        if i == 1:
            model.layer4[0].register_forward_hook(lambda module, args, out: out * math.nan)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with pytest.warns(RuntimeWarning, match="skipped") if i == 1 else _nothing():
            stepped = monitor.guarded_step(opt, loss, inputs=x, targets=y, loss_fn=F.cross_entropy)
        assert stepped == (i == 0)
    assert monitor.verdict().kind == "nonfinite"
    assert (monitor.last_report.module_name, monitor.last_report.step) == ("layer4.0", 1)
    assert monitor.skipped_steps == [1]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- policies ---------------------------------------------------------------------------

def _trained_state(model, opt):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(opt.state.values())})


def test_skip_policy_leaves_weights_buffers_and_optimizer_state_bit_identical():
    torch.manual_seed(0)
    model = create_model("resnet8")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    monitor = GradientMonitor(model, nonfinite="skip")
    (x, y), (x2, y2) = batches(2, size=8)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    assert monitor.guarded_step(opt, loss)  # a good step, so the momentum buffers exist
    before_model, before_opt = _trained_state(model, opt)

    x2[0, 0, 0, 0] = math.nan  # the NaN poisons BatchNorm running stats in this forward too
    opt.zero_grad()
    loss = F.cross_entropy(model(x2), y2)
    loss.backward()
    with pytest.warns(RuntimeWarning, match="skipped the optimizer step at step 1"):
        assert not monitor.guarded_step(opt, loss)
    after_model, after_opt = _trained_state(model, opt)
    assert after_model.keys() == before_model.keys()
    assert all(torch.equal(after_model[k], before_model[k]) for k in before_model)
    assert all(torch.equal(after_opt[i][k], before_opt[i][k]) for i in before_opt for k in before_opt[i])
    assert all(p.grad is None for p in model.parameters())


def test_stop_policy_raises_before_the_step_and_writes_a_report(tmp_path):
    model = SmallMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model, nonfinite="stop", report_path=tmp_path / "nonfinite.json")
    (x0, y0), (x, y) = batches(2, shape=(3, 8, 8))
    F.cross_entropy(model(x0), y0).backward()
    monitor.step()
    assert monitor.check_step()  # finite: the trainer may step (here it does not)
    model.zero_grad()
    x[3] = math.inf
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with pytest.raises(NonFiniteError, match="step 1") as info:
        monitor.guarded_step(opt, loss, inputs=x, targets=y, loss_fn=F.cross_entropy)
    assert info.value.exit_code != 0 and info.value.report.module_name == "<input>"
    assert nonfinite_state(model, opt) == []  # the checkpoint the trainer saves now is clean
    report = json.loads((tmp_path / "nonfinite.json").read_text())
    assert report["verdict"]["kind"] == "nonfinite"
    assert report["nonfinite_location"]["module_name"] == "<input>"


def test_warn_policy_steps_anyway_and_nonfinite_state_guards_the_checkpoint():
    model = SmallMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = GradientMonitor(model)  # "warn"
    x, y = batches(1, shape=(3, 8, 8))[0]
    x[0] = math.nan
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    with pytest.warns(RuntimeWarning, match="nonfinite"):
        assert monitor.guarded_step(opt, loss)
    assert "embed.weight" in nonfinite_state(model, opt)


# -- cost -------------------------------------------------------------------------------

def _host_reads(monkeypatch, model, steps=3):
    """Count host read-backs (item/tolist/cpu/numpy/bool/float) during monitor.step()."""
    monitor = GradientMonitor(model)
    data = batches(steps, size=4, shape=(3, 8, 8))
    counts = {"n": 0}
    names = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")
    originals = {n: getattr(torch.Tensor, n) for n in names}

    def counting(name):
        def wrapper(self, *args, **kwargs):
            counts["n"] += 1
            return originals[name](self, *args, **kwargs)
        return wrapper

    for x, y in data:
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with monkeypatch.context() as m:
            for n in names:
                m.setattr(torch.Tensor, n, counting(n))
            m.setattr(torch.cuda, "synchronize", lambda *a, **k: pytest.fail("step() synchronised"))
            monitor.step(loss)
    assert len(monitor.records()) == steps
    return counts["n"] / steps, sum(1 for _ in model.parameters())


def test_step_reads_back_a_constant_number_of_values_not_one_per_parameter(monkeypatch):
    small = nn.Sequential(nn.Flatten(), nn.Linear(192, 10))
    deep = nn.Sequential(nn.Flatten(), nn.Linear(192, 16), *[nn.Linear(16, 16) for _ in range(20)],
                         nn.Linear(16, 10))
    small_reads, small_params = _host_reads(monkeypatch, small)
    deep_reads, deep_params = _host_reads(monkeypatch, deep)
    assert deep_params > 10 * small_params
    # On the CPU the record is read back at once (there is nothing to wait for); it is one
    # tensor, so the count does not grow with the parameters.
    assert deep_reads == small_reads <= 2


def test_update_ratio_is_the_exact_relative_weight_change():
    model = SmallMLP()
    lr = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # plain SGD: update = lr * grad
    monitor = GradientMonitor(model)
    for x, y in batches(2, shape=(3, 8, 8)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        monitor.step()
        opt.step()
    first, second = monitor.records()
    assert all(g["update_ratio"] is None for g in first["groups"])
    for g0, g1 in zip(first["groups"], second["groups"]):
        assert g1["update_ratio"] == pytest.approx(lr * g0["grad_norm"] / g0["weight_norm"], rel=1e-4)


def test_a_group_of_zero_weights_has_no_update_ratio_rather_than_a_huge_one():
    """A zero-initialised bias as its own group once showed update/weight 4e+27."""
    model = SmallMLP()
    biases = [n for n, _ in model.named_parameters() if n.endswith("bias")]
    with torch.no_grad():
        model.get_parameter(biases[0]).zero_()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = GradientMonitor(model, groups="parameter")
    for x, y in batches(3, shape=(3, 8, 8)):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        monitor.step()
        opt.step()
    second, third = monitor.records()[1:]
    assert next(g for g in second["groups"] if g["name"] == biases[0])["update_ratio"] is None  # from zero
    assert next(g for g in third["groups"] if g["name"] == biases[0])["update_ratio"] > 0  # from its new value


# -- a hand-written loop, outputs -------------------------------------------------------

def test_plain_loop_with_a_custom_model_records_every_step_with_activations(tmp_path):
    model = SmallMLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    monitor = GradientMonitor(model, groups=["embed", "body", "out"], track_activations=True,  # named groups
                              jsonl_path=tmp_path / "g.jsonl", tb_writer=tmp_path / "tb", histogram_every=2)
    for x, y in batches(4, shape=(3, 8, 8)):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        monitor.step(loss)
        opt.step()
    monitor.close()
    records = monitor.records()
    assert [r["step"] for r in records] == [0, 1, 2, 3]
    assert [g["name"] for g in records[0]["groups"]] == ["embed", "body", "out"]
    assert all(r["verdict"] == "healthy" and r["global_grad_norm"] > 0 for r in records)
    acts = records[-1]["activations"]
    assert [a["name"] for a in acts] == ["embed", "body", "out"]
    assert all(0 <= a["dead_fraction"] <= 1 and a["std"] > 0 for a in acts)

    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    parsed = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")) for line in lines]
    assert [p["step"] for p in parsed] == [0, 1, 2, 3]
    assert read_jsonl(tmp_path / "g.jsonl")[2]["groups"][1]["grad_norm"] == pytest.approx(
        records[2]["groups"][1]["grad_norm"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1  # one run, not one sub-run per depth
    acc = EventAccumulator(str(events[0]), size_guidance={"histograms": 0}).Reload()
    assert {"grad_norm/00.embed", "grad_norm/02.out", "global/loss"} <= set(acc.Tags()["scalars"])
    assert len(acc.Scalars("grad_norm/01.body")) == 4
    assert "custom_scalars__config__" in acc.Tags()["tensors"]  # the one-chart-per-quantity layout
    assert {"grad_hist/00.embed"} <= set(acc.Tags()["histograms"])
    assert len(acc.Histograms("grad_hist/00.embed")) == 2  # steps 0 and 2 only


def test_dead_units_are_counted():
    model = SmallMLP()
    with torch.no_grad():
        model.body[2].bias.fill_(-1e3)  # every unit of body's output is negative: all dead
    monitor = GradientMonitor(model, groups=["embed", "body", "out"], track_activations=True)
    x, y = batches(1, shape=(3, 8, 8))[0]
    F.cross_entropy(model(x), y).backward()
    monitor.step()
    acts = {a["name"]: a for a in monitor.records()[0]["activations"]}
    assert acts["body"]["dead_fraction"] == 1.0 and acts["embed"]["dead_fraction"] < 1.0


def test_plots_write_nonempty_png_and_svg(tmp_path):
    from resnet_lab.diagnostics import plot_gradient_flow, plot_heatmap, plot_loss

    data = batches(2, size=4, shape=(32,), seed=1)
    wild = run_gradient_check(tanh_mlp(), data, steps=8, lr=3.0, momentum=0.0, loss_fn=regression_loss)
    calm = run_gradient_check(tanh_mlp(), data, steps=8, lr=0.01, momentum=0.0, loss_fn=regression_loss)
    written = plot_gradient_flow({"plain (lr 3)": wild, "residual (lr 0.01)": calm["records"]}, tmp_path / "flow")
    written += plot_heatmap(wild["records"], tmp_path / "heat")
    written += plot_loss(wild["records"], None, tmp_path / "loss")
    written += plot_gradient_flow([(0, 1.0), (1, 0.1), (2, 1e-3)], tmp_path / "pairs.png")
    assert sorted(p.name for p in written) == ["flow.png", "flow.svg", "heat.png", "heat.svg",
                                               "loss.png", "loss.svg", "pairs.png"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "loss.svg").read_text().lstrip().startswith("<?xml")


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="nonfinite="):
        GradientMonitor(SmallMLP(), nonfinite="ignore")
    with pytest.raises(UserError, match="histogram_every needs tb_writer"):
        GradientMonitor(SmallMLP(), histogram_every=10)
    with pytest.raises(UserError, match=r"^the model to monitor is an nn.Module, got str 'resnet8'; build it first"):
        GradientMonitor("resnet8")  # was an AttributeError: 'str' object has no attribute 'parameters'
    with pytest.raises(UserError, match=r"^explode_norm must be a number or None \(off\), got '1e3'$"):
        GradientMonitor(SmallMLP(), explode_norm="1e3")  # from a config file: was a bare TypeError
    with pytest.raises(UserError, match=r"^vanish_ratio must be a number, got True$"):
        GradientMonitor(SmallMLP(), vanish_ratio=True)
    # warn acts on records: with none, a NaN run went on without a word (check_step True, verdict "healthy")
    with pytest.raises(UserError, match=r"^every=0 records nothing, and nonfinite='warn' warns only from records"):
        GradientMonitor(SmallMLP(), every=0)
    GradientMonitor(SmallMLP(), every=0, nonfinite="skip")  # the policy alone, checked every step
    with torch.device("meta"):  # was taken, then the first record read back was a NotImplementedError
        on_meta = SmallMLP()
    with pytest.raises(UserError, match=r"^the model's parameters are on the meta device .*\(model\.to_empty\("):
        GradientMonitor(on_meta)
    monitor = GradientMonitor(SmallMLP())
    with pytest.raises(UserError, match="after loss.backward"):
        monitor.step()


def test_monitor_takes_numpy_integers_as_the_counts_they_hold():
    """every=np.int64(2) was refused with "every must be an integer >= 0, got np.int64(2)" (and so were a
    numpy vanish_patience and a numpy nesting depth for groups=), though a notebook computes them that way."""
    import numpy as np

    model = SmallMLP()
    monitor = GradientMonitor(model, every=np.int64(2), vanish_patience=np.int64(3), groups=np.int64(1))
    for x, y in batches(3, shape=(3, 8, 8)):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        monitor.step()
    assert [r["step"] for r in monitor.records()] == [0, 2]
    assert monitor.every == 2 and type(monitor.every) is int


def test_overhead_benchmark_smoke_run_writes_its_json(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_monitor_overhead.py"), "--smoke",
                    "--threads", "1", "--out", str(out)], check=True, capture_output=True, timeout=120)
    result = json.loads(out.read_text())
    assert {"hardware", "median_step_s", "overhead", "model", "device", "within_target"} <= set(result)
    assert {"platform", "cpu", "torch"} <= set(result["hardware"])
    assert set(result["median_step_s"]) == {"baseline", "monitor", "monitor_activations", "naive_item"}
    assert set(result["overhead"]) == {"monitor", "monitor_activations", "naive_item"}


def test_overhead_benchmark_takes_a_torchvision_model_and_records_its_groups(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_monitor_overhead.py"), "--smoke", "--threads", "1",
                    "--model", "torchvision:mobilenet_v3_small", "--out", str(out)], check=True, capture_output=True,
                   timeout=120)
    result = json.loads(out.read_text())
    assert result["model"] == "torchvision:mobilenet_v3_small" and result["groups"] >= 10


def test_gradient_flow_of_all_zero_gradients_draws_a_note_without_warnings(tmp_path):
    """A single-class data set has zero loss and zero gradients: the plot says so, silently."""
    import warnings

    from resnet_lab.diagnostics.plots import plot_gradient_flow

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = plot_gradient_flow({"run": [(0, 0.0), (1, 0.0)]}, tmp_path / "flow", formats=["svg"])
    assert "no non-zero gradient norm to plot" in paths[0].read_text()


def test_read_jsonl_ignores_a_torn_last_line_but_not_a_damaged_middle_one(tmp_path):
    from resnet_lab.diagnostics.records import read_jsonl, trim_jsonl

    path = tmp_path / "gradients.jsonl"
    path.write_text('{"step": 0, "loss": "nan"}\n{"step": 1}\n{"step": 2, "lo')  # killed mid-write
    assert [r["step"] for r in read_jsonl(path)] == [0, 1]
    assert math.isnan(read_jsonl(path)[0]["loss"])
    trim_jsonl(path, lambda r: r["step"] < 1)  # what resume keeps: the steps before its checkpoint
    assert path.read_text() == '{"step": 0, "loss": "nan"}\n'
    path.write_text('{"step": 0}\n{"st\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


def test_check_model_is_the_gradients_command_as_a_function(capsys):
    """The CLI is a thin layer: `resnet-lab gradients` prints what check_model returns."""
    from resnet_lab.cli.main import main
    from resnet_lab.diagnostics import check_model

    result = check_model("plain8", activation="sigmoid", norm="none", steps=2, batch_size=16)
    assert result["model"] == "plain8" and result["data"].startswith("digits:")
    assert main(["gradients", "--model", "plain8", "--activation", "sigmoid", "--norm", "none", "--steps", "2",
                 "--batch-size", "16", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == result["verdict"] and printed["global_grad_norm"] == result["global_grad_norm"]


def test_check_model_does_not_reseed_the_callers_random_numbers():
    from resnet_lab.diagnostics import check_model

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_model("resnet8", steps=1, batch_size=16)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("model,keywords,message", [
    (["resnet8"], {}, r"model is one model name such as 'resnet20', got \['resnet8'\]; check one model per call"),
    (None, {}, "model is one model name such as 'resnet20', got None"),
    ("resnet8", {"lr": "0.1"}, "--lr must be a positive number, got '0.1'"),
    ("resnet8", {"seed": 0.5}, "--seed must be an integer, got 0.5"),
])
def test_check_model_given_a_value_of_the_wrong_kind_is_one_line(model, keywords, message):
    """A list of names or None was an AttributeError ('list' object has no attribute 'startswith'), lr="0.1"
    and seed=0.5 TypeErrors from inside math and numpy."""
    from resnet_lab.diagnostics import check_model

    with pytest.raises(UserError, match="^" + message):
        check_model(model, steps=1, batch_size=16, **keywords)


def test_check_model_takes_numpy_numbers_as_the_numbers_they_hold():
    import numpy as np

    from resnet_lab.diagnostics import check_model

    numpy_given = check_model("resnet8", steps=np.int64(1), batch_size=np.int64(16), seed=np.int64(2),
                              clip_norm=np.float32(1.0), lr=np.float32(0.5))
    plain = check_model("resnet8", steps=1, batch_size=16, seed=2, clip_norm=1.0, lr=float(np.float32(0.5)))
    json.dumps(numpy_given)
    assert numpy_given["global_grad_norm"] == plain["global_grad_norm"]


def _monitored_steps(model, monitor, steps=1):
    for x, y in batches(steps, shape=(3, 8, 8)):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        monitor.step(loss)


@pytest.mark.parametrize("change, named", [
    (lambda m: m.body.append(nn.Linear(32, 32)), r"added or re-assigned: body\.3\.weight, body\.3\.bias\)"),
    (lambda m: setattr(m.out, "weight", nn.Parameter(torch.zeros(10, 32))), r"added or re-assigned: out\.weight\)"),
    (lambda m: delattr(m.body, "2"), r"no longer in the model: body\.2\.weight, body\.2\.bias\)"),
], ids=["layer added", "parameter re-assigned", "layer removed"])
def test_a_model_whose_parameters_change_is_grouped_again_and_warned_of_once(change, named):
    """A layer added or a parameter re-assigned after GradientMonitor(model) was left out of every norm (or read
    as the old tensor): the global gradient norm of a model grown by a layer was half the true one. The groups are
    now built again at the next step(), the norms are the model's as it is, and a warning says so once (an
    optimizer made before the change does not hold the new tensors); changes that keep the parameters
    (model.to(dtype), freezing, another model built) go on with no warning."""
    model = SmallMLP()
    monitor = GradientMonitor(model)
    _monitored_steps(model, monitor)
    change(model)
    if isinstance(model.body, nn.Sequential) and len(model.body) == 2:  # removed: keep the model callable
        model.body.append(nn.Identity())
    with pytest.warns(RuntimeWarning, match=rf"^GradientMonitor: the model's parameters changed at step 1 "
                                            rf"\({named}; its groups are built again from here on"):
        _monitored_steps(model, monitor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # told once: the next steps say nothing more
        _monitored_steps(model, monitor, steps=2)
    by_hand = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters() if p.grad is not None))
    last = monitor.records()[-1]
    assert last["global_grad_norm"] == pytest.approx(by_hand, rel=1e-6)
    assert [g["name"] for g in last["groups"]] == [n for n, c in model.named_modules()
                                                   if n and next(c.parameters(recurse=False), None) is not None]

    model = SmallMLP()
    monitor = GradientMonitor(model)
    _monitored_steps(model, monitor)
    SmallMLP()  # registers parameters elsewhere: looked at, nothing changed here
    model.body[2].requires_grad_(False)
    model.to(torch.float64)
    model.zero_grad()
    F.cross_entropy(model(torch.randn(4, 3, 8, 8, dtype=torch.float64)), torch.tensor([0, 1, 2, 3])).backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monitor.step()
    by_hand = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters() if p.grad is not None))
    assert monitor.records()[-1]["global_grad_norm"] == pytest.approx(by_hand, rel=1e-9)


def test_a_grouping_that_no_longer_fits_the_changed_model_keeps_training_with_new_parameters_in_other():
    """Building the groups again after a change must not end the training: a regex grouping whose layer was
    replaced by a layer of another name no longer matches (a refusal when the monitor is made). The warning says
    so, the new parameters go to '(other)', and the norms stay the model's."""
    model = SmallMLP()
    monitor = GradientMonitor(model, groups={r"^embed\.": "input", r"^body\.": "body", r"^out\.": "output"})
    _monitored_steps(model, monitor)
    del model.out
    model.classifier = nn.Linear(32, 10)
    model.out = model.classifier  # the same module under both names: named_parameters() says classifier.*
    with pytest.warns(RuntimeWarning, match=r"its groups could not be built again \(groups: no parameter name "
                                            r"matches '\^out.*\), so new parameters go to '\(other\)'"):
        _monitored_steps(model, monitor, steps=2)
    last = monitor.records()[-1]
    assert [g["name"] for g in last["groups"]] == ["input", "body", "(other)"]
    by_hand = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    assert last["global_grad_norm"] == pytest.approx(by_hand, rel=1e-6)


def test_a_layer_unfrozen_during_training_joins_the_records_and_the_nan_checks_under_its_depth():
    """A fine-tuning schedule (Lightning's BackboneFinetuning) unfreezes the backbone after some epochs. The
    monitor built its groups from the trainable head only, so the backbone's gradient flow, the view a fine-tuner
    wants, never appeared, and the skip policy checked only the head's gradients: a NaN gradient in the unfrozen
    backbone went into its weights. Groups are now cut from the whole network: the unfrozen layer joins the records
    at the next step, under the depth index it has in the network (the head keeps its own), and its gradients are
    checked; the records made before keep their groups."""
    model = SmallMLP()
    model.embed.requires_grad_(False)
    model.body.requires_grad_(False)
    monitor = GradientMonitor(model, nonfinite="skip")
    _monitored_steps(model, monitor)
    before = monitor.records()[-1]["groups"]
    assert [(g["name"], g["depth_index"]) for g in before] == [("out", 3)]

    model.body.requires_grad_(True)
    model.embed.requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unfreezing schedule is normal use: nothing to warn of
        _monitored_steps(model, monitor)
    after = monitor.records()
    assert [(g["name"], g["depth_index"]) for g in after[-1]["groups"]] == [
        ("embed", 0), ("body.0", 1), ("body.2", 2), ("out", 3)]
    assert after[0]["groups"] == before  # the earlier record is decoded with its own groups
    embed_norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.embed.parameters()))
    assert after[-1]["groups"][0]["grad_norm"] == pytest.approx(embed_norm, rel=1e-5)

    weights = model.embed.weight.detach().clone()
    x, y = next(iter(batches(1, shape=(3, 8, 8))))
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    model.embed.weight.grad[0, 0] = float("nan")
    monitor.step()
    with pytest.warns(RuntimeWarning, match="skipped"):
        assert not monitor.check_step()
    assert torch.equal(model.embed.weight, weights)


def test_closing_twice_is_harmless_and_a_step_after_close_is_refused_in_one_line(tmp_path):
    """A second close() (an explicit one, then the with-block's) ended in ValueError: I/O operation on closed
    file, and so did a step() after close() (its record written to the closed JSONL file). close() now runs once;
    records, verdict and report stay readable after it; step() and check_step() after it are one UserError."""
    model = SmallMLP()
    with GradientMonitor(model, nonfinite="skip", jsonl_path=tmp_path / "gradients.jsonl") as monitor:
        _monitored_steps(model, monitor, steps=2)
        monitor.close()
    monitor.close()
    assert len(read_jsonl(tmp_path / "gradients.jsonl")) == 2 and len(monitor.records()) == 2
    assert monitor.verdict().kind == "healthy" and monitor.write_report(tmp_path / "report.json").exists()
    for call in (lambda: _monitored_steps(model, monitor), monitor.check_step):
        with pytest.raises(UserError, match=r"^monitor\.(step|check_step)\(\) after monitor\.close\(\): .* "
                                            r"create a new GradientMonitor"):
            call()
    assert len(read_jsonl(tmp_path / "gradients.jsonl")) == 2


def test_step_numbers_are_integers_from_zero_and_going_back_is_warned_once():
    """step='x' ended in a bare ValueError from int(), step=2.7 was recorded as step 2 and step=-1 as step -1;
    they are one UserError now (a numpy, tensor or integral float number is taken). Numbers that go back or repeat
    (a batch index restarting each epoch) were taken without a word: records of different steps shared numbers."""
    import numpy as np

    model = SmallMLP()
    monitor = GradientMonitor(model)
    x, y = batches(1, shape=(3, 8, 8))[0]
    F.cross_entropy(model(x), y).backward()
    for bad in ("x", 2.7, -1, True, torch.tensor([1, 2])):
        with pytest.raises(UserError, match=r"^monitor\.step\(step=\.\.\.\) takes the step number, an integer >= 0, "
                                            rf"got {re.escape(shown(bad))}$"):
            monitor.step(step=bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for number in (np.int64(3), torch.tensor(4), 5.0, 0, 1, 1):
            monitor.step(step=number)
    assert [r["step"] for r in monitor.records()] == [3, 4, 5, 0, 1, 1]
    assert all(type(r["step"]) is int for r in monitor.records())
    assert [str(w.message) for w in caught] == [
        "GradientMonitor: step=0 follows step 5: records of different steps now share numbers (a batch index that "
        "restarts each epoch, or step() called twice for one step?); pass a number that grows, or leave step= out"]
