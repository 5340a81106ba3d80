"""`resnet-lab report`: (re)draw a training run's report.html from its run directory."""

from __future__ import annotations

import argparse

EXAMPLES = """examples:
  resnet-lab report runs/r20          # writes runs/r20/report.html and prints its path
  resnet-lab report runs/sweep/resnet20-seed0

Drawn from the files 'resnet-lab train' wrote (config.json, metrics.jsonl, events.json and,
once the run has finished, result.json); a stopped run, or one still training, gets a report of
its records so far. 'train --report background' (the fast recipe's default) runs this command
after it exits; its output goes to RUN_DIR/report.log.
"""


def register(sub) -> None:
    p = sub.add_parser("report", help="(re)draw a training run's report.html from its run directory",
                       description="Draw RUN_DIR/report.html from the run's files (no checkpoint needed).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by 'resnet-lab train'")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import writing
    from ..report.train_report import write_run_report

    with writing(args.run_dir, "RUN_DIR"):
        print(f"report: {write_run_report(args.run_dir)}")
    return 0
