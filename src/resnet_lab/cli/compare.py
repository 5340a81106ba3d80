"""`resnet-lab compare MODEL MODEL...`: measure models side by side and say which to choose."""

from __future__ import annotations

import argparse
import json
import sys

from .arguments import output_folder_held, output_path, prepare_output_folder
from .model_options import add_model_options, model_options

EXAMPLES = """examples:
  resnet-lab compare                                  # resnet101 vs resnet152 on the best device
  resnet-lab compare resnet18 resnet34 resnet50 --quick
  resnet-lab compare resnet101 resnet152 --device cuda --batch-size 128 --precision bf16 --channels-last
  resnet-lab compare resnet56 resnet110 --json
  resnet-lab compare resnet101 resnet152 --out runs/compare   # compare.json, compare.png/.svg, report.html
"""


def register(sub) -> None:
    from ..experiments.compare.settings import DEFAULTS, PRECISIONS, QUICK

    cpu, gpu = DEFAULTS["cpu"], DEFAULTS["cuda"]

    p = sub.add_parser(
        "compare", help="measure models side by side and say which to choose",
        description="Measure models side by side in one run (interleaved, warm-up, medians): parameters, GFLOPs, "
                    "weighted layers, peak training memory, training and inference throughput, batch-1 latency, "
                    "plus the published accuracy (torchvision's ImageNet top-1 where it has weights, the papers' "
                    "CIFAR-10 test accuracy for the CIFAR nets); then say which model fits "
                    "which budget. Progress goes to stderr.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL", default=["resnet101", "resnet152"],
                   help="model names (default: resnet101 resnet152)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default)")
    p.add_argument("--batch-size", type=int, help="batch for throughput and memory (default: "
                                                  f"{cpu['batch_size']} on CPU, {gpu['batch_size']} on GPU)")
    p.add_argument("--image-size", type=int, help="input height = width (default: each model's native size)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16 = autocast (default fp32)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and inputs")
    p.add_argument("--warmup", type=int,
                   help=f"untimed rounds (default: {cpu['warmup']} on CPU, {gpu['warmup']} on GPU)")
    p.add_argument("--repeats", type=int, help="timed rounds, the median is reported "
                                               f"(default: {cpu['repeats']} on CPU, {gpu['repeats']} on GPU)")
    p.add_argument("--quick", action="store_true",
                   help=f"small and fast: {QUICK['image_size']}x{QUICK['image_size']} for ImageNet nets, batch "
                        f"{QUICK['batch_size']}, {QUICK['repeats']} rounds (explicit options win)")
    p.add_argument("--num-classes", type=int, help="classifier size (default: the model's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    p.add_argument("--out", type=output_path, metavar="DIR",
                   help="also write compare.json, the chart and report.html here")
    add_model_options(p, model_flag=False)
    p.set_defaults(func=run)


def run(args) -> int:
    with output_folder_held(args.out, "comparison"):  # one command at a time in a folder
        return _run(args)


def _run(args) -> int:
    from ..errors import writing
    from ..experiments.compare import compare_models, compare_text, write_compare_outputs

    if args.out:  # checked before the measuring, and an earlier comparison is never replaced
        prepare_output_folder(args.out, "compare.json", "comparison")
    result = compare_models(
        args.models, device=args.device, batch_size=args.batch_size, image_size=args.image_size,
        precision=args.precision, channels_last=args.channels_last, warmup=args.warmup, repeats=args.repeats,
        num_classes=args.num_classes, model_options=model_options(args), quick=args.quick,
        log=lambda msg: print(f"compare: {msg}", file=sys.stderr))
    if args.out:
        with writing(args.out):
            written = write_compare_outputs(result, args.out)
        print(f"compare: wrote {', '.join(str(p) for p in written.values() if p)}", file=sys.stderr)
    print(json.dumps(result, indent=2) if args.json else compare_text(result))
    return 0
