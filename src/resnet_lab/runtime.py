"""Facts about where code runs: device choice, hardware and library versions for records, and
the writing of such records.

torch is imported inside the functions that need it: the CLI's entry point uses this module, and
a command such as ``resnet-lab report`` never needs torch (its import is about 1.5 s).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def pick_device(requested: str | None = None, flag: str = "--device") -> torch.device:
    """``auto``/None -> cuda if available, else mps, else cpu; a device this machine lacks is refused
    (naming ``flag``, the option that asked for it: a sweep's is ``--devices``)."""
    import torch

    from .errors import UserError

    if requested in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    unknown = f"unknown device {requested!r}; use cpu, cuda, cuda:N, mps or auto"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(unknown) from None
    if device.type not in ("cpu", "cuda", "mps") or (device.type == "cpu" and device.index not in (None, 0)):
        raise UserError(unknown)
    _check_available(device, flag)
    return device


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _check_available(device: torch.device, flag: str = "--device") -> None:
    """Refuse here, in one line, what would otherwise fail deep inside torch on first use."""
    import torch

    from .errors import UserError

    if device.type == "mps" and not _mps_available():
        raise UserError(f"{flag} mps was asked for but MPS (Apple GPU) is not available here; "
                        f"use {flag} cpu or auto")
    if device.type != "cuda":
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise UserError(f"{flag} {device} was asked for but no CUDA GPU is visible; use {flag} cpu")
    if device.index is not None and device.index >= count:
        raise UserError(f"{flag} {device}: only {count} CUDA GPU(s) visible (cuda:0 to cuda:{count - 1}); "
                        "pick one of those")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: str | torch.device = "cpu") -> dict:
    """Everything needed to interpret a measurement later."""
    import torch

    info = {
        "device": str(device),
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": package_version("torchvision"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def package_version(name: str) -> str | None:
    """The installed version of ``name`` without importing it (importing torchvision takes ~1 s)."""
    module = sys.modules.get(name)
    if module is not None and hasattr(module, "__version__"):
        return module.__version__
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def is_main_process() -> bool:
    """Rank 0 of a torchrun group, or a process not started by one: the one that writes and prints."""
    return os.environ.get("RANK", "0") == "0"


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def process_age_s() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included); None off Linux."""
    try:
        with open("/proc/self/stat") as f:  # field 22: start time in clock ticks after boot
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
