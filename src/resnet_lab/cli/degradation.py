"""`resnet-lab degradation`: plain vs residual nets of several depths, same recipe and data (paper Fig. 1 / 6)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..experiments.degradation import defaults
from ..training.config import RECIPES
from .arguments import (add_data_options, copy_train_options, jobs_value, output_folder_held, output_path,
                        prepare_output_folder)
from .model_options import add_model_options, model_options

EXAMPLES = """examples:
  resnet-lab degradation                                   # plain/resnet 20 and 56 on digits, default recipe
  resnet-lab degradation --epochs 4 --image-size 16 --quiet --out runs/deg-quick  # a quick look (16x16 digits)
  resnet-lab degradation --depths 20 56 110 --seeds 0 1 2 --out runs/deg3
  resnet-lab degradation --data npz:../shared/data/cifar10-small.npz --epochs 5 --device cuda --out runs/deg-c10
  resnet-lab degradation --recipe paper --data cifar10 --device cuda --out runs/paper-fig6
  resnet-lab degradation --depths 20 32 44 56 110 --jobs 4 --devices cuda:0 cuda:1 --out runs/fig6
      # the networks trained concurrently, each in its own process; run it again to continue

writes DIR/results.json (one entry per network: per-epoch training and test error, final errors,
parameters, finer training curve, gradient-flow snapshots), DIR/degradation.png/.svg (plain left,
ResNet right; bold solid = training error, thin dashed = test error), DIR/gradient_flow.png/.svg
and DIR/report.html. The findings say whether degradation showed up, from the measured numbers.
A DIR that holds an earlier result is refused, never overwritten (with --jobs: continued, when
that result came from --jobs: its sweep in DIR/runs/).
"""

# train's options this command takes, with train's flags and help: the same for every network.
TRAIN_FLAGS = ("epochs", "steps", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "warmup",
               "val_split", "augment", "image_size", "precision", "monitor_every", "on_nonfinite")


def register(sub) -> None:
    p = sub.add_parser(
        "degradation", help="plain vs residual nets of several depths: does the deeper plain net train worse?",
        description="Reproduce the degradation experiment of He et al. (2015), Fig. 1 and Fig. 6: plain and "
                    "residual networks (CIFAR family, option A shortcuts, equal parameters) of several depths, "
                    "trained with the same recipe, data and seeds. Records training and test error per epoch "
                    "(and every few steps) and gradient-flow snapshots, then states whether degradation showed "
                    "up in this run. Progress goes to stderr.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", type=int, nargs="+", default=list(defaults.DEPTHS), metavar="N",
                   help=f"CIFAR depths 6n+2 (default: {' '.join(map(str, defaults.DEPTHS))}; e.g. 20 56 110)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(defaults.SEEDS), metavar="S",
                   help="one run per seed; errors are reported as mean and spread "
                        f"(default: {' '.join(map(str, defaults.SEEDS))})")
    p.add_argument("--recipe", choices=tuple(RECIPES), default=defaults.RECIPE,
                   help=f"training recipe, as for 'train' (default: {defaults.RECIPE})")
    p.add_argument("--out", type=output_path, default=Path("runs/degradation"), metavar="DIR",
                   help="output folder (default: runs/degradation)")
    p.add_argument("--save-runs", action="store_true",
                   help="also keep each network's run directory (checkpoints, metrics) in DIR/runs/")
    g = p.add_argument_group("concurrent training (as for 'sweep'; without --jobs: one network after another)")
    g.add_argument("--jobs", metavar="N|auto",
                   help="train the networks as a sweep: N at once per device, each in a process of its own, run "
                        "directories kept in DIR/runs/ (the same command again continues a killed run)")
    g.add_argument("--devices", nargs="+", metavar="DEVICE", help="with --jobs: devices to spread the networks over")
    g.add_argument("--threads", type=int, help="with --jobs: CPU threads per network (default: the cores shared out)")
    add_data_options(p)
    copy_train_options(p, "training (as for 'train'; the same for every network)", only=TRAIN_FLAGS)
    g = p.add_argument_group("this experiment's run")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps")
    g.add_argument("--log-every", type=int, help="steps between points of the finer training curve "
                                                 "(default: about 4 per epoch)")
    g.add_argument("--quiet", action="store_true", help="one line per network instead of per epoch")
    add_model_options(p, model_flag=False)
    p.set_defaults(func=run)


def _train_overrides(args) -> dict:
    """The training flags given on the command line (and the model options), as ``run_degradation`` keywords."""
    overrides = {k: getattr(args, k) for k in (*TRAIN_FLAGS, "data_dir") if getattr(args, k, None) is not None}
    overrides.pop("epochs", None)  # run_degradation's own argument
    opts = model_options(args)
    if opts:
        overrides["model_options"] = opts
    return overrides


def _concurrency(args) -> dict:
    """--jobs, --devices, --threads as ``run_degradation`` keywords (which refuses the last two without --jobs)."""
    if args.jobs is None:
        return {"devices": args.devices, "threads": args.threads}
    return {"jobs": jobs_value(args.jobs), "devices": args.devices or [args.device], "threads": args.threads}


def run(args) -> int:
    with output_folder_held(args.out, "degradation experiment"):  # one command at a time in a folder
        return _run(args)


def _run(args) -> int:
    from ..diagnostics import NonFiniteError
    from ..experiments.degradation import degradation_text, run_degradation, write_degradation_outputs
    from ..training import TrainingInterrupted
    from ..training.sweep import SweepFailed, SweepInterrupted

    def err(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def quiet_log(msg: str) -> None:
        if not msg.startswith("  ") or "final training error" in msg:
            err(msg)

    # With --jobs the same command continues its sweep (a changed one is refused there).
    prepare_output_folder(args.out, "results.json", "degradation experiment",
                          continuing=args.out / "runs" if args.jobs is not None else None, experiment="degradation")
    try:
        result = run_degradation(args.depths, data=args.data or "digits", seeds=args.seeds, recipe=args.recipe,
                                 epochs=args.epochs, device=args.device, log_every=args.log_every,
                                 out=args.out if args.save_runs or args.jobs else None,
                                 log=quiet_log if args.quiet else err, progress=not args.quiet and sys.stderr.isatty(),
                                 **_concurrency(args), **_train_overrides(args))
    except (SweepFailed, SweepInterrupted) as stop:
        print(f"resnet-lab: degradation: {stop}", file=sys.stderr)
        return stop.exit_code
    except NonFiniteError as stop:
        print(f"resnet-lab: stopped: {stop}", file=sys.stderr)
        return stop.exit_code
    except TrainingInterrupted as stop:
        # --save-runs has written each network's run so far: they stay, and the same command refuses that folder
        kept = (f"; the networks' run directories so far are kept in {args.out / 'runs'} (remove it to run the "
                "same command again)") if args.save_runs else "; nothing was written"
        print(f"resnet-lab: degradation interrupted at step {stop.step} of a network's training; no results were "
              f"written{kept}", file=sys.stderr)
        return 128 + stop.signum
    paths = write_degradation_outputs(result, args.out)
    print(degradation_text(result))
    print(f"\nreport: {paths['report']}\nresults: {paths['results']}\nfigure: {paths['figure']}")
    return 0
