"""`resnet-lab survey`: measure the claims people make about training deep nets, one switch at a time."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..data.choices import IN_MEMORY_DATA_SETS
from ..experiments.survey.design import DEFAULTS
from .arguments import jobs_value, output_folder_held, output_path, prepare_output_folder

EXAMPLES = """examples:
  resnet-lab survey --depths 8 20 56 --image-size 8 --steps 24 --batches-at-init 2 --threads 1
                                                              # the demo's budget, 3 seeds
  resnet-lab survey --depths 20 56 110 --device cuda --steps 50 --out runs/survey-gpu
  resnet-lab survey --full --depths 8 20 --out runs/survey-full   # the whole product: 36 cells per depth
  resnet-lab survey --markdown --out runs/survey-md > survey.md
  resnet-lab survey --json --quiet --out runs/survey-json | jq '.claims'
  resnet-lab survey --data cifar10 --depths 8 20 56 --steps 600 --jobs 8 --devices cuda:0 --out runs/survey-c10
  resnet-lab sweep --out runs/survey-c10/cells --status    # each cell's state, while it runs or after

Writes survey.json, survey.md, report.html and the heat maps (survey_gradient_ratio.png/.svg,
survey_loss_drop.png/.svg) to --out (one that holds an earlier survey is refused, never
overwritten; with --jobs the same command continues it). Each claim is judged over --seeds seeds: SUPPORTED or
CONTRADICTED only if every seed agrees, else INCONCLUSIVE at this budget (more --steps or another
--seeds may decide it). A CONTRADICTED claim is a measurement, not an error.

With --jobs, each cell and seed is measured by a worker process of its own (the sweep engine:
'resnet-lab sweep'), N at once per device, in DIR/cells/<cell>-seed<s>; killed at any point, the
same command again measures only the cells without a result (one stopped partway starts again).
A cell that fails is reported with its log and no claim is judged (exit 1). The --jobs example
above is a GPU budget that has not been run on a GPU yet.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "survey", help="measure common claims about training deep nets, one switch at a time",
        description="Flip one switch at a time (depth x plain/residual x norm x activation x init, plus a learning "
                    "rate too high with and without gradient clipping) and measure, per cell: the gradient norm "
                    "of the first and last blocks at initialisation and their ratio, the gradient monitor's "
                    "verdict, and whether and how fast the loss falls in a short run. Then judge each claim "
                    "from the measurements. Progress goes to stderr.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS  # run_survey's
    p.add_argument("--depths", type=int, nargs="+", default=list(d["depths"]), metavar="N",
                   help=f"CIFAR depths, 6n+2 (default: {' '.join(map(str, d['depths']))})")
    p.add_argument("--data", default="digits", help=f"{IN_MEMORY_DATA_SETS} (default digits, bundled)")
    p.add_argument("--data-dir", help="cache folder for downloaded data sets")
    p.add_argument("--steps", type=int, default=d["steps"], help=f"SGD steps of each short run (default {d['steps']})")
    p.add_argument("--batch-size", type=int, default=d["batch_size"],
                   help=f"images per batch (default {d['batch_size']})")
    p.add_argument("--batches-at-init", type=int, default=d["batches_at_init"],
                   help="batches the gradient norms at initialisation are averaged over "
                        f"(default {d['batches_at_init']})")
    p.add_argument("--image-size", type=int,
                   help="resize images to this side (default: the data's; digits are 8x8 upsampled, so 16 loses "
                        "nothing and is about 4x faster)")
    p.add_argument("--lr", type=float, default=d["lr"], help=f"learning rate of the short runs (default {d['lr']:g})")
    p.add_argument("--high-lr", type=float, help="the learning rate far too high (default 10x --lr)")
    p.add_argument("--clip-norm", type=float, default=d["clip_norm"],
                   help=f"gradient clipping threshold at --high-lr (default {d['clip_norm']:g})")
    p.add_argument("--full", action="store_true",
                   help="the whole product norm x activation x init per depth and shortcut (36 cells per depth)")
    p.add_argument("--seeds", type=int, default=d["seeds"],
                   help=f"seeds each cell is measured with (default {d['seeds']}); a claim is SUPPORTED or "
                        "CONTRADICTED only if every seed agrees, otherwise INCONCLUSIVE at this budget")
    p.add_argument("--seed", type=int, default=d["seed"],
                   help=f"the first seed (default {d['seed']}): seeds SEED, SEED+1, ...")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--threads", type=int,
                   help="CPU threads for torch (default: torch's); 1 is often fastest for these small nets. With "
                        "--jobs: per worker (default: the cores shared out among the workers)")
    p.add_argument("--out", type=output_path, default=Path("runs/survey"), metavar="DIR",
                   help="where to write the outputs (default runs/survey)")
    g = p.add_argument_group("concurrent cells (as for 'sweep'; without --jobs: one cell after another)")
    g.add_argument("--jobs", metavar="N|auto",
                   help="measure each cell and seed in a worker process of its own, N at once per device (auto: "
                        "measure 1, 2, 4, 8 first), runs kept in DIR/cells/; the same command again continues")
    g.add_argument("--devices", nargs="+", metavar="DEVICE",
                   help="with --jobs: devices to spread the cells over (default: --device), e.g. cuda:0 cuda:1")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result as JSON")
    out.add_argument("--markdown", action="store_true", help="print the table and claims as Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    with output_folder_held(args.out, "survey"):  # one command at a time in a folder
        return _run(args)


def _run(args) -> int:
    from ..errors import writing
    from ..experiments.survey import run_survey, survey_markdown, survey_text, write_survey_outputs
    from ..training.sweep import SweepFailed, SweepInterrupted

    log = None if args.quiet else (lambda msg: print(f"survey: {msg}", file=sys.stderr, flush=True))
    jobs = jobs_value(args.jobs)
    prepare_output_folder(args.out, "survey.json", "survey",
                          continuing=args.out / "cells" if jobs is not None else None)
    try:
        result = run_survey(
            args.depths, data=args.data, data_dir=args.data_dir, steps=args.steps, seeds=args.seeds,
            batches_at_init=args.batches_at_init, batch_size=args.batch_size, image_size=args.image_size, lr=args.lr,
            high_lr=args.high_lr, clip_norm=args.clip_norm, seed=args.seed, full=args.full, device=args.device,
            threads=args.threads, jobs=jobs, devices=args.devices, out=args.out, log=log)
    except SweepInterrupted as stop:
        print(f"resnet-lab: survey {stop}", file=sys.stderr)
        return stop.exit_code
    except SweepFailed as failed:
        print(f"resnet-lab: survey: {failed}; no claim was judged", file=sys.stderr)
        return failed.exit_code
    with writing(args.out):
        written = write_survey_outputs(result, args.out)
    if log:
        log(f"wrote {written['json']}, {written['markdown']}, {written['html']}, "
            f"{', '.join(str(p) for p in written['plots'])}")
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.markdown:
        print(survey_markdown(result))
    else:
        print(survey_text(result))
    return 0
