"""`resnet-lab evaluate`: test loss and accuracy of a checkpoint."""

from __future__ import annotations

import argparse
import json

EXAMPLES = """examples:
  resnet-lab evaluate --checkpoint runs/r20/best.pt
  resnet-lab evaluate --checkpoint runs/r20 --data npz:other.npz --json
"""


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="test loss and accuracy of a checkpoint", epilog=EXAMPLES,
                       description="Evaluate a checkpoint on the test split of a data set (default: its own).",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .pt file or a run directory (uses its last.pt)")
    p.add_argument("--data", help="data set spec (default: the one the model was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--ema", action="store_true",
                   help="the run's weight average (trained with --ema) instead of its weights")
    p.add_argument("--tta", action="store_true", help="average each image's logits with its mirror image's")
    p.add_argument("--json", action="store_true",
                   help='print {"test_acc": ..., "test_loss": ..., "n": ..., "split": ..., "weights": "trained" or '
                        '"ema", "tta": true or false}')
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.inference import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.data, args.data_dir, args.batch_size, args.device,
                                 ema=args.ema, flip=args.tta)
    if args.json:
        print(json.dumps(result))
    else:
        how = [what for what, used in (("weight average", args.ema), ("flip TTA", args.tta)) if used]
        print(f"{result['split']} accuracy {result['test_acc']:.4f}, loss {result['test_loss']:.4f} on "
              f"{result['n']:,} images{' (' + ', '.join(how) + ')' if how else ''}")
    return 0
