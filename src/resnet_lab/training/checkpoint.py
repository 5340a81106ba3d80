"""Checkpoints that survive anything: atomic writes, safe loads, clear refusals.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
``torch.load(weights_only=True)``: loading never executes code from the file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch

from ..errors import UserError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over ``path``, fsync the folder.

    A kill at any instant leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise in memory first, then write atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def resolve_checkpoint_path(path: str | Path) -> Path:
    """Accept a checkpoint file or a run directory (then its ``last.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; pass a .pt file or a run directory made by 'resnet-lab train'")
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint safely; a truncated, corrupted or foreign file is refused with a clear message."""
    path = resolve_checkpoint_path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint {path} is truncated, corrupted or not a resnet-lab checkpoint ({reason[:160]})") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path} is not a resnet-lab checkpoint (no model/config inside); "
                        "for plain state dicts use create_model(..., weights=PATH)")
    return state


def all_finite(state_dict: dict) -> bool:
    """True when every floating tensor of a state dict is finite (no NaN/Inf weights saved)."""
    floats = [t for t in state_dict.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not floats:
        return True
    # One check per device, so a GPU model costs one synchronisation, not one per tensor.
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in floats:
        by_device.setdefault(t.device, []).append(t)
    return all(torch.stack([torch.isfinite(t).all() for t in ts]).all().item() for ts in by_device.values())


def checkpoint_weights(state: dict, path: str | Path, ema: bool = False) -> dict:
    """The trained weights of a loaded checkpoint, or with ``ema`` their moving average."""
    if not ema:
        return state["model"]
    if state.get("ema") is None:
        raise UserError(f"{path} holds no weight average: its run was trained without --ema; drop --ema")
    return state["ema"]


def export_safetensors(checkpoint: str | Path, out: str | Path, ema: bool = False) -> Path:
    """Write a checkpoint's model weights (or with ``ema`` their average) as ``.safetensors``,
    with the config as metadata."""
    from safetensors.torch import save

    state = load_checkpoint(checkpoint)
    tensors = {k: v.contiguous() for k, v in checkpoint_weights(state, checkpoint, ema).items()}
    meta = {"format": "pt", "resnet_lab_config": json.dumps(state["config"]),
            "data_info": json.dumps(state.get("data_info", {}))}
    out = Path(out)
    atomic_write_bytes(out, save(tensors, metadata=meta))
    return out
