"""Everything a run trains with, built once from its config: data, model, optimiser, loaders."""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..data.choices import IN_MEMORY_DATA_SETS
from ..errors import UserError
from ..models import create_model
from ..text import counted
from .config import REFERENCE_BATCH, TrainConfig
from .ema import WeightEMA
from .evaluation import check_flip_tta
from .precision import resolve_precision
from .schedules import warmup_steps
from .sgd import SGD


@dataclass
class RunParts:
    """The objects of one run. ``step_model`` is what the step calls: the model itself, or it
    wrapped by DistributedDataParallel and/or ``torch.compile``."""

    model: nn.Module
    step_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: WeightEMA | None
    train_loader: object
    test_loader: object
    info: dict
    precision: str
    steps_per_epoch: int
    total_steps: int
    num_epochs: int

    @property
    def params(self) -> int:
        from ..models.stats import count_params

        return count_params(self.model)


def check_given_dataset(c: TrainConfig, dataset) -> None:
    """``val_split`` holds images out as the data is loaded; a data set given already loaded is not loaded
    again, so one that does not hold a split out would be evaluated on its test set unsaid."""
    from ..data import FolderDataset, InMemoryDataset

    if dataset is not None and not isinstance(dataset, (InMemoryDataset, FolderDataset)):  # 'digits' goes to data=
        shown = repr(dataset) if isinstance(dataset, (str, os.PathLike)) else f"a {type(dataset).__name__}"
        raise UserError(f"dataset= takes a data set loaded with load_data(...), got {shown}; a data set's name or "
                        "npz:PATH goes to data=")
    if dataset is not None and c.val_split and getattr(dataset, "eval_split", "test") != "val":
        raise UserError(f"val_split={c.val_split} holds images out as the data is loaded, but the data set given "
                        f"(dataset=) is already loaded and evaluates on its {getattr(dataset, 'eval_split', 'test')} "
                        f"set: pass dataset.with_holdout({c.val_split}, seed) or drop val_split")


def build_parts(c: TrainConfig, device: torch.device, ctx, dataset, log) -> RunParts:
    """Data, then the model (seeded, so the same config gives the same initial weights), then
    what trains it."""
    from ..data import FolderDataset, load_data, resize_dataset

    check_given_dataset(c, dataset)
    ds = dataset if dataset is not None else load_data(c.data, c.data_dir, val_split=c.val_split, seed=c.split_seed)
    if c.image_size is not None:  # in-memory data: resized once, here (folder loaders resize each image)
        ds = resize_dataset(ds, c.image_size)
    if c.tta:
        check_flip_tta(ds)
        if c.flip == "none":
            raise UserError("--tta mirrors test images, but --flip none trains without mirrors; drop one of them")
    for warning in getattr(ds, "warnings", []):
        log(f"warning: {warning}")

    torch.manual_seed(c.seed)
    model = create_model(c.model, num_classes=ds.num_classes, in_channels=ds.in_channels, **c.model_options)
    folder_size = c.image_size or model.spec.input_size  # folder loaders resize to a square
    image_shape = (folder_size, folder_size) if isinstance(ds, FolderDataset) else tuple(ds.x_train.shape[2:])
    info = data_info(ds, c.data, image_shape)
    model.to(device)
    if c.channels_last:
        model.to(memory_format=torch.channels_last)
    precision = resolve_precision(c.precision, device)
    optimizer = build_optimizer(model, c)
    ema = WeightEMA(model, c.ema) if c.ema else None  # a copy of the plain model, before any wrapping
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    train_loader, test_loader = make_loaders(ds, c, device, folder_size, ctx.rank, ctx.world_size)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"batch size {c.batch_size} leaves no full batch in {info['description']}; lower --batch-size")
    total_steps = c.steps or c.epochs * steps_per_epoch
    return RunParts(model, wrap_model(model, c, ctx, device), optimizer, scaler, ema, train_loader, test_loader,
                    info, precision, steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch))


# A warm-up this short to a learning rate above the paper's 0.1 diverged in the runs we made: the fast
# recipe (0.4 at batch 512) on digits warms up over 12 steps and ends at 22-25% test accuracy (seeds 0, 1;
# 98% with a peak of 0.1; benchmarks/results/fast_cifar-cpu-digits.json). On CIFAR-10: 582 steps.
MIN_WARMUP_STEPS = 100


def steep_warmup(c: TrainConfig, total_steps: int) -> str | None:
    """A warning when the learning rate climbs above 0.1 in fewer than ``MIN_WARMUP_STEPS`` warm-up steps."""
    warm = warmup_steps(c.schedule, total_steps, c.warmup)
    if not 0 < warm < MIN_WARMUP_STEPS or c.effective_lr <= 0.1:
        return None
    calm = 0.1 * REFERENCE_BATCH / c.batch_size if c.lr_scaling else 0.1
    return (f"the learning rate climbs to {c.effective_lr:g} in {counted(warm, 'warm-up step')}, which diverged "
            f"in short runs we made (the fast recipe on digits: 22-25% test accuracy); give --lr {calm:g} (a peak "
            f"of 0.1), or a longer run (the fast recipe warms up over 582 steps on CIFAR-10)")


