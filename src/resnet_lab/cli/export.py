"""`resnet-lab export`: a checkpoint's weights for other tools."""

from __future__ import annotations

import argparse

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
    p.add_argument("--out", help="output file (default: next to the checkpoint)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.checkpoint import export_safetensors, resolve_checkpoint_path

    source = resolve_checkpoint_path(args.checkpoint)
    out = export_safetensors(source, args.out or source.with_suffix(".safetensors"))
    print(f"wrote {out}")
    return 0
