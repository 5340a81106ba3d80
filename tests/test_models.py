"""The model zoo: the facts it must match (paper, torchvision) and every switch it exposes."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import resnet_lab
from resnet_lab.errors import UserError
from resnet_lab.models import (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut,
                               cifar_resnet, count_flops, count_params, count_weighted_layers, create_model,
                               get_spec, list_models, preact_resnet)

TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                      "resnet101": 44_549_160, "resnet152": 60_192_808}
# He et al. 2015, Table 6 (millions of parameters, as printed).
PAPER_CIFAR_PARAMS_M = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85,
                        "resnet110": 1.7, "resnet1202": 19.4}


def meta_model(name, **kw):
    with torch.device("meta"):
        return create_model(name, **kw)


@pytest.mark.parametrize("name,expected", TORCHVISION_PARAMS.items())
def test_imagenet_param_counts_equal_torchvision(name, expected):
    assert count_params(meta_model(name)) == expected


@pytest.mark.parametrize("name,millions", PAPER_CIFAR_PARAMS_M.items())
def test_cifar_param_counts_match_the_paper(name, millions):
    digits = 1 if millions >= 1 else 2
    assert round(count_params(meta_model(name)) / 1e6, digits) == millions


@pytest.mark.parametrize("name", list_models() + ["resnet8", "plain200", "cifar_resnet50", "preact_resnet56",
                                                  "preact_resnet290"])
def test_weighted_layers_equal_the_depth_in_the_name(name):
    depth = int("".join(c for c in name.split("_")[-1] if c.isdigit()))
    assert count_weighted_layers(meta_model(name)) == depth


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_twin_has_exactly_the_resnet_param_count_with_option_a(depth):
    assert count_params(meta_model(f"plain{depth}")) == count_params(meta_model(f"resnet{depth}"))


def test_plain_twin_has_no_shortcut_and_computes_something_else():
    torch.manual_seed(0)
    res, plain = create_model("resnet20").eval(), create_model("plain20").eval()
    plain.load_state_dict(res.state_dict())  # same layers, same names
    assert all(not b.residual and b.downsample is None for b in plain.blocks())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(res(x), plain(x))


@pytest.mark.parametrize("name, twin", [("plain20", "resnet20"), ("plain18", "resnet18")])
def test_a_plain_name_with_shortcuts_is_refused_not_a_resnet_under_its_name(name, twin):
    """`--model plain20 --shortcut B` built resnet20 with B shortcuts and called it plain20 (a sweep's
    common --shortcut reached its plain nets too): the comparison it was meant for silently lost."""
    with pytest.raises(UserError, match=f"{name} is a plain net .* use {twin} for shortcuts"):
        create_model(name, shortcut="B")
    assert all(not b.residual for b in create_model(name, shortcut="none").blocks())


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)().eval()
    ours = create_model(name).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - theirs(x)).abs().max().item() <= 1e-5
    # and back: torchvision loads our state dict
    theirs.load_state_dict(create_model(name).state_dict(), strict=True)


def test_weights_argument_loads_a_local_pth_and_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    source = torchvision.models.resnet18().state_dict()
    torch.save(source, tmp_path / "r18.pth")
    save_file({k: v.contiguous() for k, v in source.items()}, str(tmp_path / "r18.safetensors"))
    for file in ("r18.pth", "r18.safetensors"):
        model = create_model("resnet18", weights=tmp_path / file)
        assert torch.equal(model.conv1.weight, source["conv1.weight"])
        assert torch.equal(model.layer4[1].bn2.running_var, source["layer4.1.bn2.running_var"])


def test_weights_reads_an_export_whose_safetensors_suffix_is_in_capitals(tmp_path, capsys):
    """`export --out M.SAFETENSORS` writes safetensors (its suffix is read in any case), but weights= took
    that file for a torch pickle and refused it as damaged."""
    from resnet_lab.cli.main import main

    source = create_model("resnet8", num_classes=10, in_channels=1)
    torch.save({"model": source.state_dict(), "config": {"model": "resnet8"}, "data_info": {
        "classes": [str(i) for i in range(10)], "in_channels": 1, "image_size": 32, "mean": [0.5], "std": [0.25]}},
        tmp_path / "last.pt")
    assert main(["export", "--checkpoint", str(tmp_path / "last.pt"), "--out", str(tmp_path / "M.SAFETENSORS")]) == 0
    model = create_model("resnet8", num_classes=10, in_channels=1, weights=tmp_path / "M.SAFETENSORS")
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_weights_that_do_not_fit_are_refused_with_a_clear_message(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18_10.pth")
    with pytest.raises(UserError, match="num_classes"):
        create_model("resnet18", weights=tmp_path / "r18_10.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read weights"):
        create_model("resnet18", weights=tmp_path / "junk.pth")
    with pytest.raises(UserError, match="weights do not match resnet20"):  # a local file: any model, strictly
        create_model("resnet20", weights=tmp_path / "r18_10.pth")
    with pytest.raises(UserError, match="named weights .* torchvision's ResNet-18/34/50/101/152 only"):
        create_model("resnet20", weights="IMAGENET1K_V1")


def test_weights_that_do_not_fit_say_in_a_few_names_what_differs_and_the_likely_fix(tmp_path):
    """The refusal quoted torch's whole key list (thousands of characters) and always blamed num_classes."""
    source = torchvision.models.resnet18(num_classes=10).state_dict()
    torch.save({f"module.{k}": v for k, v in source.items()}, tmp_path / "ddp.pth")
    torch.save(source, tmp_path / "r18_10.pth")
    cases = [("ddp.pth", {"num_classes": 10}, "the file's names start with 'module.'"),
             ("r18_10.pth", {}, "pass num_classes=10"),
             ("r18_10.pth", {"num_classes": 10, "in_channels": 1}, "takes 3 input channels: pass in_channels=3"),
             ("r18_10.pth", {"num_classes": 10, "shortcut": "C"}, "another architecture, or the same with other "
                                                                   "options")]
    for file, options, fix in cases:
        with pytest.raises(UserError) as caught:
            create_model("resnet18", weights=tmp_path / file, **options)
        message = str(caught.value)
        assert fix in message and len(message) < 400 and "num_classes" not in message.replace(fix, ""), message


