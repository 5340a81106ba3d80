"""How long the main job takes: `resnet-lab demo` run as a user runs it, timed from launch to exit.

One run (it takes minutes), in a fresh process; the result has the wall time, the demo's own
split (``timings_s`` from its ``demo.json``: degradation, survey, compare), its headline
findings, everything it printed, the hardware and the machine's load average before and after
(another job on the cores slows every part down).

    python benchmarks/bench_demo.py                         # digits on the CPU, the defaults
    python benchmarks/bench_demo.py --smoke --out /tmp/x.json   # tiny sizes through the library, for tests
"""

from __future__ import annotations

import argparse
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

# --smoke: the same function at sizes that take seconds (the command has no size flags).
SMOKE = ("from resnet_lab.experiments.demo import run_demo; run_demo(out={out!r}, sizes={{"
         "'degradation': {{'depths': (8, 14), 'epochs': 1, 'image_size': 16, 'batch_size': 64}}, "
         "'survey': {{'depths': (8,), 'steps': 3, 'batch_size': 16, 'image_size': 16, 'batches_at_init': 1}}, "
         "'compare': {{'models': ['resnet20', 'resnet32'], 'quick': True}}}})")


def main(argv=None) -> dict:
    from resnet_lab.files import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits")
    p.add_argument("--device", default="cpu")
    p.add_argument("--smoke", action="store_true", help="tiny sizes through the library, for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        demo_dir = Path(tmp) / "demo"
        command = ([sys.executable, "-c", SMOKE.format(out=str(demo_dir))] if args.smoke else
                   [sys.executable, "-m", "resnet_lab", "demo", "--data", args.data, "--device", args.device,
                    "--out", str(demo_dir)])
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"the demo failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        summary = json.loads((demo_dir / "demo.json").read_text())
    result = {"benchmark": "demo", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": "resnet-lab demo" + ("" if args.smoke else f" --data {args.data} --device {args.device}"),
              "smoke": args.smoke, "hardware": summary["hardware"],
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "wall_s": wall, "timings_s": summary["timings_s"], "run_time_s": summary["run_time_s"],
              "headlines": summary["headlines"], "stdout": done.stdout}
    out = args.out or ROOT / "benchmarks" / "results" / f"demo-{args.data}-{args.device}.json"
    write_json(out, result)
    parts = ", ".join(f"{name} {s:.0f} s" for name, s in result["timings_s"].items())
    print(f"{result['command']}: {wall:.0f} s from launch to exit ({parts}); wrote {out}")
    return result


if __name__ == "__main__":
    main()
