"""Where resnet-lab keeps things on disk between runs: downloaded data sets, uncompressed .npz copies, and
the folder torch.compile's kernels are cached in."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """resnet-lab's folder for what it keeps between runs: `$XDG_CACHE_HOME/resnet-lab`, else
    `~/.cache/resnet-lab` (the data sets' default home, and torch.compile's kernels)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "resnet-lab"


def default_data_dir() -> Path:
    """The cache folder for downloaded data sets: `$RESNET_LAB_DATA` if set, else `cache_home()`."""
    explicit = os.environ.get("RESNET_LAB_DATA")
    return Path(explicit).expanduser() if explicit else cache_home()


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """`data_dir` if given (with `~` expanded), else `default_data_dir()`."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def uncompressed_copy(path: Path) -> Path:
    """Where the uncompressed copy of a compressed .npz lives: a folder per source path, a file per
    version of it (its size and mtime).

    Why: np.savez_compressed files are inflated on every load (0.5 s for the 10k CIFAR-10 subset,
    about 3 s for all of CIFAR-10 on a CPU); an uncompressed copy is read at disk speed. A changed
    source gets a new name, so a stale copy is never read; the folder lets the writer remove the
    copies of earlier versions (``stale_copies``).
    """
    import hashlib

    stat = path.stat()
    folder = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return default_data_dir() / "npz-uncompressed" / folder / f"{stat.st_size}-{stat.st_mtime_ns}.npz"


def stale_copies(copy: Path) -> list[Path]:
    """The other copies beside ``copy``: of earlier versions of its source, which a changed source never
    reads again (each as large as the data: a data set saved again and again would fill the disk)."""
    return [p for p in copy.parent.glob("*.npz") if p.name != copy.name]
