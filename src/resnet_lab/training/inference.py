"""Use a trained checkpoint: rebuild its model, evaluate it, predict on image files."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable
from pathlib import Path

import torch

from ..errors import UserError, check_bool, check_positive_int, numpy_scalars_as_numbers
from ..models import create_model
from ..models.choices import MIN_IMAGE_SIZE
from ..runtime import pick_device
from ..text import counted
from .checkpoint import checkpoint_weights, load_checkpoint
from .config import TrainConfig


def model_from_checkpoint(path: str | Path, model_name: str | None = None, device="cpu", ema: bool = False):
    """(model in eval mode, checkpoint dict). ``model_name`` guards against using the wrong file;
    ``ema`` loads the run's weight average instead of its weights."""
    state = load_checkpoint(path)
    config = TrainConfig.from_dict(state["config"])
    if model_name is not None and model_name != config.model:
        raise UserError(f"checkpoint {path} holds a {config.model}, not a {model_name}; "
                        "pass the matching --model or none")
    info = state["data_info"]
    mean, std = info.get("mean") or [], info.get("std") or []
    if (not all(math.isfinite(v) for v in [*mean, *std]) or not all(v > 0 for v in std)
            or len(mean) != info["in_channels"] or len(std) != info["in_channels"]):  # one value per channel
        raise UserError(f"checkpoint {path} holds unusable normalisation statistics (mean {info['mean']}, std "
                        f"{info['std']}, {counted(info['in_channels'], 'input channel')}); the file is damaged")
    shape = info.get("image_shape", [info["image_size"]] * 2)
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(side, int) for side in shape)
            and min(shape) >= MIN_IMAGE_SIZE and shape[0] == info["image_size"]):
        raise UserError(f"checkpoint {path} holds an image size of {info['image_size']} (shape {shape}; at least "
                        f"{MIN_IMAGE_SIZE} a side); the file is damaged")
    with torch.random.fork_rng(devices=[]):  # its initialisation, overwritten next, leaves the caller's draws alone
        model = create_model(config.model, num_classes=len(info["classes"]), in_channels=info["in_channels"],
                             **config.model_options)
    try:
        model.load_state_dict(checkpoint_weights(state, path, ema))
    except RuntimeError:
        raise UserError(f"checkpoint {path} does not fit a {config.model} with its own options; "
                        "the file is damaged") from None
    return model.to(device).eval(), state


@numpy_scalars_as_numbers
def evaluate_checkpoint(path, data: str | None = None, data_dir=None, batch_size: int = 256, device="cpu",
                        ema: bool = False, flip: bool = False) -> dict:
    """Test loss/accuracy of a checkpoint on ``data`` (default: the data it was trained on);
    ``ema``: of its weight average; ``flip``: with flip test-time augmentation. The result says which
    (``weights``, ``tta``): a figure piped on without them could pass for the trained weights' own."""
    from ..data import DeviceLoader, FolderDataset, InMemoryDataset, load_data, make_folder_loaders, resize_dataset
    from .evaluation import check_flip_tta, evaluate
    from .precision import resolve_precision

    batch_size, flip = check_positive_int("batch_size", batch_size), check_bool("flip", flip)
    if isinstance(data, str) and not data.strip():  # else taken as no --data: the run's own data, named as given
        raise UserError("--data is empty (an unset shell variable?); give a data set, or leave --data out to "
                        "evaluate on the run's own data")
    device = pick_device(device)  # a name ("cuda:1") or a torch.device; a device this machine lacks is one line
    model, state = model_from_checkpoint(path, device=device, ema=ema)
    config, info = TrainConfig.from_dict(state["config"]), state["data_info"]
    ds = load_data(data or config.data, data_dir or config.data_dir, val_split=config.val_split if data is None else 0,
                   seed=config.split_seed)
    if isinstance(ds, InMemoryDataset) and tuple(ds.x_test.shape[2:]) != image_shape(info):  # H x W as trained:
        ds = resize_dataset(ds, image_shape(info))  # at the H x W it was trained at (--image-size: square)
    if data is None:
        check_own_data(path, info, config.data, ds.description())
    if ds.num_classes != len(info["classes"]) or getattr(ds, "in_channels", 3) != info["in_channels"]:
        shape = f"{counted(len(info['classes']), 'class', 'classes')}, {counted(info['in_channels'], 'channel')}"
        raise UserError(f"{ds.description()} does not fit the checkpoint's model ({shape}); evaluate it on "
                        "the data set it was trained on (its config.json says which)")
    if list(ds.classes) != list(info["classes"]):  # same count, other names or order: the labels would move
        differ = [f"{i}: {a} vs {b}" for i, (a, b) in enumerate(zip(info["classes"], ds.classes)) if a != b]
        raise UserError(f"{ds.description()} names its classes differently from the checkpoint (index: trained "
                        f"vs given: {'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}); give data with "
                        "the classes the model was trained on")
    if flip:
        check_flip_tta(ds)
    if isinstance(ds, FolderDataset):  # normalised with the training statistics too, not ImageNet's
        ds = dataclasses.replace(ds, mean=tuple(info["mean"]), std=tuple(info["std"]))
        _, loader = make_folder_loaders(ds, batch_size, info["image_size"], config.workers, config.seed)
    else:
        # normalise with the training statistics stored in the checkpoint, not the new data's
        loader = DeviceLoader(ds.x_test, ds.y_test, batch_size, mean=info["mean"], std=info["std"], device=device,
                              train=False, augment=False, hflip=False)
    device = torch.device(device)  # in the run's precision: its bf16 evaluations were not fp32's, image for image
    result = evaluate(model, loader, device, resolve_precision(config.precision, device), flip=flip)
    if not math.isfinite(result["loss"]):
        raise UserError(not_finite_message(path, f"its loss on {ds.description()} is {result['loss']}"))
    return {"test_acc": result["acc"], "test_loss": result["loss"], "n": result["n"],
            "split": getattr(ds, "eval_split", "test"), "weights": "ema" if ema else "trained", "tta": bool(flip)}