def test_weights_naming_a_folder_say_it_is_a_folder_not_that_it_does_not_exist(tmp_path):
    with pytest.raises(UserError, match="is a folder; give the .pth/.safetensors file in it"):
        create_model("resnet18", weights=tmp_path)


def test_flops_come_from_torch_flop_counter_and_match_published_macs():
    # torchvision publishes 4.09 GFLOPS for ResNet-50 counted as multiply-adds; we count 2 per MAC.
    assert count_flops(meta_model("resnet50"), 224) / 2e9 == pytest.approx(4.09, rel=0.01)
    assert count_flops(meta_model("resnet18"), 224) / 2e9 == pytest.approx(1.81, rel=0.01)


@pytest.mark.parametrize("name,kw", [("resnet110", {}), ("resnet56", {"shortcut": "A"}), ("preact_resnet164", {}),
                                     ("resnet50", {"shortcut": "C"})])
def test_counting_each_distinct_block_once_equals_counting_the_whole_forward(name, kw):
    from torch.utils.flop_counter import FlopCounterMode

    model = meta_model(name, **kw).eval()
    size = model.spec.input_size
    with torch.no_grad(), FlopCounterMode(display=False) as whole:
        model(torch.zeros(1, 3, size, size, device="meta"))
    assert count_flops(model, size) == whole.get_total_flops()
    assert count_flops(model, 40) > count_flops(model, 32)  # the block memo is per input shape


def test_bottleneck_puts_the_stride_on_the_3x3_conv_and_expands_by_4():
    block = Bottleneck(64, 64, stride=2)
    assert Bottleneck.expansion == 4 and block.conv3.out_channels == 256
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 256, 4, 4)


