"""`resnet-lab sweep`: many training runs at once, resumable; the options are `train`'s, copied
from its parser, and each value option takes several values (every combination is a run)."""

from __future__ import annotations

import argparse
import sys

from ..text import counted
from ..training.config import TrainConfig
from ..training.sweep.probe import PROBE_SECONDS
from .arguments import copy_train_options, jobs_value, output_path

EXAMPLES = """examples:
  resnet-lab sweep --model resnet20 resnet32 --seed 0 1 --epochs 15 --out runs/sweep
  resnet-lab sweep --model resnet56 --lr 0.05 0.1 0.2 --seed 0 1 2 --jobs auto --devices cuda:0 cuda:1 --out runs/lr
  resnet-lab sweep ... --shard 0/2 --out /shared/runs/lr     # on one machine; --shard 1/2 on the other
  resnet-lab sweep --out runs/sweep --status                  # the table of runs, without running anything

Run directories are named after the settings that vary (resnet20-seed0, ...). Run the same
command again to continue: done runs are skipped, interrupted runs resume exactly from their
last.pt, failed runs are tried again. Each run trains in a process of its own (its output in
RUN_DIR/worker.out and worker.err); DIR/sweep.json sums up every run's settings, state and result.
"""

# Not for a sweep: it owns --out (one folder per run), the device (--devices), resuming (run the
# command again) and the output (no report per run: 'resnet-lab report RUN_DIR' renders one);
# torchrun's options need torchrun.
_NOT_COPIED = {"out", "resume", "device", "quiet", "report", "sync_bn", "dist_timeout", "help", "debug"}

# The sweep's own options for a run, which --status (reading the folder only) has no use for.
_RUN_OPTIONS = ("jobs", "devices", "threads", "shard", "probe_seconds", "status_every")


def register(sub) -> None:
    p = sub.add_parser("sweep", help="train a grid of runs (models x seeds x ...) several at a time, resumably",
                       description="Train every combination of the given settings, each run in a process of its "
                                   "own, several at once per device; killed at any point, the same command "
                                   "continues where it stopped.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_path, required=True, metavar="DIR",
                   help="the sweep's folder: one run directory per run")
    g = p.add_argument_group("sweep")
    # No defaults here (run_sweep's apply): an option given, even at its default, is known, so that --status,
    # which only reads the folder, can refuse it rather than pass it over.
    g.add_argument("--jobs", metavar="N|auto",
                   help="runs at once per device (default 1); auto: measure 1, 2, 4, 8 and take the fastest")
    g.add_argument("--devices", nargs="+", metavar="DEVICE",
                   help="devices to spread the runs over (default auto), e.g. cuda:0 cuda:1")
    g.add_argument("--threads", type=int, help="CPU threads per run (default: the cores shared out among the runs)")
    g.add_argument("--shard", metavar="I/N", help="run only runs I, I+N, I+2N, ... (to split a sweep across "
                                                  "machines into one folder)")
    g.add_argument("--probe-seconds", type=float, metavar="S",
                   help=f"seconds each count's workers train together in the --jobs auto probe, once all have "
                        f"set up (default {PROBE_SECONDS:g})")
    g.add_argument("--status", action="store_true", help="print the table of runs and their states, run nothing")
    g.add_argument("--status-every", type=float, metavar="S",
                   help="seconds between status lines (default 30; 0: none)")
    copy_train_options(p, "training (as for 'train'; several values: one run per combination)",
                       exclude=_NOT_COPIED, several=True)
    p.set_defaults(func=run)


def grid_from_args(args):
    """The model always names a run; any other setting given with several values is an axis."""
    from ..training.sweep import Grid

    axes = {"model": args.model or [TrainConfig.model]}
    fixed = {}
    for dest in args.train_dests:
        value = getattr(args, dest)
        if dest == "model" or value is None:
            continue
        if isinstance(value, list) and dest != "milestones":
            if len(value) > 1:
                axes[dest] = value
            else:
                fixed[dest] = value[0]
        else:
            fixed[dest] = value
    return Grid(axes, fixed)


