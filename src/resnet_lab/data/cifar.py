"""CIFAR-10/100 from the official python-format archives: find, download, verify, extract, read.

Order of preference, so that offline machines work whenever the data is on disk:
1. an extracted copy in the official layout in the cache folder;
2. the official archive in the cache folder (checksum verified, then extracted once);
3. a download of the official archive (checksum verified before it is kept).
Extraction goes to a temporary folder that is renamed into place, so an interrupted run
never leaves a half-extracted copy that would later be taken for a complete one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from resnet_lab.data.cache import resolve_data_dir
from resnet_lab.data.dataset import InMemoryDataset
from resnet_lab.errors import UserError, first_line

# Expected MD5 of each official archive, by file name (module level so tests can patch it).
EXPECTED_MD5: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}

BASE_URL = "https://www.cs.toronto.edu/~kriz/"
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class CifarVariant:
    """Where one CIFAR variant lives and how its pickles are laid out."""

    title: str
    archive: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str

    @property
    def url(self) -> str:
        return BASE_URL + self.archive

    @property
    def required_files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)


VARIANTS: dict[str, CifarVariant] = {
    "cifar10": CifarVariant(
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
    ),
    "cifar100": CifarVariant(
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
    ),
}


def load_cifar(variant: str, data_dir: str | Path | None = None, download: bool = True) -> InMemoryDataset:
    """Load "cifar10" or "cifar100" (fine labels), fetching the official archive if needed."""
    v = VARIANTS[variant]
    return _read_extracted(v, fetch_cifar(variant, data_dir, download))


def fetch_cifar(variant: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """The extracted folder of "cifar10" or "cifar100", downloaded and extracted first if needed
    (nothing is read: a process that starts training workers fetches it once for them)."""
    v = VARIANTS[variant]
    root = resolve_data_dir(data_dir)
    folder = root / v.folder
    if not folder.exists():
        archive = root / v.archive
        verified = False
        if not archive.exists():
            _fetch_archive(v, root, download)
            verified = True
        _extract(v, archive, root, verified=verified)
    missing = [name for name in v.required_files if not (folder / name).is_file()]
    if missing:
        raise UserError(
            f"{folder} is incomplete (missing {', '.join(missing)}); delete that folder and run again "
            f"to re-extract {v.archive}"
        )
    return folder


# ----------------------------------------------------------------------------- download


def _download(url: str, dest: Path) -> None:
    """Write the bytes at `url` to `dest` (the network step alone; tests replace it)."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        # A progress bar only on a terminal: logs and CI output stay clean.
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                  disable=not sys.stderr.isatty()) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))


def _fetch_archive(v: CifarVariant, root: Path, download: bool) -> None:
    """Download the archive into `root` via a temp file; keep it only if the checksum matches."""
    how_to = (
        f"put {v.archive} (from {v.url}) in {root}, or its extracted folder {v.folder}/ there, "
        f"or point --data-dir (or the RESNET_LAB_DATA variable) at a folder that has one"
    )
    if not download:
        raise UserError(f"{v.title} is not in {root} and downloading is off: {how_to}")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the data folder {root} ({e.strerror}): {how_to}") from None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{v.archive}.", suffix=".part", dir=root)
    except OSError as e:
        raise _unwritable(root, e) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _download(v.url, tmp)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", None) or e
            raise UserError(f"could not download {v.archive} ({reason}): {how_to}") from None
        got = _md5(tmp)
        expected = EXPECTED_MD5[v.archive]
        if got != expected:
            raise UserError(
                f"the downloaded {v.archive} has MD5 {got}, expected {expected} (corrupted download "
                f"or a proxy changed it): run again, or {how_to}"
            )
        os.replace(tmp, root / v.archive)
    finally:
        tmp.unlink(missing_ok=True)


