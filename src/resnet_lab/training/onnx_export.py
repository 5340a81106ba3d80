"""A checkpoint as an ONNX model for onnxruntime and other runtimes (``pip install 'resnet-lab[onnx]'``).

The graph takes ``images``: float32 (N, C, H, W) pixel values scaled to [0, 1], any batch size. The
training data's normalisation is inside it, so a caller cannot forget it or apply the wrong one. It
returns ``logits`` (N, classes); the class names, the image shape (height, width) and the run's config are in the
model's metadata. With onnxruntime installed, the model is checked before it is written: its
logits against PyTorch's on the same inputs, at two batch sizes.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError, writing
from ..files import as_path, atomic_write_bytes
from .checkpoint import exported_weights, refuse_pytorch_name
from .inference import image_shape, model_from_checkpoint, not_finite_message

# The largest |difference| between the ONNX and PyTorch logits, as a share of the largest |logit|
# (at least 1): float32 kernels that add in another order differ by about 1e-6.
TOLERANCE = 1e-4
CHECK_BATCHES = (2, 3)  # two sizes: the batch axis must stay free


class ExportMismatch(RuntimeError):
    """The exported model computes something else than the PyTorch model (an exporter fault)."""


class ScaledInput(nn.Module):
    """A model behind its training normalisation: it takes pixel values in [0, 1]."""

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def export_onnx(checkpoint: str | Path, out: str | Path, ema: bool = False) -> dict:
    """Write a checkpoint's model (or with ``ema`` its weight average) as ONNX; return ``path``,
    ``opset``, ``input_shape`` (C, H, W), ``classes`` and ``difference`` (the check's largest
    relative difference; None when onnxruntime is not installed)."""
    out = as_path(out, "out")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'model.onnx'}")
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"ONNX export needs {' and '.join(missing)}: pip install 'resnet-lab[onnx]'")
    if out.is_file() and out.stat().st_size and not _holds_onnx(out):  # the checkpoint itself, metrics, ...
        raise UserError(f"--out {out} already exists and is not an ONNX model, so writing there would lose it; "
                        "give a new file name such as model.onnx")
    refuse_pytorch_name(out, ".onnx")
    model, state = model_from_checkpoint(checkpoint, ema=ema)
    info = state["data_info"]
    scaled = ScaledInput(model, info["mean"], info["std"]).eval()
    shape = (info["in_channels"], *image_shape(info))
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.rand(batch, *shape, generator=generator) for batch in CHECK_BATCHES]
    with torch.no_grad():
        expected = [scaled(images) for images in inputs]
    if not all(torch.isfinite(logits).all() for logits in expected):
        raise UserError(not_finite_message(checkpoint, "its logits are NaN or infinite"))
    metadata = {"classes": json.dumps(info["classes"]), "input": "images in [0, 1], N x C x H x W",
                "image_shape": json.dumps(list(shape[1:])), "resnet_lab_config": json.dumps(state["config"]),
                "weights": exported_weights(ema)}
    data, opset = _onnx_model(scaled, inputs[0], metadata)
    difference = _difference_from_torch(data, inputs, expected)
    with writing(out):
        atomic_write_bytes(out, data)
    return {"path": out, "opset": opset, "input_shape": shape, "classes": len(info["classes"]),
            "difference": difference}


def _onnx_model(model: nn.Module, example: torch.Tensor, metadata: dict[str, str]) -> tuple[bytes, int]:
    """The serialised ONNX model (any batch size; ``metadata`` in its properties) and its opset."""
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["images"],
                                output_names=["logits"], dynamic_shapes=({0: "batch"},))
    proto = program.model_proto
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return proto.SerializeToString(), opset


def _difference_from_torch(data: bytes, inputs: list[torch.Tensor], expected: list[torch.Tensor]) -> float | None:
    """The largest difference of the ONNX model's logits from PyTorch's, relative to the largest
    |logit|; refuses more than ``TOLERANCE``. None without onnxruntime."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    for images, logits in zip(inputs, expected):
        got = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        worst = max(worst, (got - logits).abs().max().item() / max(logits.abs().max().item(), 1.0))
    if not worst <= TOLERANCE:
        raise ExportMismatch(f"the ONNX model's logits differ from PyTorch's by {worst:.2g} of the largest "
                             f"(tolerance {TOLERANCE:g}); nothing written. Please report it with the model's name")
    return worst


def _holds_onnx(path: Path) -> bool:
    """True when ``path`` reads as an ONNX model (an earlier export, which may be replaced)."""
    import onnx

    try:
        return len(onnx.load_model(path, load_external_data=False).graph.node) > 0
    except Exception:  # noqa: BLE001 - protobuf raises its own types for a file in another format
        return False
