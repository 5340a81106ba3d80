"""Does the survey's default budget give verdicts that a longer run keeps? The demo's survey
(``DEMO_SETTINGS``: digits, CPU) at its own steps and at ``--factor`` times the steps, same seeds;
each run written as the survey's own result plus the date, the factor and the load average; then
the claims SUPPORTED at one budget and CONTRADICTED at the other (``findings.reversals``).

    python benchmarks/bench_survey_budget.py --factor 1 --out benchmarks/results/survey-digits-default-cpu.json
    python benchmarks/bench_survey_budget.py --factor 10 --cells-of benchmarks/results/survey-digits-default-cpu.json \
        --out benchmarks/results/survey-digits-10x-cpu.json

``--cells-of FILE`` runs only the cells that FILE's verdicts were judged from (its claims'
``measured``): the long run re-decides those verdicts at a tenth of the full design's cost.
    python benchmarks/bench_survey_budget.py --compare A.json B.json   # re-judge both with today's rules
    python benchmarks/bench_survey_budget.py --print A.json            # its claims as the survey prints them
    python benchmarks/bench_survey_budget.py --smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing


def judged_cells(path: Path) -> list[str]:
    """The cells a survey result's verdicts were judged from."""
    claims = json.loads(path.read_text())["claims"]
    return sorted({name for c in claims for name in c["measured"]})


def measure(factor: int, smoke: bool, only: list[str] | None) -> dict:
    from resnet_lab.experiments.survey import DEMO_SETTINGS, run_survey

    settings = dict(DEMO_SETTINGS)
    if smoke:
        settings.update(depths=(8,), steps=2, seeds=2, batch_size=8, batches_at_init=1)
    settings["steps"] *= factor
    load_before = os.getloadavg()[0]
    result = run_survey(only=only, log=lambda msg: print(msg, file=sys.stderr, flush=True), **settings)
    return {"benchmark": "survey_budget", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "factor": factor, "demo_settings": {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in DEMO_SETTINGS.items()},
            "load_average": [load_before, os.getloadavg()[0]], **result}


def compare(short_path: Path, long_path: Path) -> dict:
    """Both files' claims judged again from their cells with today's rules, side by side."""
    from resnet_lab.experiments.survey import judge_claims
    from resnet_lab.experiments.survey.findings import reversals

    short, long = (judge_claims(json.loads(p.read_text())["cells"]) for p in (short_path, long_path))
    rows = [{"id": a["id"], "short": a["verdict"], "long": b["verdict"]} for a, b in zip(short, long)]
    return {"claims": rows, "reversed": reversals(short, long)}


def show(path: Path) -> str:
    """A results file's settings line and claims as ``resnet-lab survey`` prints them (rules of today)."""
    from resnet_lab.experiments.survey import judge_claims
    from resnet_lab.experiments.survey.table import claim_lines, settings_line

    result = json.loads(path.read_text())
    result["claims"] = judge_claims(result["cells"])
    return "\n".join([settings_line(result), "", "claims:", *(f"- {line}" for line in claim_lines(result))])


def main(argv=None) -> int:
    from resnet_lab.files import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--factor", type=int, default=1, help="the demo's steps times this (default 1)")
    p.add_argument("--smoke", action="store_true", help="depth 8, 2 steps, 2 seeds: for the test suite")
    p.add_argument("--out", type=Path)
    p.add_argument("--cells-of", type=Path, metavar="FILE", help="run only the cells FILE's verdicts rest on")
    p.add_argument("--compare", type=Path, nargs=2, metavar=("SHORT", "LONG"))
    p.add_argument("--print", type=Path, metavar="FILE", dest="show",
                   help="print FILE's settings line and claims, judged again with today's rules")
    args = p.parse_args(argv)
    if args.show:
        print(show(args.show))
        return 0
    if args.compare:
        out = compare(*args.compare)
        for row in out["claims"]:
            print(f"{row['id']:24s} {row['short']:14s} {row['long']}")
        print("reversed:", ", ".join(out["reversed"]) or "none")
        return 1 if out["reversed"] else 0
    result = measure(args.factor, args.smoke, judged_cells(args.cells_of) if args.cells_of else None)
    if args.out:
        write_json(args.out, result)
    for c in result["claims"]:
        print(f"{c['id']:24s} {c['verdict']}")
    print(f"{result['run_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    code = main()
    if code:  # a reversal: the default budget decides from noise
        sys.exit(code)
