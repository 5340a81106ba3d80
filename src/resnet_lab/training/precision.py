"""Mixed precision: which dtype a run computes in, and the one autocast helper."""

from __future__ import annotations

import contextlib

import torch


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the device computes it natively (a recent GPU), else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast(device: torch.device, precision: str, cache_enabled: bool = True):
    """``torch.autocast`` for bf16/fp16, nothing for fp32. A CUDA graph passes ``cache_enabled=False``:
    it must not reuse autocast's weight-cast cache across replays."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache_enabled)
