"""A data set from a NumPy .npz file: x_train, y_train, x_test, y_test (+ optional classes)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from resnet_lab.data.cache import stale_copies, uncompressed_copy
from resnet_lab.data.dataset import InMemoryDataset
from resnet_lab.errors import UserError, first_line
from resnet_lab.models.choices import MIN_IMAGE_SIZE

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
FORMAT_HINT = "expected arrays x_train/x_test uint8 (N,H,W) or (N,H,W,C) with C 1 or 3, y_train/y_test integer (N,)"
MAX_CLASSES = 100_000
GAP_FACTOR = 10  # at most this many classes per distinct training label
LABEL_RULE = f"labels must be class indices 0..K-1 with K <= {MAX_CLASSES:,}"
RENUMBER = "renumber them, e.g. y = np.unique(y, return_inverse=True)[1]"


def load_npz(path: str | Path) -> InMemoryDataset:
    """Load and validate an .npz data set; every problem is a UserError naming the array.

    Images are uint8 (N, H, W, C) with C in {1, 3}, or grayscale (N, H, W), at least 8x8.
    Labels are 1-D integers in [0, num_classes) where num_classes = max train label + 1 <= 100,000
    and at most 10x the number of distinct train labels (so one stray label cannot build a
    huge head); test labels must fall in that range. An optional string array `classes` names
    the classes.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"npz:{path} is a folder, not an .npz file; give the file (npz:FOLDER/NAME.npz), or "
                        "folder:PATH for a folder of images (PATH/train/<class>/*, PATH/val/<class>/*)")
    if not path.is_file():
        raise UserError(f"npz file not found: {path}; check the path after 'npz:'")
    arrays, members = _read_arrays(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise UserError(
            f"{path} has no array {', '.join(repr(k) for k in missing)} "
            f"(it has {', '.join(repr(m) for m in sorted(members)) or 'none'}); "
            f"{FORMAT_HINT}"
        )

    x_train = _images(arrays["x_train"], "x_train", path)
    x_test = _images(arrays["x_test"], "x_test", path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(
            f"{path}: x_train images are {_hwc(x_train)} but x_test images are {_hwc(x_test)}; "
            "both splits need the same size and channels"
        )
    y_train = _labels(arrays["y_train"], "y_train", len(x_train), path)
    y_test = _labels(arrays["y_test"], "y_test", len(x_test), path)
    num_classes = _num_classes(y_train, path)
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


def _read_arrays(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """(the arrays this loader uses, the names of all members); other members are never read."""
    try:
        # Sniff first: np.load would hand back a bare array for .npy, or try pickle on anything else.
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            raise UserError(f"{path} is a single .npy array, not an .npz archive; "
                            "save all four arrays together with np.savez")
        if not zipfile.is_zipfile(path):
            raise UserError(f"{path} is not a valid .npz archive (not a zip file); "
                            "save the arrays with np.savez or np.savez_compressed")
        copy = _read_uncompressed_copy(path)
        if copy is not None:
            return copy
        # Each member of an .npz is decompressed every time it is indexed: read each one once.
        with np.load(path, allow_pickle=False) as z:
            arrays, members = {k: _member(z, k, path) for k in z.files if k in (*REQUIRED, "classes")}, list(z.files)
        _write_uncompressed_copy(path, arrays, members)
        return arrays, members
    except UserError:  # already says what is wrong (a ValueError, so it must pass first)
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path} is not a readable .npz file ({first_line(e)}); "
                        "save it with np.savez or np.savez_compressed") from None


def _read_uncompressed_copy(path: Path) -> tuple[dict[str, np.ndarray], list[str]] | None:
    """The arrays from the uncompressed copy of ``path``, or None (no copy, or one that fails to load:
    it is read like any untrusted file, and then ignored and rewritten)."""
    try:
        with np.load(uncompressed_copy(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "_members"}
            return arrays, [str(m) for m in z["_members"]]
    except Exception:  # noqa: BLE001 - missing, damaged or foreign, or no home for it: the source decides
        return None


def _write_uncompressed_copy(path: Path, arrays: dict[str, np.ndarray], members: list[str]) -> None:
    """Keep an uncompressed copy of a compressed archive that has the four arrays (best effort: a
    read-only cache folder only costs the next load its inflating)."""
    with zipfile.ZipFile(path) as z:
        compressed = any(info.compress_type != zipfile.ZIP_STORED for info in z.infolist())
    if not compressed or any(k not in arrays for k in REQUIRED):
        return
    import io

    from ..files import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, _members=np.array(members), **arrays)
    try:
        copy = uncompressed_copy(path)
        atomic_write_bytes(copy, buffer.getvalue())
        for stale in stale_copies(copy):
            stale.unlink(missing_ok=True)
    except (OSError, RuntimeError):  # RuntimeError: no home folder (HOME unset, a user not in passwd)
        pass


def _member(z, key: str, path: Path) -> np.ndarray:
    try:
        array = z[key]
    except Exception:  # noqa: BLE001 - numpy/zlib/zipfile raise many types for a damaged member
        array = None  # allow_pickle=False refuses object arrays: an untrusted file never runs code
    if not isinstance(array, np.ndarray):  # a zip member that is not .npy comes back as bytes
        raise UserError(
            f"{path}: '{key}' is not a plain numeric array (it holds Python objects, is damaged or is not .npy); "
            f"save numeric arrays with np.savez"
        )
    return array




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
    if min(x.shape[1:3]) < MIN_IMAGE_SIZE:
        raise UserError(
            f"{path}: {name} images are {x.shape[1]}x{x.shape[2]} pixels; images must be at least "
            f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} (as for --image-size); upscale them"
        )
    return x