def test_addition_comes_before_the_last_activation():
    block = BasicBlock(8, 8, shortcut="B").eval()
    nn.init.zeros_(block.bn2.weight)  # residual branch outputs exactly 0: out = relu(x)
    x = torch.randn(2, 8, 6, 6)
    assert torch.equal(block(x), torch.relu(x))


def test_option_a_subsamples_and_zero_pads_without_parameters():
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4) and list(shortcut.parameters()) == []
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_shortcut_options_b_and_c_place_projections_where_the_paper_says():
    b = create_model("resnet20", shortcut="B")
    c = create_model("resnet20", shortcut="C")
    a = create_model("resnet20")
    assert sum(blk.downsample is not None for blk in b.blocks()) == 2  # the two stage transitions
    assert all(isinstance(blk.downsample, nn.Sequential) for blk in c.blocks())
    assert sum(isinstance(blk.downsample, ZeroPadShortcut) for blk in a.blocks()) == 2
    assert count_params(a) < count_params(b) < count_params(c)


def test_preact_blocks_keep_a_clean_identity_path():
    model = create_model("preact_resnet164", zero_init_residual=True).eval()
    block = model.layer1[1]  # identity shortcut
    assert isinstance(block, PreActBottleneck) and block.downsample is None
    x = torch.randn(2, 64, 8, 8)
    assert torch.equal(block(x), x)  # the branch is zero, nothing else touches x
    assert isinstance(create_model("preact_resnet110").layer1[0], PreActBasicBlock)
    assert isinstance(preact_resnet(1001).layer3[0], PreActBottleneck)


def test_generic_builders_accept_any_valid_depth():
    assert count_weighted_layers(cifar_resnet(26)) == 26
    assert all(not b.residual for b in cifar_resnet(14, plain=True).blocks())
    assert get_spec("resnet50").family == "imagenet" and get_spec("cifar_resnet50").family == "cifar"


@pytest.mark.parametrize("name,fragment", [("resnet21", "6n+2"), ("plain23", "6n+2"),
                                           ("preact_resnet100", "9n+2"), ("resnt56", "did you mean resnet56")])
def test_bad_names_and_depths_are_rejected_with_one_helpful_line(name, fragment):
    with pytest.raises(UserError) as err:
        create_model(name)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_depth_has_a_documented_upper_bound_refused_before_building_anything():
    from resnet_lab.models.registry import MAX_DEPTH

    assert MAX_DEPTH == 10_000 and get_spec("resnet9998").depth == 9998  # the bound is not lower than documented
    for name in ("resnet6000000000002", "preact_resnet10010", "plain" + "9" * 5000):  # once: MemoryError, ValueError
        with pytest.raises(UserError, match="10,000 layers") as err:
            get_spec(name)
        assert "\n" not in str(err.value) and len(str(err.value)) < 250


@pytest.mark.parametrize("name,fragment", [("resnet21\n", "6n\\+2"), ("resnet\u0662\u0660", "unknown model"),
                                           ("x" * 10_000, "10,000 characters")])
def test_odd_names_give_one_short_line(name, fragment):
    with pytest.raises(UserError, match=fragment) as err:
        get_spec(name)
    assert "\n" not in str(err.value) and len(str(err.value)) < 250


def _calls_given_a_built_model():
    from resnet_lab.diagnostics import check_model
    from resnet_lab.experiments.compare import compare_models
    from resnet_lab.experiments.degradation import run_degradation
    from resnet_lab.experiments.survey import run_survey
    from resnet_lab.training.inference import evaluate_checkpoint

    return {"create_model": lambda m: create_model(m), "compare_models": lambda m: compare_models([m], log=None),
            "compare_models(one)": lambda m: compare_models(m, log=None),
            "check_model": lambda m: check_model(m, steps=1), "evaluate_checkpoint": lambda m: evaluate_checkpoint(m),
            "run_degradation": lambda m: run_degradation([m], steps=1, log=None),
            "run_survey": lambda m: run_survey([m], steps=1, log=None)}


