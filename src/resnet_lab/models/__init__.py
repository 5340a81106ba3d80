"""The model zoo: blocks, the ResNet class, named configs and torchvision interchange.

Names are imported on first use (``lazy.py``): the CLI reads ``choices`` without importing torch.
"""

from ..lazy import lazy_exports

_MODULES = {
    ".blocks": ["BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ZeroPadShortcut"],
    ".registry": ["ModelSpec", "cifar_model_name", "cifar_resnet", "create_model", "get_spec", "list_models",
                  "preact_resnet"],
    ".resnet": ["ResNet", "initialize"],
    ".stats": ["count_flops", "count_params", "count_weighted_layers", "stage_summary", "zoo_table"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
