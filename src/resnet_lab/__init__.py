"""resnet-lab: build, train, debug and choose residual networks.

>>> import resnet_lab
>>> model = resnet_lab.create_model("resnet56")          # CIFAR ResNet-56, option A shortcuts
>>> plain = resnet_lab.create_model("plain56")            # its plain twin, same parameter count
"""

from .models import (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ResNet, cifar_resnet,
                     create_model, list_models, preact_resnet)

__version__ = "0.1.0"

__all__ = ["BasicBlock", "Bottleneck", "PreActBasicBlock", "PreActBottleneck", "ResNet", "cifar_resnet",
           "create_model", "list_models", "preact_resnet", "__version__"]
