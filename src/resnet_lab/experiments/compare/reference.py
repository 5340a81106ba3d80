"""Published accuracy to weigh against measured cost: torchvision's ImageNet top-1 for its weights,
and the papers' CIFAR-10 test accuracy for the CIFAR nets they trained."""

from __future__ import annotations

import torch

from ...models import create_model, get_spec

# Options that change neither the architecture nor the meaning of torchvision's accuracy.
_ARCH_NEUTRAL = {"init", "checkpointing", "zero_init_residual"}

#: CIFAR-10 test accuracy (%) published with each paper's own recipe (164 epochs, crop and flip):
#: He et al. 2015, Table 6 (resnet110: best of 5 runs; mean 93.39), and for the pre-activation nets
#: He et al. 2016, Tables 3 and 4.
PAPER_CIFAR10 = {"resnet20": 91.25, "resnet32": 92.49, "resnet44": 92.83, "resnet56": 93.03, "resnet110": 93.57,
                 "resnet1202": 92.07, "preact_resnet110": 93.63, "preact_resnet164": 94.54,
                 "preact_resnet1001": 95.08}


def reference_top1(name: str) -> dict[str, float] | None:
    """torchvision's published ImageNet-1K top-1 (%) per weight name, e.g. for ``resnet101``
    ``{"IMAGENET1K_V1": 77.374, "IMAGENET1K_V2": 81.886}``; None where torchvision has no weights.

    Read from the weight enums' metadata shipped with torchvision: no network access.
    """
    import torchvision

    key = name.strip().lower()
    if get_spec(key).family != "imagenet" or not key.startswith("resnet"):
        return None  # CIFAR/pre-activation nets and the plain twins have no torchvision weights
    try:
        weights = torchvision.models.get_model_weights(key)
    except (ValueError, KeyError):
        return None
    out = {}
    for w in weights:
        acc = w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        if acc is not None:
            out[w.name] = float(acc)
    return out or None


def reference_cifar10(name: str) -> float | None:
    """The papers' CIFAR-10 test accuracy (%) for ``name`` (e.g. resnet56: 93.03); None for nets
    they did not train."""
    return PAPER_CIFAR10.get(name.strip().lower())


def best_reference(ref: dict[str, float] | None) -> tuple[str, float] | tuple[None, None]:
    """(weights, top-1) of the most accurate published weights, or (None, None)."""
    return max(ref.items(), key=lambda kv: kv[1]) if ref else (None, None)


def published_accuracy(row: dict) -> str | None:
    """A row's published accuracy in a few words: '81.886 ImageNet (IMAGENET1K_V2)',
    '93.03 CIFAR-10 (paper)', or None."""
    weights, top1 = best_reference(row.get("reference_top1"))
    if weights:
        return f"{top1:.3f} ImageNet ({weights})"
    return f"{row['paper_cifar10']:.2f} CIFAR-10 (paper)" if row.get("paper_cifar10") else None


def _same_architecture_as_default(name: str, options: dict) -> bool:
    """True when ``options`` leave the named architecture as torchvision builds it."""
    if not set(options) - _ARCH_NEUTRAL:
        return True
    with torch.device("meta"):
        default = create_model(name).config
        custom = create_model(name, **options).config
    return all(default[k] == custom[k] for k in default if k != "init")
