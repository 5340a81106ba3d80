"""Where downloaded data sets live on disk."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """The cache folder for downloaded data sets.

    `$RESNET_LAB_DATA` if set, else `$XDG_CACHE_HOME/resnet-lab`, else `~/.cache/resnet-lab`.
    """
    explicit = os.environ.get("RESNET_LAB_DATA")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "resnet-lab"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """`data_dir` if given (with `~` expanded), else `default_data_dir()`."""
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
