"""One ResNet class for every family: ImageNet (7x7 stem, 4 stages), CIFAR (3x3 stem,
3 stages of 16/32/64 channels) and pre-activation nets, residual or plain.

Every architectural switch is a constructor argument, so that each claim about depth,
normalisation, activations, initialisation and shortcuts can be tested by flipping one.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Sequence, Type

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import UserError, is_bool, shown
from .blocks import PreActBasicBlock, PreActBottleneck, _Block
from .choices import ACTIVATIONS, INITS, MAX_CLASSES, MAX_IN_CHANNELS, NORMS, SHORTCUTS, STEMS


def _choice(option: str, value, allowed) -> None:
    if value not in allowed:
        raise UserError(f"{option}={value!r} is not valid; choose one of: {', '.join(map(str, allowed))}")


def norm_factory(norm: str):
    """``norm`` name -> a function from channel count to a normalisation module."""
    _choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d
    if norm == "group":
        # 32 groups as in Wu & He (2018), fewer for the thin CIFAR stages (16 channels).
        return lambda c: nn.GroupNorm(math.gcd(32, c), c)
    return lambda c: nn.Identity()


def act_factory(activation: str):
    _choice("activation", activation, ACTIVATIONS)
    return {"relu": partial(nn.ReLU, inplace=True), "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[activation]


class ResNet(nn.Module):
    """A residual (or plain) network.

    Args:
        block: block class (``BasicBlock``, ``Bottleneck``, ``PreActBasicBlock``, ``PreActBottleneck``).
        layers: number of blocks per stage.
        widths: base width of each stage (block output = width * block.expansion).
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool) or ``"cifar"`` (one 3x3 conv).
        num_classes, in_channels: head size and input channels (1 for grayscale).
        shortcut: ``"A"`` zero-padding, ``"B"`` projection where the shape changes,
            ``"C"`` projection everywhere, ``"none"`` for the plain twin.
        norm: ``"batch"``, ``"group"`` or ``"none"``.
        activation: ``"relu"``, ``"sigmoid"`` or ``"tanh"``.
        init: ``"he"`` (Kaiming normal, fan_out), ``"xavier"``, ``"normal"`` (std 0.01, pre-BN style)
            or ``"torch"`` (PyTorch's defaults).
        zero_init_residual: start every residual branch at zero (last norm's gamma = 0; with
            ``norm="none"``, its last conv); refused for a plain net, which has no residual branch.
        checkpointing: recompute blocks in backward instead of storing their activations: ``True``
            (or 1) stores each block's input only; an integer k stores the input of every run of k
            blocks (fewer, larger recomputations: less per-call overhead, about k blocks' worth of
            activations alive during the backward of one run).
    """

    def __init__(
        self,
        block: Type[_Block],
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        *,
        stem: str = "imagenet",
        num_classes: int = 1000,
        in_channels: int = 3,
        shortcut: str = "B",
        norm: str = "batch",
        activation: str = "relu",
        init: str = "he",
        zero_init_residual: bool = False,
        checkpointing: bool | int = False,
    ):
        super().__init__()
        _choice("shortcut", shortcut, SHORTCUTS)
        _choice("stem", stem, STEMS)
        _choice("init", init, INITS)
        for option, value, most in (("num_classes", num_classes, MAX_CLASSES),
                                    ("in_channels", in_channels, MAX_IN_CHANNELS)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # True: an 'int' torch refuses
                raise UserError(f"{option} must be a positive integer, got {value!r}")
            if value > most:
                raise UserError(f"{option} must be at most {most:,}, got {value:,}")
        self.preact = block in (PreActBasicBlock, PreActBottleneck)
        if not isinstance(checkpointing, int) or checkpointing < 0:  # bools are ints: True = 1
            raise UserError(f"checkpointing must be True/False or a number of blocks >= 1, got {checkpointing!r}")
        self.checkpointing = int(checkpointing)  # blocks per recomputed run; 0: off
        if not is_bool(zero_init_residual):
            # a truthy 'no' or 'False' (a config file's text) once zeroed every residual branch without a word
            raise UserError(f"zero_init_residual must be True or False, got {shown(zero_init_residual)}")
        self._norm, self._act = norm_factory(norm), act_factory(activation)
        self.config = dict(block=block.__name__, layers=list(layers), widths=list(widths), stem=stem,
                           num_classes=num_classes, in_channels=in_channels, shortcut=shortcut,
                           norm=norm, activation=activation, init=init)

        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        # A pre-activation net normalises at the start of each block instead.
        self.bn1 = nn.Identity() if self.preact else self._norm(self.inplanes)
        self.relu = nn.Identity() if self.preact else self._act()

        for i, (width, count) in enumerate(zip(widths, layers)):
            stage = self._make_layer(block, width, count, stride=1 if i == 0 else 2, shortcut=shortcut)
            setattr(self, f"layer{i + 1}", stage)
        self.num_stages = len(layers)
        features = widths[-1] * block.expansion
        # Pre-activation nets end with the norm + activation that the last block left out.
        self.final_norm = self._norm(features) if self.preact else nn.Identity()
        self.final_act = self._act() if self.preact else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)
        self.num_features = features

        initialize(self, init)
        if zero_init_residual:
            self._zero_init_residual()

    def _zero_init_residual(self) -> None:
        """Every residual branch starts at zero, so each block starts as its shortcut: the last norm's
        gamma is 0 (Goyal et al. 2017) or, with no norm, the branch's last conv (as Fixup does)."""
        if self.config["shortcut"] == "none":
            raise UserError("zero_init_residual starts each residual branch at zero, and a plain net (shortcut "
                            "none) has none: its blocks would output zeros; drop zero_init_residual")
        for block in self.blocks():
            norm = block.last_norm()
            nn.init.zeros_(norm.weight if getattr(norm, "weight", None) is not None else block.last_conv().weight)

    def _make_layer(self, block, planes: int, count: int, stride: int, shortcut: str) -> nn.Sequential:
        """One stage: the first block changes the shape (stride/width), the rest keep it."""
        layers = []
        for i in range(count):
            layers.append(block(self.inplanes, planes, stride if i == 0 else 1,
                                shortcut=shortcut, norm=self._norm, act=self._act))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def blocks(self) -> list[_Block]:
        return [b for stage in self.stages() for b in stage]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def run_stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.checkpointing and self.training and torch.is_grad_enabled()):
            return stage(x)
        blocks, k = list(stage), self.checkpointing
        reentrant = _reentrant_checkpoint_fits(x)
        for i in range(0, len(blocks), k):  # store only the input of each run of k blocks
            # The blocks draw no random numbers, so there is no RNG state to save and replay.
            x = checkpoint(_Recomputable(blocks[i:i + k]), x, use_reentrant=reentrant, preserve_rng_state=False)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.final_act(self.final_norm(x)))
        return self.fc(torch.flatten(x, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages():
            x = self.run_stage(stage, x)
        return self.head(x)


def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialise convolutions and the classifier; norm layers get weight 1, bias 0."""
    _choice("init", scheme, INITS)
    # Meta tensors (shapes only, e.g. `resnet-lab models`) have no values; their init goes through
    # torch's Python reference ops and costs seconds for nothing.
    if scheme == "torch" or any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "he":
                if isinstance(m, nn.Conv2d):  # torchvision keeps PyTorch's default for the classifier
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:  # "normal": the small Gaussian of pre-BatchNorm networks
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _reentrant_checkpoint_fits(x: torch.Tensor) -> bool:
    """Whether torch's reentrant checkpoint can replace the hook-based one here.

    The reentrant variant runs the first pass without autograd bookkeeping and recomputes in one
    nested backward; the hook-based one runs Python hooks for every saved tensor. Eagerly that is
    +44% vs +92% step time for resnet1202 at batch 8 on a 2-core CPU, and +11% vs +92% at batch 1,
    where per-op overhead dominates as on a GPU (benchmarks/bench_checkpointing.py). But the
    reentrant variant propagates gradients only through an input that requires them (not behind
    a frozen stem), and under DDP, torch.compile and CUDA-graph capture the hook-based one is the
    form known to work (under the last two, per-op overhead is gone anyway).
    """
    import torch.distributed as dist

    return (x.requires_grad and not torch.compiler.is_compiling()
            and not (dist.is_available() and dist.is_initialized())
            and not (x.is_cuda and torch.cuda.is_current_stream_capturing()))


class _Recomputable:
    """A run of blocks for ``checkpoint``: the first call is the forward pass, a second one the
    recomputation in backward, which must not move BatchNorm's running statistics again.

    During the recomputation each norm layer runs with momentum 0 (an update that keeps the
    statistics as they are) and without its batch counter; it still normalises with the batch's
    statistics and saves the same tensors, so the recomputed output is the original one.
    """

    def __init__(self, blocks: Sequence[nn.Module]):
        self.blocks, self.calls = blocks, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            return self._run(x)
        norms = [m for b in self.blocks for m in b.modules()
                 if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        saved = [(m.momentum, m.num_batches_tracked) for m in norms]
        for m in norms:
            m.momentum, m.num_batches_tracked = 0.0, None
        try:
            return self._run(x)
        finally:
            for m, (momentum, count) in zip(norms, saved):
                m.momentum, m.num_batches_tracked = momentum, count

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x
