"""`resnet-lab predict`: top-k classes for image files."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  resnet-lab predict --checkpoint runs/r20/best.pt digit.png
  resnet-lab predict --checkpoint runs/cifar/best.pt cat.jpg dog.jpg --top-k 3 --json
"""


def register(sub) -> None:
    p = sub.add_parser("predict", help="classify image files with a checkpoint", epilog=EXAMPLES,
                       description="Print the top-k classes with probabilities for each image (any size; "
                                   "transparent parts on white, as an image viewer shows them; resized and "
                                   "normalised as the model's training data was).",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .pt file or a run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--ema", action="store_true",
                   help="the run's weight average (trained with --ema) instead of its weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.inference import predict_images

    results = predict_images(args.checkpoint, args.images, args.top_k, args.device, ema=args.ema)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        print(r["image"])
        for t in r["top"]:
            print(f"  {t['prob']:7.2%}  {t['class']}")
    return 0
