"""The in-memory image data set shared by every small-image source (digits, CIFAR, npz)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from resnet_lab.data.choices import IN_MEMORY_DATA_SETS
from resnet_lab.errors import UserError


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) after /255.

    Uses a 256-bin histogram per channel, so the sums are exact integers and the
    float64 result does not depend on summation order (and needs no float copy of the set).
    """
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise ValueError(f"expected uint8 (N, C, H, W) images, got {x.dtype} {tuple(x.shape)}")
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        hist = torch.bincount(x[:, c].reshape(-1), minlength=256).numpy().astype(np.float64)
        n = hist.sum()
        mean = float((hist * values).sum() / n)
        var = float((hist * (values - mean) ** 2).sum() / n)
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)



def check_global_batch(batch_size: int, world_size: int) -> None:
    """A global batch must be positive and split evenly over the ranks."""
    if batch_size <= 0:
        raise UserError(f"batch size must be positive, got {batch_size}")
    if batch_size % world_size:
        raise UserError(f"global batch size {batch_size} is not divisible by world size {world_size}; "
                        f"choose a batch size that is a multiple of {world_size}")

def stratified_holdout(labels: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with `k` held out, class proportions preserved.

    Each class gets floor(k * share) images, and the few left over go to the classes with
    the largest remainders (ties by class order), so CIFAR-10 with k=5000 holds out exactly
    500 per class. The choice within each class is a seeded shuffle, so it depends on
    (labels, k, seed) only. Both index arrays are sorted.
    """
    labels = np.asarray(labels)
    n = len(labels)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (k / n)
    take = np.floor(quota).astype(np.int64)
    leftover = k - int(take.sum())
    # Largest fractional part first; stable sort keeps class order for ties.
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(n, dtype=bool)
    mask[held_idx] = False
    return np.flatnonzero(mask), held_idx


@dataclass
class InMemoryDataset:
    """A whole image classification data set held as uint8 tensors on the CPU.

    `x_*` are uint8 (N, C, H, W); `y_*` are int64 (N,). `mean`/`std` are per channel on the
    [0, 1] scale and, when not given, are computed from the training images.
    `eval_split` names what `x_test` holds ("test", or a validation split held out of train).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    hflip: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    eval_split: str = "test"

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise ValueError(f"x_{split} must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.ndim != 1 or len(y) != len(x):
                raise ValueError(f"y_{split} must be int64 (N,) matching x_{split}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError("train and test images must have the same (C, H, W)")
        if self.mean is None or self.std is None:
            mean, std = channel_stats(self.x_train)
            self.mean = self.mean if self.mean is not None else mean
            self.std = self.std if self.std is not None else std
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def description(self) -> str:
        """One line, e.g. "CIFAR-10: 50,000 train / 10,000 test, 32x32x3, 10 classes"."""
        _, c, h, w = self.x_train.shape
        return (
            f"{self.name}: {len(self.x_train):,} train / {len(self.x_test):,} {self.eval_split}, "
            f"{h}x{w}x{c}, {self.num_classes} classes"
        )

    def with_holdout(self, k: int, seed: int = 0) -> "InMemoryDataset":
        """Hold out `k` training images (stratified, chosen by `seed`) as the evaluation split.

        The official test set is dropped from the result so that model selection never sees
        it (the paper's 45k/5k protocol). Mean/std are recomputed from the remaining images.
        """
        n = len(self.x_train)
        if not 0 < k < n:
            raise UserError(
                f"--val-split {k} is out of range: the training set has {n:,} images; "
                f"use a number between 1 and {n - 1}"
            )
        keep, held = stratified_holdout(self.y_train.numpy(), k, seed)
        keep_t, held_t = torch.from_numpy(keep), torch.from_numpy(held)
        return replace(
            self,
            name=f"{self.name} [val {k} held out of train, seed {seed}]",
            x_train=self.x_train[keep_t],
            y_train=self.y_train[keep_t],
            x_test=self.x_train[held_t],
            y_test=self.y_train[held_t],
            mean=None,
            std=None,
            eval_split="val",
        )


def limit_dataset(ds: InMemoryDataset, train: int | None = None, test: int | None = None,
                  seed: int = 0) -> InMemoryDataset:
    """A copy of an in-memory data set with at most ``train``/``test`` images, drawn by a seeded
    shuffle (the shared CIFAR files are sorted by class, so a plain prefix would be one class)."""
    if not isinstance(ds, InMemoryDataset):
        raise UserError(f"a limit on the number of images needs in-memory data ({IN_MEMORY_DATA_SETS})")
    for label, n in (("train", train), ("test", test)):
        if n is not None and n < 1:
            raise UserError(f"the {label} image limit must be at least 1, got {n}")
    g = torch.Generator().manual_seed(seed)

    def pick(x, y, n):
        if n is None or n >= len(y):
            return x, y
        idx = torch.randperm(len(y), generator=g)[:n].sort().values
        return x[idx].contiguous(), y[idx]

    x_train, y_train = pick(ds.x_train, ds.y_train, train)
    x_test, y_test = pick(ds.x_test, ds.y_test, test)
    name = ds.name if (train, test) == (None, None) else f"{ds.name} [subset]"
    return replace(ds, name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, mean=None, std=None)