@pytest.mark.parametrize("call", _calls_given_a_built_model().keys())
def test_a_built_model_where_its_name_goes_is_refused_in_one_short_line(call):
    """A notebook's model object passed where a name (or a path, a depth) goes was refused with its repr in the
    message: dozens of lines of ResNet(...) ('unknown model ResNet(\\n  (conv1): ...'), not the one line promised."""
    with pytest.raises(UserError) as err:
        _calls_given_a_built_model()[call](create_model("resnet8"))
    message = str(err.value)
    assert "\n" not in message and len(message) < 250 and "a ResNet" in message, message


@pytest.mark.parametrize("option,value", [("norm", "layer"), ("activation", "gelu"), ("init", "zeros"),
                                          ("shortcut", "D"), ("num_classes", 0), ("bogus", 1),
                                          # once a TypeError from torch, and a resnet zeroed by a truthy 'no':
                                          ("num_classes", True), ("in_channels", True),
                                          ("zero_init_residual", "no"), ("zero_init_residual", 1)])
def test_bad_option_values_are_rejected(option, value):
    with pytest.raises(UserError, match=option):
        create_model("resnet20", **{option: value})


def test_numpy_numbers_are_taken_as_the_numbers_they_hold():
    """num_classes=y.max() + 1 is a numpy integer: refused as "must be a positive integer, got np.int64(10)"."""
    import numpy as np

    model = create_model("resnet8", num_classes=np.int64(7), in_channels=np.int32(1), zero_init_residual=np.True_)
    assert model.fc.out_features == 7 and model.conv1.in_channels == 1
    assert all(not b.bn2.weight.any() for b in model.blocks())


def test_norm_activation_and_init_switches_change_the_layers():
    plain = create_model("plain20", norm="none", activation="sigmoid")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert any(isinstance(m, nn.Sigmoid) for m in plain.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in create_model("resnet20", norm="group").modules())
    assert any(isinstance(m, nn.Tanh) for m in create_model("resnet20", activation="tanh").modules())

    torch.manual_seed(0)
    conv = create_model("resnet110", init="normal").layer3[0].conv2.weight
    assert conv.std().item() == pytest.approx(0.01, rel=0.05)
    he = create_model("resnet110", init="he").layer3[0].conv2.weight  # fan_out = 64 * 9
    assert he.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    xavier = create_model("resnet110", init="xavier").layer3[0].conv2.weight  # (fan_in + fan_out) = 2 * 576
    assert xavier.std().item() == pytest.approx((2 / (2 * 576)) ** 0.5, rel=0.05)


def test_zero_init_residual_zeroes_the_last_norm_of_each_branch():
    model = create_model("resnet50", zero_init_residual=True)
    assert all(not b.bn3.weight.any() for b in model.blocks())
    assert model.bn1.weight.all()


@pytest.mark.parametrize("name", ["resnet20", "resnet50", "preact_resnet110"])
def test_zero_init_residual_without_norm_starts_each_block_as_its_shortcut(name):
    """With norm="none" there is no gamma to zero: zero_init_residual once did nothing at all."""
    model = create_model(name, norm="none", zero_init_residual=True).eval()
    block = model.layer2[1]  # an identity shortcut
    x = torch.randn(2, block.last_conv().out_channels, 8, 8)
    expected = x if model.preact else torch.relu(x)  # a post-activation block ends with its ReLU
    assert torch.equal(block(x), expected)
    assert not any(b.last_conv().weight.any() for b in model.blocks())
    assert create_model(name, norm="none").layer2[1].last_conv().weight.any()


def test_zero_init_residual_is_refused_for_a_plain_net():
    """A plain net has no residual branch; zero_init_residual silently did nothing there."""
    with pytest.raises(UserError, match="plain net .* has none"):
        create_model("plain20", zero_init_residual=True)
    with pytest.raises(UserError, match="drop zero_init_residual"):
        create_model("resnet20", shortcut="none", zero_init_residual=True)


def test_grayscale_input_and_class_count():
    model = create_model("resnet20", in_channels=1, num_classes=7)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("blocks", [True, 2, 4])  # per block, and runs of 2 or 4 (a stage has 3)
