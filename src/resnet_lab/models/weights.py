"""torchvision weight interchange for the ImageNet family.

Our ImageNet nets use torchvision's layer names, so its state dicts load as they are.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError, first_line
from ..text import counted


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, never executing code from it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"weights {path} is a folder; give the .pth/.safetensors file in it (a run directory's "
                        "last.pt or best.pt, or what 'resnet-lab export' wrote)")
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist; "
                        "pass a .pth/.safetensors file or a torchvision weight name")
    try:
        if path.suffix.lower() == ".safetensors":  # as `resnet-lab export` names it: any case
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only: the unpickler builds tensors and containers only, never calls a global.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run code from the file.
        raise UserError(
            f"cannot read weights from {path}: it is damaged or holds Python objects besides tensors, which are "
            f"never loaded because they could run code; save model.state_dict() with torch.save, or use .safetensors"
        ) from None
    except Exception as exc:  # corrupted or not a weights file at all
        reason = first_line(exc)
        raise UserError(f"cannot read weights from {path}: {reason}") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # one of our checkpoints
    if not isinstance(state, dict):
        raise UserError(f"{path} does not hold a state dict")
    return state


def load_weights(model: nn.Module, spec, weights: str | Path) -> None:
    """Load torchvision weights by name (e.g. ``"IMAGENET1K_V2"``, ``"DEFAULT"``; the ImageNet ResNets) or
    a local state dict file for any model (``resnet-lab export``'s ``.safetensors`` included)."""
    if Path(str(weights)).suffix in (".pth", ".pt", ".safetensors") or Path(str(weights)).exists():
        state = read_state_dict(weights)
    elif spec.family != "imagenet" or spec.defaults.get("shortcut") == "none":
        raise UserError(f"{spec.name}: named weights ({weights!r}) exist for torchvision's ResNet-18/34/50/101/152 "
                        "only; for other models give a local .pth/.safetensors file")
    else:
        state = _torchvision_state_dict(spec, weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"weights do not match {spec.name}: {_mismatch(model.state_dict(), state, exc)}") from None


def _mismatch(own: dict, given: dict, exc: RuntimeError) -> str:
    """What differs between the model's state dict and the file's, in a few names, and the likely fix."""
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    shapes = [k for k in own if k in given and getattr(given[k], "shape", None) is not None
              and tuple(given[k].shape) != tuple(own[k].shape)]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")

    def dims(t) -> str:
        return "x".join(str(d) for d in t.shape)

    parts = [f"the file lacks {len(missing):,} of the model's keys ({some(missing)})"] if missing else []
    if unexpected:
        parts.append(f"the file has {counted(len(unexpected), 'key')} the model lacks ({some(unexpected)})")
    parts += [f"{k} is {dims(given[k])} in the file but {dims(own[k])} here" for k in shapes[:2]]
    if not parts:
        return first_line(exc)
    prefixes = {k.split(".", 1)[0] + "." for k in unexpected if "." in k}
    if missing and len(prefixes) == 1:
        prefix = prefixes.pop()
        if all(prefix + k in given for k in missing):
            return (f"{'; '.join(parts)}; the file's names start with {prefix!r} (a wrapper's, such as DDP's or a "
                    f"LightningModule's attribute): save the inner model's state_dict(), or strip the prefix")
    head = [k for k in shapes if k.startswith("fc.")]
    if head and len(head) == len(shapes) and not missing and not unexpected:
        fix = f"the file's classifier has {given[head[0]].shape[0]} classes: pass num_classes={given[head[0]].shape[0]}"
    elif shapes == ["conv1.weight"] and not missing and not unexpected:
        channels = given["conv1.weight"].shape[1]
        fix = f"the file's first layer takes {counted(channels, 'input channel')}: pass in_channels={channels}"
    elif isinstance(given.get("state_dict"), dict):
        fix = "the file is a training checkpoint: save the model's state_dict() alone (its 'state_dict' entry)"
    else:
        fix = "the file holds another architecture, or the same with other options (shortcut, norm, ...)"
    return f"{'; '.join(parts)}; {fix}"


def _torchvision_state_dict(spec, weights: str) -> dict[str, torch.Tensor]:
    from torchvision.models import get_weight

    try:
        enum = get_weight(f"ResNet{spec.depth}_Weights.{weights}")
    except (ValueError, KeyError, AttributeError):
        raise UserError(f"unknown torchvision weights {weights!r} for {spec.name}; "
                        "try IMAGENET1K_V1, IMAGENET1K_V2 or DEFAULT") from None
    try:
        return enum.get_state_dict(progress=True)
    except OSError as exc:  # URLError is an OSError: offline, or the server refused
        raise UserError(f"cannot download {spec.name}'s {weights} weights ({first_line(exc)}); offline, fetch "
                        f"{enum.url} elsewhere and pass the file: weights=PATH") from None
