"""`resnet-lab train`: every TrainConfig field as a flag; a recipe fills in what is not given."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

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


def add_data_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data")
    g.add_argument("--data", help="digits (default), cifar10, cifar100, npz:PATH or folder:PATH")
    g.add_argument("--data-dir", help="cache folder for downloaded data sets")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model (paper recipe, fast recipe, resume, TensorBoard)",
                       description="Train a model of the zoo and write a run directory: config.json, "
                                   "metrics.jsonl, TensorBoard events, last.pt and best.pt.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", choices=("default", "paper", "fast"), default="default")
    p.add_argument("--out", help="run directory (default: runs/<model>-<data>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR (or from a .pt checkpoint)")
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("data handling")
    g.add_argument("--val-split", type=int, help="hold out N training images for evaluation (paper: 5000)")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no crop/flip augmentation")
    g.add_argument("--flip", choices=("random", "alternate"),
                   help="random (default): each image flipped with probability 1/2 every epoch; alternate: "
                        "flipped in every other epoch, from a random start (in-memory data only)")
    g.add_argument("--workers", type=int, help="DataLoader workers for folder data (default: up to 4, one per CPU core)")
    g.add_argument("--image-size", type=int, help="training resolution for folder data")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int, help="run length in iterations (overrides --epochs)")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate at batch 128")
    g.add_argument("--no-lr-scaling", dest="lr_scaling", action="store_false", default=None,
                   help="use --lr as given whatever the batch size")
    g.add_argument("--optimizer", choices=("sgd", "adam", "adamw"))
    g.add_argument("--momentum", type=float)
    g.add_argument("--nesterov", action="store_true", default=None)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--no-wd-on-norm-and-bias", dest="wd_on_norm_and_bias", action="store_false", default=None,
                   help="no weight decay on norm weights and biases")
    g.add_argument("--schedule", choices=("step", "cosine", "linear", "constant"))
    g.add_argument("--milestones", type=float, nargs="+", help="fractions of the run for --schedule step")
    g.add_argument("--warmup", type=float, help="fraction of the run with a linear warm-up")
    g.add_argument("--warmup-lr", type=float, help="paper warm-up lr (at batch 128) until training error < 80%%")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--clip-norm", type=float, help="clip the gradient's global L2 norm")
    g.add_argument("--clip-value", type=float, help="clip each gradient element")
    g.add_argument("--ema", type=float, metavar="DECAY",
                   help="also keep an exponential moving average of the weights (decay per step, e.g. 0.999) "
                        "and evaluate it; saved in the checkpoints ('evaluate --ema')")
    g = p.add_argument_group("execution")
    g.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, mps")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"),
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
    g = p.add_argument_group("diagnostics and output")
    g.add_argument("--no-monitor", dest="monitor", action="store_false", default=None,
                   help="do not record per-layer gradient norms")
    g.add_argument("--on-nonfinite", choices=("warn", "skip", "stop"),
                   help="on NaN/Inf: warn, skip the step, or stop with a report (default stop)")
    g.add_argument("--monitor-every", type=int, help="record per-layer gradient norms every N steps (10)")
    g.add_argument("--checkpoint-every", type=int, help="also save last.pt every N steps")
    g.add_argument("--tta", action="store_true", default=None,
                   help="also evaluate each image with its mirror image (flip test-time augmentation); "
                        "reported apart as tta_test_acc, never instead of the single-view accuracy")
    g.add_argument("--eval-every", type=int,
                   help="evaluate every N epochs and after the last (default 1; fast recipe 5; 0: last only)")
    g.add_argument("--log-every", type=int, help="record the running training loss/error every N steps")
    g.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", default=None)
    g.add_argument("--quiet", action="store_true", help="no progress bar: one line per epoch")
    p.set_defaults(func=run)


CONFIG_FLAGS = ("val_split", "augment", "flip", "workers", "image_size", "epochs", "steps", "batch_size", "lr", "lr_scaling",
                "optimizer", "momentum", "nesterov", "weight_decay", "wd_on_norm_and_bias", "schedule",
                "warmup", "warmup_lr", "label_smoothing", "clip_norm", "clip_value", "ema", "device", "precision",
                "channels_last", "compile", "cuda_graph", "seed", "deterministic", "sync_bn", "dist_timeout", "monitor", "monitor_every", "on_nonfinite",
                "checkpoint_every", "eval_every", "tta", "log_every", "tensorboard", "data", "data_dir")


def config_from_args(args):
    from ..training import resolve_config

    overrides = {k: getattr(args, k) for k in CONFIG_FLAGS}
    if args.milestones:
        overrides["milestones"] = tuple(args.milestones)
    overrides["model"] = args.model
    overrides["model_options"] = model_options(args) or None
    overrides["progress"] = not args.quiet
    config = resolve_config(args.recipe, **overrides)
    if config.out is None and args.out is None:
        config.out = f"runs/{config.model}-{config.data.replace(':', '_').replace('/', '_')}"
    elif args.out:
        config.out = args.out
    return config


def run(args) -> int:
    from ..training import TrainConfig, TrainingInterrupted, train
    from ..diagnostics import NonFiniteError
    from ..training.checkpoint import atomic_write_text
    from ..training.distributed import launched_by_torchrun

    if args.resume:
        _check_resume_model(args)
        config = TrainConfig(progress=not args.quiet)
        for k in ("device", "workers", "dist_timeout"):
            if getattr(args, k) is not None:
                setattr(config, k, getattr(args, k))
        if args.tensorboard is not None:
            config.tensorboard = args.tensorboard
    else:
        config = config_from_args(args)
    try:
        result = train(config, resume=args.resume)
    except NonFiniteError as err:
        print(f"resnet-lab: stopped: {err}", file=sys.stderr)
        return err.exit_code
    except TrainingInterrupted as stop:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"resnet-lab: {stop}")
        # Under torchrun a non-zero exit would make it restart the group: a pre-empted job ends cleanly.
        return 0 if launched_by_torchrun() else 128 + stop.signum
    final = result.final
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    from ..report.train_report import format_timings, write_train_report

    timings = {"startup_s": args.startup_s, **result.timings}  # start-up: None when called from Python
    if result.run_dir is not None:
        report_start = time.perf_counter()
        report = write_train_report(result, result.config, result.run_dir / "report.html", result.device)
        timings["report_s"] = time.perf_counter() - report_start
        print(f"report: {report}")
        atomic_write_text(result.run_dir / "timings.json", json.dumps(timings, indent=2) + "\n")
    print(f"time: {format_timings(timings)}")
    beside = f", weight average {final['ema_test_acc']:.4f}" if final.get("ema_test_acc") is not None else ""
    beside += f", flip-TTA {final['tta_test_acc']:.4f}" if final.get("tta_test_acc") is not None else ""
    print(f"done: {result.steps} steps, final {result.data_info['eval_split']} accuracy {final['test_acc']:.4f} "
          f"(best {result.best_acc:.4f}){beside}; run directory {result.run_dir}")
    return 0


def _check_resume_model(args) -> None:
    """Settings come from the run being resumed; a different --model is a mistake, not an override."""
    from ..errors import UserError
    from ..training import load_checkpoint

    if args.model is not None:
        saved = load_checkpoint(args.resume)["config"]["model"]
        if saved != args.model:
            raise UserError(f"{args.resume} is a {saved} run, not {args.model}; drop --model to resume it "
                            "or start a new run with another --out")