def test_checkpointing_gives_the_same_gradients_and_batchnorm_statistics(blocks):
    torch.manual_seed(0)
    ref = create_model("resnet20")
    ck = create_model("resnet20", checkpointing=blocks)
    ck.load_state_dict(ref.state_dict())
    x = torch.randn(4, 3, 32, 32)
    ref(x).square().sum().backward()
    ck(x).square().sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ck.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name
    # The recomputation in backward must not update BatchNorm's running statistics a second time.
    for (name, a), b in zip(ref.named_buffers(), ck.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_checkpointing_picks_the_cheap_reentrant_form_only_where_gradients_still_flow():
    torch.manual_seed(0)
    ref = create_model("resnet8")
    ck = create_model("resnet8", checkpointing=True)
    ck.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 16, 16)
    # An eager step with a trainable stem: the reentrant form (no autograd bookkeeping in forward).
    out = ck.run_stage(ck.layer1, ck.stem(x))
    assert "CheckpointFunction" in type(out.grad_fn).__name__
    # Behind a frozen stem the stage input needs no gradient; the reentrant form would then drop
    # the blocks' gradients, so the hook-based one is used and they match the plain model's.
    for model in (ref, ck):
        for p in [*model.conv1.parameters(), *model.bn1.parameters()]:
            p.requires_grad_(False)
        model(x).square().sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ck.parameters()):
        if p.requires_grad:
            assert q.grad is not None, name
            torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_checkpointing_under_torch_compile_trains_like_the_plain_model():
    torch.manual_seed(0)
    ref = create_model("resnet8")
    ck = create_model("resnet8", checkpointing=True)
    ck.load_state_dict(ref.state_dict())
    compiled = torch.compile(ck)
    x = torch.randn(4, 3, 16, 16)
    for _ in range(2):  # the second call runs the compiled code
        ref(x).square().sum().backward()
        compiled(x).square().sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ck.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-4, rtol=1e-4, msg=name)
    for (name, a), b in zip(ref.named_buffers(), ck.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_longer_checkpointed_runs_store_fewer_tensors():
    from torch.autograd.graph import saved_tensors_hooks

    def saved_count(model):
        count = [0]
        with saved_tensors_hooks(lambda t: count.__setitem__(0, count[0] + 1) or t, lambda t: t):
            model(torch.randn(2, 3, 32, 32)).sum()
        return count[0]

    counts = [saved_count(create_model("resnet56", checkpointing=k)) for k in (0, 1, 3)]
    assert counts[0] > counts[1] > counts[2], counts
    with pytest.raises(UserError, match="number of blocks"):
        create_model("resnet20", checkpointing=-1)


@pytest.mark.parametrize("name", ["resnet1202", "preact_resnet1001"])
def test_thousand_layer_nets_run_forward_and_backward_on_cpu(name):
    model = create_model(name, checkpointing=True)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert model.conv1.weight.grad is not None and torch.isfinite(model.conv1.weight.grad).all()


def test_top_level_api_works_as_documented():
    model = resnet_lab.create_model("resnet56")
    assert isinstance(model, resnet_lab.ResNet) and "resnet56" in resnet_lab.list_models()
    for obj in (resnet_lab.create_model, resnet_lab.list_models, BasicBlock, Bottleneck,
                PreActBasicBlock, PreActBottleneck):
        assert obj.__doc__ and obj.__doc__.strip()


@pytest.mark.parametrize("package", ["resnet_lab", "resnet_lab.diagnostics"])
def test_every_lazily_exported_name_resolves_and_is_listed(package):
    """The packages import their names on first use (``lazy.py``); a name moved or renamed in its
    module must fail here, not in a user's ``from resnet_lab import ...``."""
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018


def test_bad_values_from_the_library_are_value_errors():
    """Library callers catch bad values the usual way: UserError is a ValueError."""
    import resnet_lab

    with pytest.raises(ValueError, match="6n\\+2"):
        resnet_lab.create_model("resnet21")
