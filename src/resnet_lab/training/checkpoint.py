"""Checkpoints that survive anything: atomic writes, safe loads, clear refusals.

A checkpoint is a plain dict of tensors, numbers, strings and lists, so it loads with
``torch.load(weights_only=True)``: loading never executes code from the file.
"""

from __future__ import annotations

import errno
import io
import json
import warnings
from pathlib import Path

import torch

from ..errors import UserError, check_bool, writing
from ..files import as_path, atomic_write_bytes, runs_inside

# What evaluate, predict and export read from a checkpoint besides its weights (see ``_check_complete``).
_DATA_INFO_TYPES = {"classes": list, "in_channels": int, "image_size": int, "mean": list, "std": list}
# Lines of torch's load errors that advise about torch.load itself, not about the file.
_TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Serialise in memory first, then write atomically."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def resolve_checkpoint_path(path: str | Path) -> Path:
    """Accept a checkpoint file or a run directory (then its ``last.pt``)."""
    path = as_path(path, "checkpoint")
    if path.is_dir() and not (path / "last.pt").is_file() and (path / "config.json").is_file():  # a run's, too early
        best = path / "best.pt"
        fix = f"pass {best}" if best.is_file() else "wait for its first checkpoint, or train it"
        raise UserError(f"run directory {path} holds no last.pt yet (a run writes it at the end of an epoch; "
                        f"still training, stopped before, or deleted); {fix}")
    if path.is_dir():
        inside = None if (path / "config.json").exists() else runs_inside(path)
        if inside:
            raise UserError(f"checkpoint {path / 'last.pt'} does not exist; {inside}")
        path = path / "last.pt"
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; "
                        "pass a .pt file or a run directory made by 'resnet-lab train'")
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint safely; a truncated, corrupted, foreign or incomplete file is refused in one line."""
    path = resolve_checkpoint_path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. torch's note on protocol-4 pickles: the refusal says enough
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        # The machine refused the read (permissions, an I/O error), not the file's content: one line naming the
        # file, exit 1. But EINVAL is the content: torch's zip reader seeks before the start of a zip file cut
        # short under 64 KiB (looking for its end record), and the OS refuses that seek.
        if isinstance(exc, OSError) and exc.errno not in (None, errno.EINVAL):
            raise
        raise UserError(f"checkpoint {path} is truncated, corrupted or not a resnet-lab checkpoint "
                        f"({_load_failure(exc)}); give a last.pt or best.pt that 'resnet-lab train' wrote (the "
                        "run's other one may still load)") from None
    _check_complete(state, path)
    return state


def _load_failure(exc: Exception) -> str:
    """The first sentence of torch's reason, without its advice on re-running torch.load."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(_TORCH_ADVICE)]
    reason = lines[0].split(". ")[0].rstrip(". ") if lines else type(exc).__name__
    return reason[:120]


def _check_complete(state, path: Path) -> None:
    """Everything evaluate, predict and export read, checked in one place."""
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise UserError(f"{path} is not a resnet-lab checkpoint (no model/config inside); "
                        "for a plain state dict or an exported .safetensors use "
                        "create_model(NAME, num_classes=..., in_channels=..., weights=PATH)")
    missing = [k for k in ("model", "config", "data_info") if not isinstance(state.get(k), dict)]
    if not missing:
        config, info = state["config"], state["data_info"]
        missing += [] if isinstance(config.get("model"), str) else ["config.model"]
        missing += [] if isinstance(config.get("model_options", {}), dict) else ["config.model_options"]
        missing += [f"data_info.{k}" for k, kind in _DATA_INFO_TYPES.items() if not isinstance(info.get(k), kind)]
    if missing:
        raise UserError(f"checkpoint {path} is not a complete resnet-lab checkpoint: missing {', '.join(missing)}; "
                        "use a last.pt or best.pt written by 'resnet-lab train'")


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
    if not check_bool("ema", ema):
        return state["model"]
    if state.get("ema") is None:
        raise UserError(f"{path} holds no weight average: its run was trained without --ema; drop --ema")
    return state["ema"]


def refuse_pytorch_name(out: Path, suffix: str) -> None:
    """An export is never written under a PyTorch file's name (.pt, .pth): torch.load, and
    create_model(weights=), would read it as a pickle and fail."""
    if out.suffix.lower() in (".pt", ".pth"):
        raise UserError(f"--out {out} names a PyTorch file, which torch.load would fail to read: export writes "
                        f".safetensors or .onnx; give --out {out.with_suffix(suffix)}")


def exported_weights(ema: bool) -> str:
    """An export's ``weights`` metadata: ``"ema"`` (the run's weight average) or ``"trained"``."""
    return "ema" if ema else "trained"


def export_safetensors(checkpoint: str | Path, out: str | Path, ema: bool = False) -> Path:
    """Write a checkpoint's model weights (or with ``ema`` their average) as ``.safetensors``,
    with the config as metadata. Weights that do not load into the model the config describes are refused."""
    from safetensors.torch import save

    from .inference import model_from_checkpoint  # imports this module

    out = as_path(out, "out")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'model.safetensors'}")
    if out.is_file() and out.stat().st_size and not _holds_safetensors(out):  # the checkpoint itself, metrics, ...
        raise UserError(f"--out {out} already exists and is not a .safetensors file, so writing there would lose "
                        "it; give a new file name such as model.safetensors")
    refuse_pytorch_name(out, ".safetensors")
    _, state = model_from_checkpoint(checkpoint, ema=ema)  # builds the config's model, loads strictly
    tensors = {k: v.contiguous() for k, v in checkpoint_weights(state, checkpoint, ema).items()}
    meta = {"format": "pt", "resnet_lab_config": json.dumps(state["config"]),
            "data_info": json.dumps(state["data_info"]), "weights": exported_weights(ema)}
    with writing(out):
        atomic_write_bytes(out, save(tensors, metadata=meta))
    return out


def _holds_safetensors(path: Path) -> bool:
    """True when ``path`` reads as a .safetensors file (an earlier export, which may be replaced)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            return True
    except Exception:  # noqa: BLE001 - safetensors raises its own types for a file in another format
        return False