def check_own_data(path, info: dict, spec: str, now: str) -> None:
    """Evaluated on "its own" data, a checkpoint is on the images it was trained with: an npz:/folder: path is
    read from the current folder, and from another one it could name other images, whose figure would pass for
    the run's."""
    if info.get("description", now) != now:  # checkpoints of earlier versions hold no description
        raise UserError(f"checkpoint {path} was trained on {info['description']}, but its data {spec!r} now loads "
                        f"{now}; a relative path is read from the current folder: run from the folder the run was "
                        "started in, or give the data with --data")


PREDICT_BATCH = 256  # images read and classified at once by predict_images


@numpy_scalars_as_numbers
@torch.no_grad()
def predict_images(path, images: list[str], top_k: int = 5, device="cpu", ema: bool = False) -> list[dict]:
    """Top-k classes with probabilities for each image file (``images``: paths, or one path), each
    prepared as the model's evaluation images were (an image folder's: resized and centre-cropped as
    its validation images)."""
    from ..data import preprocess_images
    from ..data.folder import folder_transforms

    top_k = check_positive_int("top_k", top_k)  # 0 would give every image an empty list of classes
    device = pick_device(device)
    one = isinstance(images, (str, os.PathLike)) or not isinstance(images, Iterable)  # one path, not its letters
    images = [images] if one else list(images)
    wrong = [image for image in images if not isinstance(image, (str, os.PathLike))]
    if wrong:  # an image already loaded (a PIL image, an array, a tensor) or None: no path to read
        raise UserError(f"images are image file paths (str or Path), got a {type(wrong[0]).__name__}; save an image "
                        "held in memory to a file (e.g. PIL's image.save('x.png')) and pass its path")
    model, state = model_from_checkpoint(path, device=device, ema=ema)
    info = state["data_info"]
    folder = str(state["config"].get("data", "")).strip().lower().startswith("folder:")
    transform = folder_transforms(info["image_size"], info["mean"], info["std"])[1] if folder else None
    k = min(top_k, len(info["classes"]))
    chunks = [images[i:i + PREDICT_BATCH] for i in range(0, len(images), PREDICT_BATCH)] or [images]
    predictions = []
    for chunk in chunks:  # read and classified a batch at a time: memory stays flat however many are given
        x = preprocess_images(chunk, image_size=image_shape(info), in_channels=info["in_channels"],
                              mean=info["mean"], std=info["std"], transform=transform).to(device)
        probs = torch.softmax(model(x).float(), dim=1)
        if not torch.isfinite(probs).all():
            raise UserError(not_finite_message(path, "its class probabilities are NaN"))
        values, indices = probs.topk(k, dim=1)
        predictions += [{"image": str(img), "top": [{"class": info["classes"][i], "index": int(i), "prob": float(p)}
                                                    for p, i in zip(v.tolist(), idx.tolist())]}
                        for img, v, idx in zip(chunk, values, indices)]
    return predictions


def image_shape(info: dict) -> tuple[int, int]:
    """(height, width) of the images a checkpoint's model was trained on (older checkpoints: square)."""
    height, width = info.get("image_shape", [info["image_size"]] * 2)
    return height, width


def not_finite_message(path, what: str) -> str:
    return (f"checkpoint {path} gives non-finite outputs ({what}): finite weights that overflow in the forward "
            "pass; it cannot classify. Use an earlier checkpoint or train again with a lower learning rate")
