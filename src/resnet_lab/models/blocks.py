"""Residual blocks and their shortcuts.

Every block computes ``out = F(x) + shortcut(x)``; with ``shortcut="none"`` the addition
is dropped and the same layers form the block of a *plain* network (the paper's baseline).
Layer names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``) so that weights
move between the two libraries unchanged.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[], nn.Module]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels. It has no parameters,
    which is why a plain net and its ResNet have exactly the same parameter count."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.stride, self.extra = stride, out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


def make_shortcut(
    kind: str, in_planes: int, out_planes: int, stride: int, norm: NormFactory | None
) -> nn.Module | None:
    """The module added to the block output, or None for the identity (or no shortcut).

    ``norm=None`` builds a bare 1x1 projection, as pre-activation blocks use.
    """
    if kind == "none":
        return None
    reshapes = stride != 1 or in_planes != out_planes
    if kind == "A":
        return ZeroPadShortcut(in_planes, out_planes, stride) if reshapes else None
    if kind == "B" and not reshapes:
        return None
    layers = [conv1x1(in_planes, out_planes, stride)]
    if norm is not None:
        layers.append(norm(out_planes))
    return nn.Sequential(*layers)


class _Block(nn.Module):
    """Shared plumbing: the shortcut and whether the block adds it."""

    expansion = 1

    def _init_shortcut(self, kind, in_planes, out_planes, stride, norm):
        self.residual = kind != "none"
        self.downsample = make_shortcut(kind, in_planes, out_planes, stride, norm)

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def extra_repr(self) -> str:
        return "" if self.residual else "plain (no shortcut)"


class BasicBlock(_Block):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR nets); the sum comes before the last activation."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: NormFactory = nn.BatchNorm2d, act: ActFactory = nn.ReLU):
        super().__init__()
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm(planes)
        self.relu = act()
        self._init_shortcut(shortcut, in_planes, planes, stride, norm)

    def last_norm(self) -> nn.Module:
        return self.bn2

    def last_conv(self) -> nn.Conv2d:
        return self.conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self._skip(x)
        return self.relu(out)


class Bottleneck(_Block):
    """1x1 reduce, 3x3 (carries the stride, as torchvision's "ResNet v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: NormFactory = nn.BatchNorm2d, act: ActFactory = nn.ReLU):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(in_planes, planes)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.bn3 = norm(out_planes)
        self.relu = act()
        self._init_shortcut(shortcut, in_planes, out_planes, stride, norm)

    def last_norm(self) -> nn.Module:
        return self.bn3

    def last_conv(self) -> nn.Conv2d:
        return self.conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            out = out + self._skip(x)
        return self.relu(out)


class PreActBasicBlock(_Block):
    """Pre-activation basic block (He et al. 2016): norm-act-conv twice, nothing on the identity path.

    A projection shortcut reads the pre-activated input, so the identity path stays clean.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: NormFactory = nn.BatchNorm2d, act: ActFactory = nn.ReLU):
        super().__init__()
        self.bn1 = norm(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = norm(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = act()
        self._init_shortcut(shortcut, in_planes, planes, stride, None)

    def last_norm(self) -> nn.Module:
        return self.bn2

    def last_conv(self) -> nn.Conv2d:
        return self.conv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(pre))
        return out


class PreActBottleneck(_Block):
    """Pre-activation bottleneck (ResNet-164/1001 of He et al. 2016)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: NormFactory = nn.BatchNorm2d, act: ActFactory = nn.ReLU):
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = norm(in_planes)
        self.conv1 = conv1x1(in_planes, planes)
        self.bn2 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm(planes)
        self.conv3 = conv1x1(planes, out_planes)
        self.relu = act()
        self._init_shortcut(shortcut, in_planes, out_planes, stride, None)

    def last_norm(self) -> nn.Module:
        return self.bn3

    def last_conv(self) -> nn.Conv2d:
        return self.conv3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(pre))
        return out