def _unwritable(root: Path, e: OSError) -> UserError:
    return UserError(
        f"cannot write to the data folder {root} ({e.strerror or e}); choose a writable --data-dir "
        f"(or set RESNET_LAB_DATA), or make {root} writable"
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- extraction


def _extract(v: CifarVariant, archive: Path, root: Path, *, verified: bool) -> None:
    """Extract `archive` into `root/v.folder` atomically (temp folder, then rename)."""
    if not verified:
        got, expected = _md5(archive), EXPECTED_MD5[v.archive]
        if got != expected:
            raise UserError(
                f"{archive} has the wrong MD5 checksum ({got}, expected {expected}): the file is "
                f"corrupt or incomplete; delete it and run again to download it afresh"
            )
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    except OSError as e:
        raise _unwritable(root, e) from None
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                # The "data" filter refuses absolute paths, links out of the folder, devices.
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(
                f"cannot extract {archive} ({e}); delete it and run again to download it afresh"
            ) from None
        extracted = tmp / v.folder
        if not extracted.is_dir():
            raise UserError(
                f"{archive} does not contain the folder {v.folder}/ of the official release; "
                f"delete it and run again to download it afresh"
            )
        try:
            os.replace(extracted, root / v.folder)
        except OSError:
            # Another process (e.g. another rank) renamed its copy in first: that one is complete.
            if not (root / v.folder).is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- reading


# Everything an official batch (numpy array + lists + dict) refers to by name. `_codecs.encode`
# is how protocol-2 pickles from Python 3 spell bytes; `_frombuffer` is protocol 5's arrays.
SAFE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles data only: any other global (os.system, eval, ...) is refused, so a planted
    file in the cache folder cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which no CIFAR file needs")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # NumPy 2 name, no warning
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    # The official pickles come from Python 2: bytes keys; accept str keys from re-saved copies.
    with open(path, "rb") as f:
        try:
            raw = _BatchUnpickler(f, encoding="bytes").load()
        except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
            reason = first_line(e)
            raise UserError(
                f"refusing to read {path} ({reason}): it is not an official CIFAR file; "
                f"delete its folder and run again"
            ) from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} is not a CIFAR pickle (not a dict); delete its folder and run again")
    return {k.decode() if isinstance(k, bytes) else k: val for k, val in raw.items()}


def _field(d: dict, key: str, path: Path):
    if key not in d:
        raise UserError(f"{path} has no '{key}' entry, so it is not in the official format; "
                        "delete its folder and run again")
    return d[key]


def _read_split(v: CifarVariant, folder: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in names:
        path = folder / name
        d = _unpickle(path)
        try:
            data = np.asarray(_field(d, "data", path), dtype=np.uint8)
            labels = np.asarray(_field(d, v.label_key, path), dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{path} holds data or labels that are not numbers; "
                            "delete its folder and run again") from None
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
            raise UserError(f"{path} has data of shape {data.shape}, expected (N, 3072); "
                            "delete its folder and run again")
        xs.append(data)
        ys.append(labels)
    # Each row is 1024 red, then 1024 green, then 1024 blue values, row-major: already CHW.
    x = torch.from_numpy(np.concatenate(xs)).reshape(-1, 3, 32, 32)
    return x, torch.from_numpy(np.concatenate(ys))


def _read_extracted(v: CifarVariant, folder: Path) -> InMemoryDataset:
    x_train, y_train = _read_split(v, folder, v.train_files)
    x_test, y_test = _read_split(v, folder, (v.test_file,))
    meta_path = folder / v.meta_file
    names = _field(_unpickle(meta_path), v.names_key, meta_path)
    if not isinstance(names, (list, tuple)):
        raise UserError(f"{meta_path} has no list of class names; delete its folder and run again")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    for split, y in (("train", y_train), ("test", y_test)):
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise UserError(
                f"{folder} has {split} labels outside 0..{len(classes) - 1}; delete that folder and run again"
            )
    return InMemoryDataset(
        name=v.title,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        classes=classes,
        hflip=True,
    )
