"""Fixed costs of a run: everything a `train` command spends that is not a training step or an evaluation.

Issue #17's CPU target: the wall time of a 1-step fast-recipe run, minus its training steps and
evaluation (from its ``timings.json``), at most 1.3x the wall time of a bare
``python -c "import torch"``. The two commands run alternately, round by round, so that load on
the machine hits them alike; the result is the median of each and their ratio, with the
run's own split (start-up, setup, checkpoints and records, report, and what is left: exit).

The command is the user's, defaults as they are: the fast recipe draws its report in a detached
process after the command exits (``report_s`` is then the time to start it). Each round waits
for that renderer to finish before the next one starts, so that it never overlaps a measurement,
and records when report.html appeared, counted from the command's exit (``report_after_exit_s``).

    python benchmarks/bench_fixed_costs.py                # 5 rounds, the CIFAR-10 subset
    python benchmarks/bench_fixed_costs.py --smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing
TARGET_RATIO = 1.3


def _env() -> dict:
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


def time_import_torch() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, env=_env())
    return time.perf_counter() - t0


def time_run(data: str, model: str) -> dict:
    """One 1-step run: its wall time and its own timings (timings.json); then, untimed, the wait for
    its background report renderer (report.html's time after the command's exit)."""
    from resnet_lab.report.background import wait_for_report

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = [sys.executable, "-m", "resnet_lab", "train", "--recipe", "fast", "--model", model, "--data", data,
                "--steps", "1", "--device", "cpu", "--quiet", "--out", str(out)]
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, env=_env(), stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        exited = time.time()  # wall clock, as the file's modification time
        report = wait_for_report(out)  # before the folder goes and before the next measurement
        report_after_exit_s = max(0.0, report.stat().st_mtime - exited)
        timings = json.loads((out / "timings.json").read_text())
    fixed = wall - timings["train_s"] - timings["eval_s"]
    named = sum(timings.get(k) or 0.0 for k in ("startup_s", "setup_s", "bookkeeping_s", "report_s"))
    return {"wall_s": wall, "fixed_s": fixed, **timings, "unaccounted_s": fixed - named,
            "report_after_exit_s": report_after_exit_s}


def main(argv=None) -> dict:
    from resnet_lab.files import write_json
    from resnet_lab.runtime import hardware_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--data", default=f"npz:{ROOT.parent / 'shared' / 'data' / 'cifar10-small.npz'}")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--smoke", action="store_true", help="1 round on the bundled digits, resnet8, for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds, args.data, args.model = 1, "digits", "resnet8"
    load_before = os.getloadavg()[0]
    time_import_torch()  # untimed: warms the file cache
    torch_s, runs = [], []
    for _ in range(args.rounds):
        torch_s.append(time_import_torch())
        runs.append(time_run(args.data, args.model))
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    ratio = median["fixed_s"] / statistics.median(torch_s)
    result = {"benchmark": "fixed_costs", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware_info("cpu"),
              "settings": {"rounds": args.rounds, "smoke": args.smoke, "data": args.data, "model": args.model,
                           "command": "train --recipe fast --steps 1 --device cpu --quiet",
                           "report": "the recipe's default (background): timed to the command's exit; the "
                                     "renderer finishes before the next round"},
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "import_torch_wall_s": torch_s, "runs": runs, "median": median,
              "fixed_over_import_torch": ratio, "target_ratio": TARGET_RATIO, "target_met": ratio <= TARGET_RATIO}
    out = args.out or ROOT / "benchmarks" / "results" / "fixed_costs-cpu.json"
    write_json(out, result)
    split = ", ".join(f"{k.removesuffix('_s')} {median[k]:.2f}" for k in
                      ("startup_s", "setup_s", "bookkeeping_s", "report_s", "unaccounted_s"))
    print(f"import torch {statistics.median(torch_s):.2f} s; run {median['wall_s']:.2f} s, of which fixed "
          f"{median['fixed_s']:.2f} s ({split}): {ratio:.2f}x import torch (target <= {TARGET_RATIO}x: "
          f"{'met' if ratio <= TARGET_RATIO else 'not met'}); report.html {median['report_after_exit_s']:.2f} s "
          "after the exit")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
