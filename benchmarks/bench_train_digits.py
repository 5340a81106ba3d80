"""The README's first training command, measured: accuracy and wall time of

    resnet-lab train --model resnet20 --data digits --epochs 15 --quiet --out <tmp>

in a fresh process, timed from launch to exit, with the run's own split of that time
(``timings.json``), its printed output, and the sha256 of its ``metrics.jsonl``. Target: test
accuracy >= 97%.

    python benchmarks/bench_train_digits.py
    python benchmarks/bench_train_digits.py --smoke --out /tmp/x.json      # resnet8, 1 epoch
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

TARGET_ACC = 0.97


def main(argv=None) -> dict:
    from resnet_lab.runtime import hardware_info
    from resnet_lab.files import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="resnet8, 1 epoch: for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.model, args.epochs = "resnet8", 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "resnet_lab", "train", "--model", args.model, "--data", "digits",
               "--epochs", str(args.epochs), "--seed", str(args.seed), "--quiet", "--out", str(run)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        wall = time.perf_counter() - t0
        raw = (run / "metrics.jsonl").read_bytes()
        history = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        timings = json.loads((run / "timings.json").read_text())
    evaluated = [h["test_acc"] for h in history if h.get("test_acc") is not None]
    result = {"benchmark": "train_digits", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware_info("cpu"),
              "command": f"resnet-lab train --model {args.model} --data digits --epochs {args.epochs} "
                         f"--seed {args.seed} --quiet --out <tmp>",
              "settings": {"model": args.model, "epochs": args.epochs, "seed": args.seed, "smoke": args.smoke},
              # other jobs on the machine slow the run down; the 1-minute load average says how busy it was
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "wall_s": wall, "timings": timings, "final_test_acc": history[-1]["test_acc"],
              "best_test_acc": max(evaluated) if evaluated else None,
              "test_curve": [(h["epoch"], h["test_acc"]) for h in history if h.get("test_acc") is not None],
              "target_acc": TARGET_ACC, "meets_target": history[-1]["test_acc"] >= TARGET_ACC,
              "metrics_sha256": hashlib.sha256(raw).hexdigest(), "stdout": proc.stdout}
    out = args.out or ROOT / "benchmarks" / "results" / f"train_digits-{args.model}-cpu.json"
    write_json(out, result)
    print(proc.stdout, end="")
    print(f"{args.model} on digits, {args.epochs} epochs: final test accuracy {result['final_test_acc']:.2%} "
          f"(target {TARGET_ACC:.0%}: {'met' if result['meets_target'] else 'NOT met'}) in {wall:.1f} s wall")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
