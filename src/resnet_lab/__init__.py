"""resnet-lab: build, train, debug and choose residual networks.

>>> import resnet_lab
>>> model = resnet_lab.create_model("resnet56")          # CIFAR ResNet-56, option A shortcuts
>>> plain = resnet_lab.create_model("plain56")            # its plain twin, same parameter count

Names are imported on first use (``lazy.py``): ``resnet-lab report`` needs neither models nor torch.
"""

from .lazy import lazy_exports

__version__ = "0.1.0"

_MODULES = {".models": ["BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ResNet", "cifar_resnet",
                        "create_model", "list_models", "preact_resnet"]}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
__all__ += ["__version__"]
