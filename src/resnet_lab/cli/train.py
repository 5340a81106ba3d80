"""`resnet-lab train`: every TrainConfig field as a flag; a recipe fills in what is not given."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from ..files import shell_arg
from ..runtime import is_main_process
from ..text import counted
from ..training.config import CHOICES, RECIPES, TrainConfig
from .arguments import add_data_options
from .model_options import add_model_options, model_options

EXAMPLES = """examples:
  resnet-lab train --model resnet20 --data digits --epochs 15 --out runs/r20
  resnet-lab train --recipe paper --model resnet110 --data cifar10 --val-split 5000 --out runs/paper110
  resnet-lab train --recipe fast --model resnet56 --data cifar10 --device cuda --out runs/fast56
  resnet-lab train --data npz:../shared/data/cifar10-small.npz --epochs 5 --quiet
  resnet-lab train --resume runs/r20          # continue exactly where it stopped

recipes: default (one-cycle, 15 epochs, batch 128), paper (He et al. 4.2: 64k iterations,
batch 128, lr 0.1 /10 at 32k and 48k, wd 1e-4; 0.01 warm-up for 110+ layers),
fast (batch 512, Nesterov, warm-up + linear decay, label smoothing 0.1; bf16, channels_last
and the step as one CUDA graph on a GPU; 40/70/100 epochs for depth <= 20/56/110).
Learning rates are given for batch 128 and scale linearly with --batch-size (--no-lr-scaling).
"""


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (paper recipe, fast recipe, resume, TensorBoard)",
                       description="Train a model of the zoo and write a run directory: config.json, "
                                   "metrics.jsonl, TensorBoard events, last.pt, best.pt, result.json, "
                                   "timings.json and report.html.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=RECIPES, help="the defaults of what is not given (default: 'default'; see "
                                                      "recipes below)")
    p.add_argument("--out", help="run directory (default: runs/<model>-<data>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (or from a .pt checkpoint)")
    add_model_options(p)
    add_data_options(p)
    _add_data_handling_options(p)
    _add_optimisation_options(p)
    _add_execution_options(p)
    _add_diagnostics_and_output_options(p)
    p.set_defaults(func=run)


def _add_data_handling_options(p: argparse.ArgumentParser) -> None:
    """What is held out, how images are augmented and loaded."""
    g = p.add_argument_group("data handling")
    g.add_argument("--val-split", type=int, help="hold out N training images for evaluation (paper: 5000)")
    g.add_argument("--val-seed", type=int, metavar="SEED",
                   help="which images --val-split holds out (default: --seed); give one value to compare seeds "
                        "on the same held-out images")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no crop/flip augmentation")
    g.add_argument("--flip", choices=CHOICES["flip"],
                   help="random (default): each image flipped with probability 1/2 every epoch; alternate: "
                        "flipped in every other epoch, from a random start (in-memory data only); none: crops "
                        "alone, for images a mirror changes (text, digits, maps)")
    g.add_argument("--translate", type=int, metavar="PIXELS",
                   help="random crop of the image padded by this many pixels (default 4, the paper's; 0: none; "
                        "in-memory data only)")
    g.add_argument("--pad-mode", choices=CHOICES["pad_mode"],
                   help="what the crop's padding holds: zeros (default: black, torchvision's RandomCrop) or "
                        "reflect (the image mirrored at its border)")
    g.add_argument("--workers", type=int,
                   help="DataLoader workers for folder data (default: up to 4, one per CPU core)")
    g.add_argument("--image-size", type=int, help="training resolution (in-memory data is resized once; "
                                                  "digits at 16 trains about 4x faster than at 32)")


def _add_optimisation_options(p: argparse.ArgumentParser) -> None:
    """Run length, optimiser, schedule and regularisation."""
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int, help="run length in iterations (overrides --epochs)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate at batch 128")
    g.add_argument("--no-lr-scaling", dest="lr_scaling", action="store_false", default=None,
                   help="use --lr as given whatever the batch size")
    g.add_argument("--optimizer", choices=CHOICES["optimizer"])
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action="store_true", default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--no-wd-on-norm-and-bias", dest="wd_on_norm_and_bias", action="store_false", default=None,
                   help="no weight decay on norm weights and biases")
    g.add_argument("--schedule", choices=CHOICES["schedule"])
    g.add_argument("--milestones", type=float, nargs="+", help="fractions of the run for --schedule step")
    g.add_argument("--warmup", type=float, help="fraction of the run with a linear warm-up")
    g.add_argument("--warmup-lr", type=float, help="paper warm-up lr (at batch 128) until training error < 80%%")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--clip-norm", type=float, help="clip the gradient's global L2 norm")
    g.add_argument("--clip-value", type=float, help="clip each gradient element")
    g.add_argument("--ema", type=float, metavar="DECAY",
                   help="also keep an exponential moving average of the weights (decay per step, e.g. 0.999) "
                        "and evaluate it; saved in the checkpoints ('evaluate --ema')")


def _add_execution_options(p: argparse.ArgumentParser) -> None:
    """Where and how the step runs, and torchrun's settings."""
    g = p.add_argument_group("execution")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    g.add_argument("--precision", choices=CHOICES["precision"],
                   help="auto: bf16 on a GPU that supports it, else fp32 (the fast recipe's default)")
    g.add_argument("--channels-last", action="store_true", default=None)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                   help="replay the whole step as one CUDA graph (on by default in the fast recipe; SGD, "
                        "no fp16, one process)")
    g.add_argument("--seed", type=int)
    g.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms (bit-exact resume on CPU)")
    g = p.add_argument_group("distributed (under torchrun)")
    g.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm across GPUs")
    g.add_argument("--dist-timeout", type=float, help="seconds before a collective waiting for a lost rank fails (300)")


