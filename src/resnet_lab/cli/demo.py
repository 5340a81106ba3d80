"""`resnet-lab demo`: the main job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.choices import IN_MEMORY_DATA_SETS
from .arguments import output_path, prepare_output_folder

EXAMPLES = """examples:
  resnet-lab demo                                  # digits on the CPU: 185 s on 2 cores (bench_demo.py)
  resnet-lab demo --data cifar10 --device cuda     # the paper's setting on a GPU
  resnet-lab demo --data npz:cifar10-small.npz --epochs 10 --out runs/demo-cifar
"""


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: degradation + gradient survey + model comparison, one report",
                       description="Run the degradation experiment, the gradient survey and a comparison of "
                                   "resnet101 vs resnet152, print the headline findings and write one report.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="digits", help=f"{IN_MEMORY_DATA_SETS} (default digits)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--epochs", type=int, help="epochs per network in the degradation experiment")
    p.add_argument("--out", type=output_path, default=Path("runs/demo"),
                   help="output directory (default runs/demo); an earlier demo's there is replaced, other files "
                        "are never")
    p.set_defaults(func=run)


# What a demo writes: a folder holding only these is an earlier demo's (finished or not), and is rewritten.
DEMO_ENTRIES = {"degradation", "survey", "compare", "report.html", "demo.json"}


def _check_not_foreign(out: Path) -> None:
    """The demo rewrites its own folder, but never another command's files (a run's report.html)."""
    from ..errors import UserError

    foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES) if out.is_dir() else []
    if foreign:
        raise UserError(f"--out {out} holds files that are not a demo's ({', '.join(foreign[:3])}"
                        f"{', ...' if len(foreign) > 3 else ''}); give an empty or new folder")


def run(args) -> int:
    from ..errors import UserError
    from ..experiments.demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    from ..data import prepare_data

    prepare_data(args.data, in_memory=True)  # a misspelt name or missing file: one line before any work
    from ..training import TrainingInterrupted

    _check_not_foreign(args.out)
    prepare_output_folder(args.out)  # writable before three minutes of work
    try:
        demo = run_demo(data=args.data, device=args.device, out=args.out, epochs=args.epochs)
    except TrainingInterrupted as stop:  # the degradation part trains in this process: its loop stopped
        print(f"resnet-lab: demo interrupted at step {stop.step} of a network's training; its report was not "
              f"written; run the command again to start over", file=sys.stderr)
        return 128 + stop.signum
    print("\nHeadline findings:")
    for line in demo["headlines"]:
        print(f"  - {line}")
    print(f"\nreport: {demo['report']}  ({demo['run_time_s']:.0f} s)")
    return 0
