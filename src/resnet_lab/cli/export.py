"""`resnet-lab export`: a checkpoint's weights for other tools."""

from __future__ import annotations

import argparse

from .arguments import output_path

EXAMPLES = """examples:
  resnet-lab export --checkpoint runs/r20/best.pt --format safetensors --out r20.safetensors
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="write a checkpoint's weights as safetensors", epilog=EXAMPLES,
                       description="Write the model weights of a checkpoint as .safetensors "
                                   "(config stored in the file's metadata).",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--format", choices=("safetensors",), default="safetensors")
    p.add_argument("--out", type=output_path, help="output file (default: next to the checkpoint)")
    p.add_argument("--ema", action="store_true",
                   help="the run's weight average (trained with --ema) instead of its weights")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.checkpoint import export_safetensors, resolve_checkpoint_path

    source = resolve_checkpoint_path(args.checkpoint)
    default = source.with_name(source.stem + ("-ema" if args.ema else "") + ".safetensors")
    out = export_safetensors(source, args.out or default, ema=args.ema)
    print(f"wrote {out}")
    return 0
