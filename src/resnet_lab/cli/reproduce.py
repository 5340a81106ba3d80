"""`resnet-lab reproduce table6|fig6|all`: the paper's CIFAR-10 Table 6 and Fig. 6, with its recipe."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..experiments.reproduce.paper import FIG6_DEPTHS, SEEDS, TABLE6_DEPTHS
from .arguments import jobs_value, output_folder_held, output_path, prepare_output_folder

EXAMPLES = """examples:
  resnet-lab reproduce all --out runs/paper --devices cuda --jobs 4         # both, the ResNets trained once
  resnet-lab reproduce table6 --out runs/table6 --devices cuda --jobs 4      # the paper's 64k iterations
  resnet-lab reproduce fig6 --out runs/fig6 --devices cuda --jobs 4
  resnet-lab reproduce table6 --out /tmp/t6 --depths 20 --seeds 0 --steps 20 \\
      --data npz:../shared/data/cifar10-small.npz                           # a smoke test, not the paper's budget

Each run is a sweep run in DIR/runs/: run the same command again to continue (SIGTERM: every
run saves a checkpoint and the command exits 143). table6 writes DIR/results.json, table6.md,
table6.png/.svg and report.html; fig6 writes the degradation experiment's files; all writes
both, in DIR/fig6/ and DIR/table6/ (Fig. 6's ResNets are Table 6's runs: all trains them once).
"""


def register(sub) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's CIFAR-10 Table 6 or Fig. 6 (recipe paper)",
                       description="Train the paper's CIFAR-10 experiments with its recipe (He et al. 2015, "
                                   "section 4.2: 64k iterations, batch 128, lr 0.1 /10 at 32k and 48k) on the "
                                   "sweep engine, resumably, and compare with the published figures.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_subparsers(dest="which", metavar="WHAT", required=True, parser_class=type(p))
    _add(which, "table6", "resnet{depth} test error at the end of training vs the paper's Table 6", TABLE6_DEPTHS)
    _add(which, "fig6", "plain vs resnet at each depth: the degradation experiment with the paper's recipe",
         FIG6_DEPTHS)
    both = _add(which, "all", "fig6 and table6 from one sweep: their ResNets trained once", TABLE6_DEPTHS)
    both.add_argument("--plain-depths", type=int, nargs="+", default=list(FIG6_DEPTHS), metavar="N",
                      help=f"Fig. 6's depths, plain and ResNet, each one of --depths (default: {_words(FIG6_DEPTHS)})")


def _words(values) -> str:
    return " ".join(map(str, values))


def _add(which, name: str, help_text: str, depths: tuple[int, ...]) -> argparse.ArgumentParser:
    p = which.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=output_path, required=True, metavar="DIR", help="output folder (runs in DIR/runs/)")
    p.add_argument("--depths", type=int, nargs="+", default=list(depths), metavar="N",
                   help=f"CIFAR depths 6n+2 (default: {_words(depths)})")
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), metavar="S",
                   help=f"seeds (default: {_words(SEEDS)})")
    p.add_argument("--data", default="cifar10", metavar="cifar10|npz:PATH",
                   help="the full CIFAR-10 training set (default: cifar10)")
    p.add_argument("--steps", type=int, help="iterations instead of the paper's 64,000 (smoke tests; the "
                                             "report marks it not comparable)")
    p.add_argument("--jobs", default="1", metavar="N|auto", help="runs at once per device (default: 1)")
    p.add_argument("--devices", nargs="+", metavar="DEVICE", help="devices to spread the runs over (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads per run (default: the cores shared out)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="on a GPU, replay each step as one CUDA graph: the same arithmetic, fewer kernel launches; "
                        "a NaN/Inf then stops a run at its epoch's end, not at its step. Part of the runs' "
                        "settings: give it from the first call on")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    with output_folder_held(args.out, "reproduction"):  # one command at a time in a folder
        return _run(args)


def _run(args) -> int:
    from ..errors import UserError
    from ..experiments import reproduce
    from ..training.sweep import SweepFailed, SweepInterrupted

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; give a directory")
    if (args.out / "config.json").exists():  # `all` writes into DIR/fig6 and DIR/table6: DIR itself is checked here
        raise UserError(f"--out {args.out} is a training run's folder; give the reproduction a folder of its own")
    for which in ("fig6", "table6") if args.which == "all" else (args.which,):  # never another command's results
        what, experiment = _EXPERIMENTS[which]
        prepare_output_folder(args.out / which if args.which == "all" else args.out, "results.json", what,
                              continuing=args.out / "runs", experiment=experiment)
    options = dict(data=args.data, steps=args.steps, jobs=jobs_value(args.jobs), devices=args.devices,
                   threads=args.threads, cuda_graph=args.cuda_graph,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        if args.which == "all":
            results = reproduce.run_all(args.out, args.depths, args.plain_depths, args.seeds, **options)
        else:
            train = reproduce.run_table6 if args.which == "table6" else reproduce.run_fig6
            results = {args.which: train(args.out, args.depths, args.seeds, **options)}
    except (SweepFailed, SweepInterrupted) as stop:
        print(f"resnet-lab: reproduce {args.which}: {stop}", file=sys.stderr)
        return stop.exit_code
    for which, result in results.items():
        folder = args.out / which if args.which == "all" else args.out
        paths = _write_outputs(reproduce, which, result, folder)
        print(f"report: {paths['report']}\nresults: {paths['results']}\n")
    return 0


#: What each reproduction writes: its name in a refusal, and the ``experiment`` of its results.json.
_EXPERIMENTS = {"table6": ("Table 6 reproduction", "table6"), "fig6": ("degradation experiment", "degradation")}


def _write_outputs(reproduce, which: str, result: dict, folder: Path) -> dict:
    """The reproduction's files in ``folder``, its text on stdout; the files' paths."""
    if which == "table6":
        paths = reproduce.write_table6_outputs(result, folder)
        print(reproduce.table6_text(result))
    else:
        paths = reproduce.write_fig6_outputs(result, folder)
        print(reproduce.fig6_text(result))
    print()
    return paths
