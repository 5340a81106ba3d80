"""The model zoo: blocks, the ResNet class, named configs and torchvision interchange."""

from .blocks import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut
from .registry import ModelSpec, cifar_resnet, create_model, get_spec, list_models, preact_resnet
from .resnet import ResNet, initialize
from .stats import count_flops, count_params, count_weighted_layers, stage_summary

__all__ = [
    "BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ZeroPadShortcut",
    "ModelSpec", "ResNet", "cifar_resnet", "count_flops", "count_params", "count_weighted_layers",
    "create_model", "get_spec", "initialize", "list_models", "preact_resnet", "stage_summary",
]