def _labels(y: np.ndarray, name: str, n: int, path: Path) -> np.ndarray:
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{path}: {name} has dtype {y.dtype}, expected integer class indices; "
                        "convert it with .astype(np.int64)")
    if y.ndim != 1:
        raise UserError(f"{path}: {name} has shape {y.shape}, expected 1-D (N,) class indices (not one-hot)")
    if len(y) != n:
        xname = "x" + name[1:]
        raise UserError(f"{path}: {name} has {len(y)} labels but {xname} has {n} images; they must match")
    # Checked before the int64 cast: uint64 labels above 2**63 would wrap to negative.
    if int(y.min()) < 0:
        raise UserError(f"{path}: {name} has negative label {int(y.min())}; {LABEL_RULE}")
    if int(y.max()) >= MAX_CLASSES:
        raise UserError(f"{path}: {name} has label {int(y.max())}; {LABEL_RULE}; {RENUMBER}")
    return y.astype(np.int64, copy=False)


def _num_classes(y_train: np.ndarray, path: Path) -> int:
    k, distinct = int(y_train.max()) + 1, len(np.unique(y_train))
    if k > GAP_FACTOR * distinct:
        raise UserError(
            f"{path}: y_train's largest label {k - 1} implies {k:,} classes but only {distinct} distinct labels occur; "
            f"{LABEL_RULE} and at most {GAP_FACTOR}x as many classes as distinct labels; {RENUMBER}"
        )
    return k


def _classes(names: np.ndarray | None, num_classes: int, path: Path) -> list[str]:
    if names is None:
        return [str(i) for i in range(num_classes)]
    if names.ndim != 1 or len(names) != num_classes:
        raise UserError(
            f"{path}: classes has shape {names.shape} but the labels need {num_classes} names; fix it or drop the array"
        )
    decoded = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]
    repeated = sorted({n for n in decoded if decoded.count(n) > 1})
    if repeated:  # predict and evaluate tell classes apart by name
        raise UserError(f"{path}: classes names more than one class {', '.join(repr(n) for n in repeated[:3])}"
                        f"{', ...' if len(repeated) > 3 else ''}; give each class its own name, or drop the array")
    return decoded