def wrap_model(model: nn.Module, c: TrainConfig, ctx, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun (SyncBatchNorm with ``sync_bn``), then ``torch.compile``."""
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if c.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if not c.compile:
        return model
    use_compile_cache()
    return torch.compile(model)


def use_compile_cache() -> Path:
    """Keep torch.compile's Inductor cache between runs in ``cache_home()/inductor`` rather than in
    /tmp, which a reboot empties: a second run loads its kernels instead of compiling them again
    (tens of seconds per model). ``$TORCHINDUCTOR_CACHE_DIR``, when set, wins."""
    from ..data.cache import cache_home

    return Path(os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_home() / "inductor")))


@contextmanager
def callers_settings_kept(device: torch.device):
    """What ``seed_everything`` changes for a run, put back for the caller when ``train`` returns or
    raises: the deterministic-algorithms switch, cuDNN's benchmark flag and the random generators
    (torch's, ``device``'s, numpy's and ``random``'s). A notebook that trained once with
    ``deterministic=True`` would otherwise run everything after it in deterministic mode, and its own
    random numbers would restart from the run's seed."""
    import random

    import numpy as np

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        if (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) != (deterministic, warn_only):
            # only when the run changed it: the call imports torch._dynamo, as long as importing torch
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.backends.cudnn.benchmark = benchmark
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def build_optimizer(model: nn.Module, c: TrainConfig) -> "SGD | torch.optim.Optimizer":
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if c.wd_on_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": c.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if c.optimizer == "sgd":
        # torch.optim.SGD's arithmetic and checkpoint layout without torch.optim's start-up cost (sgd.py).
        return SGD(groups, lr=c.effective_lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)
    cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=c.effective_lr)


def make_loaders(ds, c: TrainConfig, device: torch.device, image_size: int, rank: int = 0, world_size: int = 1):
    """(train, eval) loaders: on-device batches for in-memory data, DataLoader workers for folders
    (which resize to ``image_size``)."""
    from ..data import DeviceLoader, FolderDataset, make_folder_loaders

    if c.flip != "random" and not (c.augment and ds.hflip):
        why = "--no-augment turns augmentation off" if not c.augment else f"{ds.name} is trained without flips"
        raise UserError(f"--flip {c.flip} changes how training images are mirrored, but {why}; drop --flip")
    if isinstance(ds, FolderDataset):
        if (c.translate, c.pad_mode) != (4, "zeros"):
            raise UserError(f"--translate and --pad-mode set the crop of in-memory data ({IN_MEMORY_DATA_SETS}); "
                            "image folders are cropped their own way")
        if c.flip == "alternate":
            raise UserError(f"--flip {c.flip} needs in-memory data that is flipped ({IN_MEMORY_DATA_SETS}, but not "
                            "digits); image folders flip at random (or not at all: --flip none)")
        # --no-augment reaches the folder loaders too: they used to crop and flip whatever it said.
        return make_folder_loaders(replace(ds, hflip=ds.hflip and c.flip != "none"), c.batch_size, image_size,
                                   c.workers, c.seed, rank, world_size, augment=c.augment)
    common = dict(mean=ds.mean, std=ds.std, device=device, hflip=ds.hflip, seed=c.seed,
                  channels_last=c.channels_last, rank=rank, world_size=world_size)
    if c.augment and c.pad_mode == "reflect" and c.translate >= min(ds.x_train.shape[-2:]):
        raise UserError(f"--pad-mode reflect mirrors at most the image's side less one pixel: --translate "
                        f"{c.translate} is too large for {tuple(ds.x_train.shape[-2:])} images")
    train = DeviceLoader(ds.x_train, ds.y_train, c.batch_size, train=True, augment=c.augment, flip=c.flip,
                         pad=c.translate, pad_mode=c.pad_mode, **common)
    test = DeviceLoader(ds.x_test, ds.y_test, c.batch_size, train=False, augment=False, **common)
    return train, test


def check_same_data(saved: dict, now: dict, spec: str) -> None:
    """A resumed run goes on with the images it started on. An npz:/folder: path is read from the folder the
    command runs in, so a resume from another folder (or a file replaced since) could load other images and
    train on them unsaid, with another run length too."""
    keys = [k for k in ("description", "classes", "in_channels", "image_shape") if k in saved]
    same = all(now[k] == saved[k] for k in keys) and all(
        math.isclose(a, b, rel_tol=1e-5) for a, b in zip([*saved["mean"], *saved["std"]], [*now["mean"], *now["std"]]))
    if not same:
        raise UserError(f"data {spec!r} now loads {now['description']}, but the run trained on "
                        f"{saved.get('description', saved['name'])}; a relative path is read from the current "
                        "folder: resume from the folder the run was started in, or put back the data it trained on")


def data_info(ds, spec: str, image_shape: tuple[int, int]) -> dict:
    """What a checkpoint must remember to feed new images the way training did: ``image_shape``
    (height, width), and ``image_size``, its height (all that checkpoints before non-square data held)."""
    return {"spec": spec, "name": ds.name, "classes": list(ds.classes), "mean": list(ds.mean),
            "std": list(ds.std), "in_channels": ds.in_channels, "image_size": int(image_shape[0]),
            "image_shape": [int(side) for side in image_shape],
            "description": ds.description(), "eval_split": getattr(ds, "eval_split", "test")}
