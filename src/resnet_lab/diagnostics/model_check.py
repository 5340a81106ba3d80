"""``check_model``: the gradient check of a model named like the CLI names it (a zoo name or
``torchvision:NAME``) on a data set named the same way: what ``resnet-lab gradients`` runs."""

from __future__ import annotations

import math
import numbers

from ..data.choices import IN_MEMORY_DATA_SETS
from ..errors import UserError, check_positive_int, numpy_scalars_as_numbers, shown
from .check import run_gradient_check


@numpy_scalars_as_numbers
def check_model(model: str = "resnet20", *, data: str = "digits", data_dir=None, steps: int = 10,
                batch_size: int = 64, lr: float = 0.1, optimizer: str = "sgd", clip_norm: float | None = None,
                seed: int = 0, device: str = "cpu", groups="auto", **model_options) -> dict:
    """Build ``model`` for ``data`` (in memory: digits, cifar10, cifar100, npz:PATH), train it
    ``steps`` steps with the gradient monitor and return ``run_gradient_check``'s result, with
    ``model`` and ``data`` (its description) added. ``model_options``: the zoo's switches; a
    torchvision model takes ``activation`` only (its ReLUs are replaced)."""
    import torch

    from ..data import DeviceLoader, FolderDataset, load_data
    from ..runtime import pick_device

    if not isinstance(model, str):  # a list of names (as compare_models takes), None
        raise UserError(f"model is one model name such as 'resnet20', got {shown(model)}; check one model per call")
    check_positive_int("--steps", steps)
    check_positive_int("--batch-size", batch_size)
    for flag, value in (("--lr", lr), ("--clip-norm", clip_norm)):
        if value is not None and not (isinstance(value, numbers.Real) and not isinstance(value, bool)
                                      and math.isfinite(value) and value > 0):
            raise UserError(f"{flag} must be a positive number, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise UserError(f"--seed must be an integer, got {seed!r}")
    if not 0 <= seed < 2**32:  # train's range; from 2**63 on, torch's generator ended in an OverflowError traceback
        raise UserError(f"--seed must be an integer from 0 to {2**32 - 1:,} (2**32 - 1), got {seed}")
    dev = pick_device(device)
    ds = load_data(data, data_dir)
    if isinstance(ds, FolderDataset):
        raise UserError(f"the gradient check needs in-memory data ({IN_MEMORY_DATA_SETS})")
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNG is not reseeded
        torch.manual_seed(seed)
        net = _build(model, ds, model_options).to(dev)
        # a batch larger than the data set is refused there (it once ran every step on the whole set, unsaid)
        loader = DeviceLoader(ds.x_train, ds.y_train, batch_size, mean=ds.mean, std=ds.std,
                              device=dev, train=True, augment=True, hflip=ds.hflip, seed=seed)
        result = run_gradient_check(net, loader, steps=steps, lr=lr, clip_norm=clip_norm, optimizer=optimizer,
                                    groups=groups)
    return {**result, "model": model, "data": ds.description()}


def _build(name: str, ds, options: dict):
    from ..models import create_model

    if not name.startswith("torchvision:"):
        return create_model(name, num_classes=ds.num_classes, in_channels=ds.in_channels, **options)
    options = dict(options)
    activation = options.pop("activation", "relu")  # replaces its ReLUs; the other options are the zoo's
    if options:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in options)
        what = "is a resnet-lab model option" if len(options) == 1 else "are resnet-lab model options"
        raise UserError(f"{flags} {what}; drop {'it' if len(options) == 1 else 'them'} for a torchvision model "
                        "(--activation applies)")
    from ..models.foreign import torchvision_model

    return torchvision_model(name.split(":", 1)[1], ds.num_classes, ds.in_channels, ds.image_size, activation)
