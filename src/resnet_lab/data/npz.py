"""A data set from a NumPy .npz file: x_train, y_train, x_test, y_test (+ optional classes)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from resnet_lab.data.dataset import InMemoryDataset
from resnet_lab.errors import UserError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
FORMAT_HINT = "expected arrays x_train/x_test uint8 (N,H,W) or (N,H,W,C) with C 1 or 3, y_train/y_test integer (N,)"


def load_npz(path: str | Path) -> InMemoryDataset:
    """Load and validate an .npz data set; every problem is a UserError naming the array.

    Images are uint8 (N, H, W, C) with C in {1, 3}, or grayscale (N, H, W). Labels are 1-D
    integers in [0, num_classes) where num_classes = max train label + 1; test labels must
    fall in that range. An optional string array `classes` names the classes.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"npz file not found: {path}; check the path after 'npz:'")
    arrays = _read_arrays(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise UserError(
            f"{path} has no array {', '.join(repr(k) for k in missing)} (it has {', '.join(sorted(arrays)) or 'none'}); "
            f"{FORMAT_HINT}"
        )

    x_train = _images(arrays["x_train"], "x_train", path)
    x_test = _images(arrays["x_test"], "x_test", path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(
            f"{path}: x_train images are {_hwc(x_train)} but x_test images are {_hwc(x_test)}; both splits need the same size and channels"
        )
    y_train = _labels(arrays["y_train"], "y_train", len(x_train), path)
    y_test = _labels(arrays["y_test"], "y_test", len(x_test), path)
    num_classes = int(y_train.max()) + 1
    if len(y_test) and int(y_test.max()) >= num_classes:
        raise UserError(
            f"{path}: y_test has label {int(y_test.max())} but y_train only has labels up to {num_classes - 1}; "
            f"every test class must appear in training"
        )
    classes = _classes(arrays.get("classes"), num_classes, path)
    return InMemoryDataset(
        name=path.stem,
        # (N, H, W, C) -> (N, C, H, W): the layout torch convolutions expect.
        x_train=torch.from_numpy(x_train).permute(0, 3, 1, 2).contiguous(),
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test).permute(0, 3, 1, 2).contiguous(),
        y_test=torch.from_numpy(y_test),
        classes=classes,
        hflip=True,
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    # Each member of an .npz is decompressed every time it is indexed: read each one once.
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise UserError(f"{path} is a single .npy array, not an .npz archive; {FORMAT_HINT}")
            return {k: z[k] for k in z.files}
    except UserError:
        raise
    except ValueError as e:
        # allow_pickle=False refuses object arrays, which also keeps untrusted files from running code.
        raise UserError(f"{path} cannot be read without pickle ({e}); save plain numeric arrays with np.savez") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz file ({e}); save it with np.savez or np.savez_compressed") from None


def _hwc(x: np.ndarray) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _images(x: np.ndarray, name: str, path: Path) -> np.ndarray:
    if x.dtype != np.uint8:
        raise UserError(
            f"{path}: {name} has dtype {x.dtype}, expected uint8 pixel values 0-255; "
            f"convert it, e.g. (x * 255).round().astype(np.uint8) for floats in [0, 1]"
        )
    if x.ndim == 3:
        x = x[..., None]  # grayscale (N, H, W) -> (N, H, W, 1)
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise UserError(f"{path}: {name} has shape {x.shape}; {FORMAT_HINT}")
    if min(x.shape) == 0:
        raise UserError(f"{path}: {name} is empty (shape {x.shape}); each split needs at least one image")
    return x


def _labels(y: np.ndarray, name: str, n: int, path: Path) -> np.ndarray:
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: {name} has dtype {y.dtype}, expected integer class indices; convert it with .astype(np.int64)")
    if y.ndim != 1:
        raise UserError(f"{path}: {name} has shape {y.shape}, expected 1-D (N,) class indices (not one-hot)")
    if len(y) != n:
        xname = "x" + name[1:]
        raise UserError(f"{path}: {name} has {len(y)} labels but {xname} has {n} images; they must match")
    if int(y.min()) < 0:
        raise UserError(f"{path}: {name} has negative label {int(y.min())}; labels must be class indices 0..K-1")
    return y.astype(np.int64, copy=False)


def _classes(names: np.ndarray | None, num_classes: int, path: Path) -> list[str]:
    if names is None:
        return [str(i) for i in range(num_classes)]
    if names.ndim != 1 or len(names) != num_classes:
        raise UserError(
            f"{path}: classes has shape {names.shape} but the labels need {num_classes} names; fix it or drop the array"
        )
    return [str(n) for n in names]
