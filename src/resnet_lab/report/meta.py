"""The run's facts shown at the top of every report: settings, data, seeds, hardware, versions, run time."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from html import escape
from typing import Any

_VERSION_KEYS = ("python", "torch", "torchvision", "cuda")
_EXTRA_PACKAGES = ("resnet-lab", "numpy", "matplotlib")


def run_metadata(device: Any = "cpu") -> dict:
    """``{"hardware": {...}, "versions": {...}}`` for ``Report.set_meta(**run_metadata(device), ...)``.

    Built on :func:`resnet_lab.runtime.hardware_info`; library versions are split out of it and
    joined by resnet-lab's, numpy's and matplotlib's.
    """
    from ..runtime import hardware_info

    return metadata_from(hardware_info(device))


def metadata_from(hardware: Mapping[str, Any]) -> dict:
    """:func:`run_metadata` from a ``hardware_info`` record saved earlier (a run's result.json or
    config.json): the library versions it holds, joined by those of this process's packages."""
    info = dict(hardware)
    versions = {key: info.pop(key) for key in _VERSION_KEYS if key in info}
    for package in _EXTRA_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"hardware": info, "versions": versions}


def format_duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``."""
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _plain(value: Any) -> str:
    """Settings and seeds are shown as written (no thousands separators: a seed is a name, not a size)."""
    return "\u2014" if value is None else str(value)


def _value_html(value: Any) -> str:
    """A mapping becomes a nested list of terms; a list becomes comma-separated text."""
    if isinstance(value, Mapping):
        if not value:
            return "\u2014"
        items = "".join(f"<dt>{escape(str(k))}</dt><dd>{_value_html(v)}</dd>" for k, v in value.items())
        return f"<dl>{items}</dl>"
    if isinstance(value, (list, tuple, set, frozenset)):
        return escape(", ".join(_plain(v) for v in value)) if value else "\u2014"
    return escape(_plain(value))


def meta_html(meta: Mapping[str, Any]) -> str:
    """The "Run" block: one term per fact, in the order settings, data, seeds, hardware, versions, run time."""
    rows = [("Settings", meta["settings"]), ("Data", meta["data"]), ("Seeds", meta["seeds"]),
            ("Hardware", meta["hardware"]), ("Library versions", meta["versions"]),
            ("Run time", meta.get("no_run_time", "not recorded") if meta["run_time_s"] is None
             else format_duration(meta["run_time_s"]))]
    body = "".join(f"<dt>{escape(name)}</dt><dd>{_value_html(value)}</dd>" for name, value in rows)
    return f'<section class="meta" aria-label="Run"><h2>Run</h2><dl>{body}</dl></section>'
