"""Layer groups for models that are not laid out like a ResNet: opened to 8-64 groups, ordered by
execution in the first training forward, or given by the user."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from resnet_lab import create_model
from resnet_lab.diagnostics import GradientMonitor, build_groups
from resnet_lab.errors import UserError


def transformer_classifier(layers: int = 4) -> nn.Module:
    """Post-norm encoder layers: registered self_attn, linear1, linear2, norm1, norm2; run
    self_attn, norm1, linear1, linear2, norm2."""
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
    return nn.Sequential(nn.TransformerEncoder(layer, layers, enable_nested_tensor=False), nn.Flatten(),
                         nn.Linear(32 * 5, 10))


def first_calls(model: nn.Module, names: set[str], forward) -> list[str]:
    """The order in which the named modules first run in one forward pass (a hook trace)."""
    modules = dict(model.named_modules())
    seen: list[str] = []
    hooks = [modules[n].register_forward_pre_hook(lambda m, a, n=n: seen.append(n) if n not in seen else None)
             for n in names]
    forward()
    for h in hooks:
        h.remove()
    return seen


def monitored_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **options) -> GradientMonitor:
    monitor = GradientMonitor(model, **options)
    model.train()
    F.cross_entropy(model(x), y).backward()
    monitor.step()
    return monitor


def test_transformer_gets_groups_per_encoder_layer_in_execution_order():
    model = transformer_classifier()
    x, y = torch.randn(4, 5, 32), torch.randint(0, 10, (4,))
    monitor = monitored_step(model, x, y)
    names = [g.name for g in monitor.groups]
    assert monitor.group_order == "execution"
    for i in range(4):  # every encoder layer has its own groups
        assert any(n.startswith(f"0.layers.{i}.") for n in names)
    trace = first_calls(model, set(names), lambda: model(x))
    assert names == trace  # norm1 right after self_attn, as it runs, not as it is registered
    assert names.index("0.layers.0.norm1") < names.index("0.layers.0.linear1")
    assert [g.depth_index for g in monitor.groups] == list(range(len(names)))
    record = monitor.records()[0]
    assert [g["name"] for g in record["groups"]] == names and all(g["grad_norm"] > 0 for g in record["groups"])


def test_mobilenet_gets_its_blocks_as_groups_in_execution_order():
    model = torchvision.models.mobilenet_v3_small(num_classes=10)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    monitor = monitored_step(model, x, y)
    names = [g.name for g in monitor.groups]
    assert len(names) >= 10 and names[0] == "features.0" and names[-1] == "classifier.3"
    model.eval()  # the trace: same module order, without touching BatchNorm statistics again
    assert names == first_calls(model, set(names), lambda: model(x))


def test_resnets_keep_the_block_layout_in_registration_order():
    model = create_model("resnet8")
    monitor = monitored_step(model, torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,)))
    assert [g.name for g in monitor.groups] == ["stem", "layer1.0", "layer2.0", "layer3.0", "head"]
    assert monitor.group_order == "registration"


def test_user_groups_are_honoured():
    model = transformer_classifier()
    by_depth = [g.name for g in build_groups(model, 3)]
    assert by_depth == [f"0.layers.{i}" for i in range(4)] + ["2"]
    named = {g.name: len(g.param_names) for g in build_groups(model, ["0.layers.0", "0.layers", "2"])}
    assert named == {"0.layers.0": 12, "0.layers": 36, "2": 2}  # the deepest named module claims a parameter
    mapped = {g.name: g.param_names for g in build_groups(model, {r"self_attn": "attention", r"linear": "ffn"})}
    assert list(mapped) == ["attention", "ffn", "(other)"]
    assert all("self_attn" in p for p in mapped["attention"]) and all("norm" in p or p.startswith("2.")
                                                                       for p in mapped["(other)"])
    every = [p for g in build_groups(model, {r"linear": "ffn"}) for p in g.param_names]
    assert sorted(every) == sorted(n for n, _ in model.named_parameters())  # nothing left out


@pytest.mark.parametrize("groups,fragment", [(0, "nesting depth"), (["nope"], "no module named"),
                                             ({"(": "x"}, "regular expression"), ("layers", "groups="),
                                             # once: every parameter in "(other)", exit 0
                                             ({"conv": "convs"}, "no parameter name matches 'conv'"),
                                             ([], "list of module names is empty")])
def test_bad_user_groups_are_one_line(groups, fragment):
    with pytest.raises(UserError, match=fragment):
        build_groups(transformer_classifier(1), groups)


def test_gradients_command_surveys_a_torchvision_model_by_name(capsys):
    import json

    from resnet_lab.cli.main import main

    argv = ["gradients", "--model", "torchvision:mobilenet_v3_small", "--steps", "2", "--batch-size", "8", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["groups"]) >= 10 and result["verdict"] in ("healthy", "vanishing", "exploding")
    assert main([*argv[:-1], "--groups", "1.features,1.classifier"]) == 0  # module names (behind the RGB adapter)
    assert "2 layer groups, in execution order" in capsys.readouterr().out
    assert main([*argv[:-1], "--groups", r"features\.[0-5]\.=early,classifier=head"]) == 0  # REGEX=GROUP pairs
    assert "3 layer groups" in capsys.readouterr().out  # early, head and (other)
    assert main(["gradients", "--model", "torchvision:mobilenet_v3_smal", "--steps", "1"]) == 2
    assert "did you mean mobilenet_v3_small" in capsys.readouterr().err


def sigmoid_everywhere(model: nn.Module) -> nn.Module:
    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, nn.Sigmoid())
        else:
            sigmoid_everywhere(child)
    return model


@pytest.mark.parametrize("build,lr,expected", [
    (lambda: sigmoid_everywhere(torchvision.models.vgg11(num_classes=10)), 0.01, "vanishing"),
    (lambda: torchvision.models.vgg11(num_classes=10), 0.01, "healthy"),
    (lambda: torchvision.models.vgg11_bn(num_classes=10), 0.01, "healthy"),
    (lambda: torchvision.models.vgg11_bn(num_classes=10), 50.0, "exploding"),
], ids=["vgg11-sigmoid", "vgg11", "vgg11_bn", "vgg11_bn-lr50"])
def test_vgg_verdicts_match_the_known_behaviour(build, lr, expected):
    from resnet_lab.diagnostics import run_gradient_check

    torch.manual_seed(0)
    model = build()
    batch = (torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    result = run_gradient_check(model, [batch], steps=6 if expected == "exploding" else 4, lr=lr)
    assert result["verdict"] == expected, result["reason"]
    assert result["group_order"] == "execution" and len(result["groups"]) >= 10


@pytest.mark.parametrize("name,build,shape", [
    ("densenet121", lambda: torchvision.models.densenet121(num_classes=10), (2, 3, 32, 32)),
    ("vit_b_16", lambda: torchvision.models.vit_b_16(image_size=32, num_classes=10), (2, 3, 32, 32)),
    ("convnext_tiny", lambda: torchvision.models.convnext_tiny(num_classes=10), (2, 3, 32, 32)),
])
def test_other_torchvision_models_get_8_to_64_groups_in_execution_order(name, build, shape):
    torch.manual_seed(0)
    model = build()
    x = torch.randn(*shape)
    monitor = monitored_step(model, x, torch.randint(0, 10, (shape[0],)))
    groups = monitor.groups
    assert 8 <= len(groups) <= 64, [g.name for g in groups]
    model.eval()
    trace = first_calls(model, {g.runs_in for g in groups}, lambda: model(x))
    assert [g.runs_in for g in groups] == trace


def test_an_lstm_language_model_reads_embedding_lstm_head():
    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(32, 50)  # registered first, runs last
            self.embed = nn.Embedding(50, 16)
            self.lstm = nn.LSTM(16, 32, num_layers=2, batch_first=True)

        def forward(self, tokens):
            return self.head(self.lstm(self.embed(tokens))[0][:, -1])

    model = LanguageModel()
    tokens = torch.randint(0, 50, (4, 7))
    monitor = monitored_step(model, tokens, torch.randint(0, 50, (4,)))
    assert [g.name for g in monitor.groups] == ["embed", "lstm", "head"]


def test_activation_swaps_every_relu_of_a_torchvision_model_and_other_zoo_options_are_refused(capsys):
    from resnet_lab.cli.main import main
    from resnet_lab.models.foreign import torchvision_model

    model = torchvision_model("mobilenet_v3_small", 10, in_channels=1, image_size=32, activation="tanh")
    kinds = {type(m) for m in model.modules()}
    assert nn.ReLU not in kinds and nn.Tanh in kinds
    assert main(["gradients", "--model", "torchvision:vgg11", "--norm", "none", "--steps", "1"]) == 2
    assert "--norm is a resnet-lab model option" in capsys.readouterr().err


def test_torchvision_models_that_cannot_take_the_data_are_one_line_and_aux_heads_are_off(capsys):
    """alexnet at 32x32 once died mid-check with a traceback; googlenet's training output, a tuple
    with its auxiliary heads, once reached the loss."""
    from resnet_lab.cli.main import main
    from resnet_lab.models.foreign import torchvision_model

    assert main(["gradients", "--model", "torchvision:alexnet", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "torchvision:alexnet cannot run on 32x32 images" in err and err.count("\n") == 1
    googlenet = torchvision_model("googlenet", num_classes=10, image_size=32).train()
    assert googlenet(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("kind", ["float64", "complex64", "sparse embedding"])
def test_float64_complex_and_sparse_gradients_are_measured_not_a_runtime_error(kind):
    """step() once ended in RuntimeError from torch._foreach_norm(dtype=float32) for a model.double(), complex
    weights and nn.Embedding(sparse=True); the norms are now the gradients' (a sparse one with repeated tokens:
    its dense norm, not that of its uncoalesced values), and the skip policy checks and locates there too."""
    torch.manual_seed(0)
    tokens = torch.tensor([1, 1, 1, 2, 5, 5, 7, 1])  # repeated: an uncoalesced sparse gradient
    if kind == "sparse embedding":
        model, inputs = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 3)), tokens
    else:
        dtype = torch.float64 if kind == "float64" else torch.complex64
        model = nn.Sequential(nn.Linear(4, 5, dtype=dtype), nn.Linear(5, 3, dtype=dtype))
        inputs = torch.randn(8, 4).to(dtype)
    monitor = GradientMonitor(model, nonfinite="skip")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    by_hand = []  # per step, per group (a layer)
    for scale in (1.0, 1.0, float("nan")):
        optimizer.zero_grad()
        loss = model(inputs).abs().pow(2).mean() * scale
        loss.backward()
        monitor.step(loss)
        by_hand.append([math.sqrt(sum((p.grad.to_dense() if p.grad.is_sparse else p.grad).abs().double().pow(2).sum()
                                      for p in layer.parameters())) for layer in model])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            took = monitor.check_step(inputs=inputs, loss_fn=lambda out, _, s=scale: out.abs().pow(2).mean() * s)
        if took:
            optimizer.step()
    records = monitor.records()
    for record, norms in zip(records[:2], by_hand):
        assert record["verdict"] == "healthy"
        assert [g["grad_norm"] for g in record["groups"]] == pytest.approx(norms, rel=1e-5)
    assert records[1]["groups"][0]["update_ratio"] > 0
    assert not took and "skipped the optimizer step at step 2: non-finite" in str(caught[0].message)
