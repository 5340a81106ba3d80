"""`resnet-lab export`: a checkpoint's model for other tools: its weights (safetensors) or the whole
model (ONNX, which takes pixel values in [0, 1]: the normalisation is inside)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import UserError
from .arguments import output_path

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx"}  # the file name's suffix of each

EXAMPLES = """examples:
  resnet-lab export --checkpoint runs/r20/best.pt --format safetensors --out r20.safetensors
  resnet-lab export --checkpoint runs/r20/best.pt --out r20.onnx      # the format from the suffix
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint's weights (safetensors) or model (ONNX)", epilog=EXAMPLES,
                       description="Write the model weights of a checkpoint as .safetensors (config stored in the "
                                   "file's metadata), or the whole model as .onnx: input 'images', float32 N x C x H "
                                   "x W in [0, 1], the training normalisation inside; output 'logits'; class names "
                                   "in the metadata. With onnxruntime installed the ONNX model is checked against "
                                   "PyTorch before it is written (pip install 'resnet-lab[onnx]').",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=tuple(FORMATS),
                   help="default: from --out's suffix (.onnx: onnx), else safetensors")
    p.add_argument("--out", type=output_path, help="output file (default: next to the checkpoint)")
    p.add_argument("--ema", action="store_true",
                   help="the run's weight average (trained with --ema) instead of its weights")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.checkpoint import resolve_checkpoint_path

    fmt = _format(args.format, args.out)
    source = resolve_checkpoint_path(args.checkpoint)
    out = args.out or source.with_name(source.stem + ("-ema" if args.ema else "") + FORMATS[fmt])
    if fmt == "safetensors":
        from ..training.checkpoint import export_safetensors

        print(f"wrote {export_safetensors(source, out, ema=args.ema)}")
        return 0
    from ..training.onnx_export import ExportMismatch, export_onnx

    try:
        written = export_onnx(source, out, ema=args.ema)
    except ExportMismatch as err:
        print(f"resnet-lab: error: {err}", file=sys.stderr)
        return 1
    c, h, w = written["input_shape"]
    checked = ("not checked: onnxruntime is not installed (pip install 'resnet-lab[onnx]')"
               if written["difference"] is None else
               f"checked with onnxruntime: its logits differ from PyTorch's by at most {written['difference']:.1g} "
               "of the largest")
    print(f"wrote {written['path']} (ONNX opset {written['opset']}): input 'images' N x {c} x {h} x {w} in [0, 1], "
          f"output 'logits' N x {written['classes']}; {checked}")
    return 0


def _format(given: str | None, out: Path | None) -> str:
    """``--format``, else the one ``--out``'s suffix names; a suffix of the other format is refused."""
    by_suffix = {suffix: name for name, suffix in FORMATS.items()}
    named = by_suffix.get(out.suffix.lower()) if out is not None else None
    if given is not None and named is not None and named != given:
        raise UserError(f"--out {out} names a .{named} file but --format is {given}; give --out "
                        f"{out.with_suffix(FORMATS[given])} or --format {named}")
    return given or named or "safetensors"