def _add_diagnostics_and_output_options(p: argparse.ArgumentParser) -> None:
    """The gradient monitor, the NaN/Inf policy, checkpoints, evaluation and records."""
    g = p.add_argument_group("diagnostics and output")
    g.add_argument("--no-monitor", dest="monitor", action="store_false", default=None,
                   help="do not record per-layer gradient norms")
    g.add_argument("--on-nonfinite", choices=CHOICES["on_nonfinite"],
                   help="on NaN/Inf: warn, skip the step, stop with a report (default), or roll back to the "
                        "last good state (kept in memory every 10 steps), lower the learning rate and go on (also "
                        "on a loss spike)")
    g.add_argument("--rollback-factor", type=float, help="rollback: multiply the learning rate by this (0.5)")
    g.add_argument("--max-rollbacks", type=int, help="rollback: stop (exit 3) at the failure after this many (3)")
    g.add_argument("--spike-factor", type=float,
                   help="rollback: a loss over this x the median of the last 50, and above the untrained "
                        "model's, is a blow-up too (10; 0: NaN/Inf only)")
    g.add_argument("--monitor-every", type=int, help="record per-layer gradient norms every N steps (10)")
    g.add_argument("--checkpoint-every", type=int, help="also save last.pt every N steps")
    g.add_argument("--checkpoint-min-s", type=float, metavar="S",
                   help="at epoch ends, save last.pt only if S seconds passed since it was saved (default 0: every "
                        "epoch end; recipe fast: 30); the last step and an interruption always save")
    g.add_argument("--tta", action="store_true", default=None,
                   help="also evaluate each image with its mirror image (flip test-time augmentation); "
                        "reported apart as tta_test_acc, never instead of the single-view accuracy")
    g.add_argument("--eval-every", type=int,
                   help="evaluate every N epochs and after the last (default 1; fast recipe 5; 0: last only)")
    g.add_argument("--log-every", type=int, help="record the running training loss/error every N steps")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)
    g.add_argument("--report", choices=CHOICES["report"],
                   help="report.html: wait (drawn before the command exits; the default), background (drawn "
                        "by a detached process after it exits, log in RUN_DIR/report.log; the fast recipe's "
                        "default) or none ('resnet-lab report RUN_DIR' draws it at any time)")
    g.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")