def run(args) -> int:
    from ..training.sweep import SweepInterrupted, run_sweep, sweep_status

    if args.status:
        given = [d for d in (*_RUN_OPTIONS, *args.train_dests) if getattr(args, d) is not None]
        if given:  # --status reads the folder; settings next to it would look as if they applied
            from ..errors import UserError

            raise UserError(f"--status shows the sweep in --out as it is; drop "
                            f"{', '.join('--' + d.replace('_', '-') for d in given)}")
        _print_table(sweep_status(args.out, log=lambda line: print(line, file=sys.stderr)))
        return 0
    given = {"jobs": jobs_value(args.jobs), "devices": args.devices, "threads": args.threads,
             "shard": None if args.shard is None else _shard(args.shard), "status_every": args.status_every,
             "probe_seconds": args.probe_seconds}
    try:
        result = run_sweep(grid_from_args(args), args.out, log=_log,
                           **{name: value for name, value in given.items() if value is not None})
    except SweepInterrupted as stop:
        print(f"resnet-lab: sweep {stop}", file=sys.stderr)
        return stop.exit_code
    _print_table([result.states[r.name] for r in result.runs])
    return _verdict(result)


def _verdict(result) -> int:
    """Exit 0 only when every run is done; otherwise say which runs are not and what to do."""
    if result.ok:
        runs = f"{'all ' if len(result.runs) > 1 else ''}{counted(len(result.runs), 'run')}"
        print(f"sweep: {runs} done; results in {result.out / 'sweep.json'}")
        return 0
    failed = [r.name for r in result.runs if result.states[r.name].state == "failed"]
    other = [r.name for r in result.runs if result.states[r.name].state not in ("done", "failed")]
    if failed:
        first = failed[0]
        print(f"resnet-lab: sweep: {len(failed)} of {counted(len(result.runs), 'run')} failed ({', '.join(failed)}); "
              f"why: {result.states[first].reason} (see {result.out / first / 'worker.err'}); fix it and run "
              "the same command again to retry them", file=sys.stderr)
    if other:
        print(f"resnet-lab: sweep: {counted(len(other), 'run')} not finished ({', '.join(other)}); run the same "
              "command again to continue them", file=sys.stderr)
    return 1


def _print_table(states) -> None:
    from ..report.text_table import format_table

    if any(s.result.get("summary") for s in states):  # tasks (a survey's cells): each its own line
        rows = [{"run": s.name, "state": s.state, "result": s.result.get("summary"), "reason": _short(s.reason)}
                for s in states]
        columns = [("run", "run"), ("state", "state"), ("result", "result")]
        print(format_table(rows, columns + ([("reason", "reason")] if any(r["reason"] for r in rows) else [])))
        return
    from ..text import percent

    errors = [s.result.get("final_train_error") for s in states]
    rows = [{"run": s.name, "state": s.state, "step": f"{s.step:,}/{s.total_steps:,}" if s.total_steps else "-",
             "train_error": None if error is None else percent(error, 2), "test_acc": s.result.get("test_acc"),
             "time": s.result.get("train_time_s"), "reason": _short(s.reason)} for s, error in zip(states, errors)]
    splits = sorted({s.result["eval_split"] for s in states if s.result.get("eval_split")}) or ["test"]
    columns = [("run", "run"), ("state", "state"), ("step", "step"), ("train_error", "train error"),
               ("test_acc", f"{'/'.join(splits)} acc"), ("time", "train s")]
    print(format_table(rows, columns + ([("reason", "reason")] if any(r["reason"] for r in rows) else [])))


def _short(reason: str | None, width: int = 72) -> str:
    """The table's cut of a failure's reason (sweep.json and worker.err keep it whole)."""
    reason = reason or ""
    return reason if len(reason) <= width else reason[:width - 3] + "..."


def _int(text: str, flag: str, what: str) -> int:
    from ..errors import UserError

    try:
        return int(text)
    except ValueError:
        raise UserError(f"{flag} must be {what}, got {text!r}") from None


def _shard(text: str) -> tuple[int, int]:
    from ..errors import UserError

    index, sep, count = text.partition("/")
    if not sep:
        raise UserError(f"--shard is I/N (e.g. 0/2 and 1/2 on two machines), got {text!r}")
    return _int(index, "--shard", "I/N such as 0/2"), _int(count, "--shard", "I/N such as 0/2")


def _log(line: str) -> None:
    print(line, flush=True)
