"""Models from other libraries, for the gradient diagnostics: torchvision's by name."""

from __future__ import annotations

import difflib

from torch import nn

from ..errors import UserError


class RepeatChannels(nn.Module):
    """Grey images repeated to the channels a model takes (torchvision's take three)."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return x.expand(-1, self.channels, -1, -1)


def swap_relu(model: nn.Module, activation: str) -> nn.Module:
    """Every ``nn.ReLU`` of ``model`` replaced, in place, by ``activation`` (relu, sigmoid, tanh):
    the classic experiment of a deep net without normalisation and with saturating units."""
    from .resnet import act_factory

    for name, child in model.named_children():
        if isinstance(child, nn.ReLU):
            setattr(model, name, act_factory(activation)())
        else:
            swap_relu(child, activation)
    return model


def torchvision_model(name: str, num_classes: int, in_channels: int = 3, image_size: int = 224,
                      activation: str = "relu") -> nn.Module:
    """Any torchvision classification model by name with random weights (nothing is downloaded),
    with ``num_classes`` outputs; 1-channel inputs are repeated to 3 channels; ``activation``
    replaces its ReLUs (see ``swap_relu``)."""
    import torchvision

    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()"
        raise UserError(f"torchvision has no classification model {name!r}; {hint}")
    options = {"image_size": image_size} if name.startswith("vit_") else {}  # ViTs are built for one size
    if name in ("googlenet", "inception_v3"):  # their auxiliary heads make training outputs a tuple, not logits
        options.update(aux_logits=False, init_weights=True)  # their own init, named: no FutureWarning
    try:
        model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    except (TypeError, ValueError, RuntimeError) as err:
        raise UserError(f"torchvision:{name} cannot be built with {num_classes} classes at {image_size}x{image_size} "
                        f"({err})") from None
    if activation != "relu":
        swap_relu(model, activation)
    if in_channels not in (1, 3):
        raise UserError(f"torchvision models take 3-channel images; this data has {in_channels} channels")
    _check_runs_at(model, name, image_size)
    return nn.Sequential(RepeatChannels(3), model) if in_channels == 1 else model


def _check_runs_at(model: nn.Module, name: str, image_size: int) -> None:
    """One image through the model, so that a size it cannot take is one line, not a traceback mid-check."""
    import torch

    from ..errors import first_line

    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as err:
        raise UserError(f"torchvision:{name} cannot run on {image_size}x{image_size} images ({first_line(err)}); "
                        "pick a model made for small inputs, or data with larger images (npz:PATH)") from None
    finally:
        model.train(was_training)