# Set apart from the plain flags: built from several arguments, or not a flag of their own.
_NOT_PLAIN = {"model", "model_options", "milestones", "out", "progress", "recipe"}


def config_flags(args) -> list[str]:
    """The ``TrainConfig`` fields that are plain flags of this command: derived, never retyped."""
    return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_PLAIN and hasattr(args, f.name)]


def config_from_args(args):
    from ..training import resolve_config

    overrides = {k: getattr(args, k) for k in config_flags(args)}
    if args.milestones:
        overrides["milestones"] = tuple(args.milestones)
    overrides["model"] = args.model
    overrides["model_options"] = model_options(args) or None
    overrides["progress"] = not args.quiet
    overrides["out"] = args.out
    config = resolve_config(args.recipe or "default", **overrides)
    if config.out is None:
        config.out = f"runs/{config.model}-{config.data.replace(':', '_').replace('/', '_')}"
    return config


def run(args) -> int:
    from ..diagnostics import NonFiniteError
    from ..runtime import launched_by_torchrun, process_age_s
    from ..training import TrainingInterrupted, train
    from ..training.distributed import RanksLost

    # Start-up ends here, with the training code (torch included) imported: the arguments were
    # parsed before torch loaded. None when called from Python.
    startup_s = process_age_s() if args.startup_s is not None else None
    if args.resume:
        config = _resume_config(args)
        finished = _finished_run(args.resume)
        if finished is not None:
            if is_main_process():
                _log(finished)
            return 0
    else:
        config = config_from_args(args)
    if hasattr(sys.stdout, "reconfigure"):  # each line as it is printed: a closed pipe shows in _log
        sys.stdout.reconfigure(line_buffering=True)
    try:
        result = train(config, resume=args.resume, log=_log)
    except NonFiniteError as err:  # the trainer has drawn the report: the last line says what happened
        # Each rank that stops says so: its BatchNorm statistics are its own, so one rank may stop alone.
        rank = "" if is_main_process() else f" (rank {os.environ.get('RANK')})"
        print(f"resnet-lab: stopped{rank}: {err}", file=sys.stderr)
        return err.exit_code
    except RanksLost as lost:
        print(f"resnet-lab: {lost}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        if is_main_process():
            print(f"resnet-lab: {stop}", file=sys.stderr)
        # Under torchrun a non-zero exit would make it restart the group: a pre-empted job ends cleanly.
        return 0 if launched_by_torchrun() else 128 + stop.signum
    if is_main_process():
        _finish(result, startup_s)
    return 0


def _finish(result, startup_s: float | None) -> None:
    """timings.json (the whole command's time, start-up included), the time line and the summary."""
    from ..files import atomic_write_text
    from ..report.train_report import format_timings

    timings = {"startup_s": startup_s, **result.timings}  # report_s: background, the time to start the renderer
    if result.run_dir is not None:
        atomic_write_text(result.run_dir / "timings.json", json.dumps(timings, indent=2) + "\n")
    _log(f"time: {format_timings(timings)}{_whole_run_time(result)}")
    final = result.final
    beside = f", weight average {final['ema_test_acc']:.4f}" if final.get("ema_test_acc") is not None else ""
    beside += f", flip-TTA {final['tta_test_acc']:.4f}" if final.get("tta_test_acc") is not None else ""
    skipped = sum(e["kind"] == "skipped" for e in result.events)
    beside += f"; {counted(skipped, 'step')} skipped (non-finite values, see events.json)" if skipped else ""
    _log(f"done: {counted(result.steps, 'step')}, final {result.data_info['eval_split']} accuracy "
         f"{final['test_acc']:.4f} (best {result.best_acc:.4f}){beside}; run directory {result.run_dir}")


def _whole_run_time(result) -> str:
    """After a resumed run's time line (this process's): the whole run's, over its processes."""
    if result.processes == 1:
        return ""
    whole = "not recorded (its checkpoint, of an earlier version, kept none)" if result.run_time_s is None \
        else f"{result.run_time_s:.1f} s, each earlier process counted up to its last checkpoint"
    return f"; the whole run over {result.processes} processes: {whole}"


def _log(line: str) -> None:
    """Progress to stdout; warnings to stderr, where scripts and people look for them. A closed stdout
    (`train ... | head`) does not stop the run: its lines go nowhere from then on."""
    stream = sys.stderr if line.startswith("warning:") else sys.stdout
    try:
        print(line, file=stream)
    except BrokenPipeError:
        if stream is not sys.stdout:
            raise
        from .main import stdout_gone

        stdout_gone()


def _resume_config(args):
    """A resumed run keeps its own settings: only those in ``RESUMABLE`` may be given another value."""
    from ..errors import UserError
    from ..training.config import RESUMABLE, recipe_defaults
    from ..training.run_files import as_read_back, load_run_config

    given = [k for k in (*config_flags(args), "model", "milestones", "recipe", "out", *model_options(args))
             if getattr(args, k, None) is not None]
    if "out" in given:
        raise UserError("--resume DIR names the run to continue; drop --out (a resumed run stays in its folder)")
    fixed = [k for k in given if k not in RESUMABLE]
    saved = load_run_config(args.resume)
    if fixed:
        from ..models.registry import option_values

        # A switch the run left at its default has that value: --norm batch given again changes nothing.
        own = {**saved.to_dict(), **option_values(saved.model, saved.model_options)}
        # Compared as JSON reads them back: a flag's list equals the saved tuple (milestones).
        changed = [k for k in fixed if as_read_back(getattr(args, k)) != as_read_back(own.get(k))]
        if "model" in changed:  # a different model is a mistake, not an override
            raise UserError(f"{args.resume} is a {saved.model} run, not {args.model}; drop --model to resume it "
                            "or start a new run with another --out")
        if changed:
            allowed = ", ".join(_flag(k) for k in RESUMABLE if k != "progress")
            raise UserError(f"{', '.join(map(_flag, changed))} cannot change when resuming: a resumed run keeps "
                            f"its own settings (only {allowed} and --quiet may be given another value); to change "
                            "them, start a new run in another folder")
    # A setting not given again takes its recipe's default (not the run's value: where it ran before)
    defaults = recipe_defaults(saved.recipe)
    defaults.progress = not args.quiet
    for k in RESUMABLE:
        given_value = getattr(args, k, None)
        setattr(saved, k, getattr(defaults, k) if given_value is None else given_value)
    return saved


def _finished_run(resume: str) -> str | None:
    """What to say instead of training when the run being resumed has ended: its ``result.json`` is
    written after its last step, and a resumed run cannot be lengthened."""
    from ..training.run_files import run_dir_of

    run_dir = run_dir_of(resume)
    try:
        result = json.loads((run_dir / "result.json").read_text())
        steps = int(result["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (f"{run_dir} already finished ({counted(steps, 'step')}); nothing to train. Its report: "
            f"'resnet-lab report {shell_arg(run_dir)}'; a longer run: a new --out")


# Settings on by default that a --no-... flag turns off: no --augment or --monitor flag exists to name.
_TURNED_OFF_BY_NO = ("augment", "lr_scaling", "wd_on_norm_and_bias", "monitor", "tensorboard")


def _flag(setting: str) -> str:
    """The train flag that gives a setting (``tensorboard`` is turned off by ``--no-tensorboard``)."""
    return ("--no-" if setting in _TURNED_OFF_BY_NO else "--") + setting.replace("_", "-")
