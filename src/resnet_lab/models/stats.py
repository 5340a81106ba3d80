"""Facts about a model: parameters, weighted layers, FLOPs, stage-by-stage summary."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import _Block


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_weighted_layers(model: nn.Module) -> int:
    """Convolutions and linear layers on the main path, as the paper counts depth
    (shortcut projections excluded)."""
    shortcut_ids = {id(m) for blk in model.modules() if isinstance(blk, _Block) and blk.downsample is not None
                    for m in blk.downsample.modules()}
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and id(m) not in shortcut_ids)


def count_flops(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """Forward FLOPs for one image, counted by ``torch.utils.flop_counter`` (2 per multiply-add).

    Runs on a ``meta`` copy of the input when the model allows it. A ResNet is counted part by part
    (stem, blocks, head) and each distinct block once per input shape: ResNet-1202's 600 blocks are
    6 distinct ones, so listing the zoo takes a second rather than ten.
    """
    from torch.utils.flop_counter import FlopCounterMode  # imports triton: 0.2 s that training never needs

    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, in_channels, input_size, input_size, device=next(model.parameters()).device)
        seen: dict[tuple, tuple[int, torch.Size]] = {}  # (block, input shape) -> (FLOPs, output shape)
        total = 0
        for part in _forward_parts(model):
            key = (type(part), repr(part), x.shape) if isinstance(part, _Block) else None
            counted = seen.get(key) if key else None
            if counted is None:
                with torch.no_grad(), FlopCounterMode(display=False) as counter:
                    y = part(x)
                counted = int(counter.get_total_flops()), y.shape
                if key:
                    seen[key] = counted
            flops, shape = counted
            total += flops
            x = torch.zeros(shape, device=x.device)
        return total
    finally:
        model.train(was_training)


def _forward_parts(model: nn.Module) -> list:
    """The model's forward pass as a chain of callables: a ResNet's stem, blocks and head."""
    from .resnet import ResNet

    if isinstance(model, ResNet):
        return [model.stem, *model.blocks(), model.head]
    return [model]


def stage_summary(model, input_size: int, in_channels: int = 3) -> list[dict]:
    """One row per part of a ``ResNet`` (stem, each stage, head): output shape, blocks, parameters."""
    def params(*modules):
        return sum(count_params(m) for m in modules)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, in_channels, input_size, input_size, device=next(model.parameters()).device)
            x = model.stem(x)
            rows = [{"name": "stem", "blocks": 0, "output_shape": tuple(x.shape[1:]),
                     "params": params(model.conv1, model.bn1)}]
            for i, stage in enumerate(model.stages()):
                x = model.run_stage(stage, x)
                rows.append({"name": f"layer{i + 1}", "blocks": len(stage), "output_shape": tuple(x.shape[1:]),
                             "params": params(stage)})
            x = model.head(x)
            rows.append({"name": "head", "blocks": 0, "output_shape": tuple(x.shape[1:]),
                         "params": params(model.final_norm, model.fc)})
    finally:
        model.train(was_training)
    return rows


def zoo_table(family: str | None = None) -> list[dict]:
    """One row per named model (of ``family``): name, family, weighted layers, parameters, forward
    GFLOPs (2 per multiply-add) and input size, at the native input size. Built on the meta device:
    no memory, no initialisation, only shapes."""
    from .registry import create_model, list_models

    rows = []
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name)
        spec = model.spec
        if family and spec.family != family:
            continue
        rows.append({"name": name, "family": spec.family, "layers": count_weighted_layers(model),
                     "params": count_params(model), "gflops": round(count_flops(model, spec.input_size) / 1e9, 3),
                     "input": f"{spec.input_size}x{spec.input_size}"})
    return rows
