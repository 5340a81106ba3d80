"""Start-up cost: wall time of a fresh Python process that imports torch, the library, or the CLI.

Each variant is a new interpreter (``python -c "import ..."``), timed from launch to exit, run
round by round in turn (all variants in round 1, then round 2, ...) so that load on the machine
hits them alike; the result is the median per variant. ``python -c pass`` is the interpreter's
own start-up, so ``import X`` minus it is what importing X costs.

    python benchmarks/bench_import_time.py                 # 7 rounds
    python benchmarks/bench_import_time.py --smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

VARIANTS = {
    "python": "pass",
    "torch": "import torch",
    "resnet_lab": "import resnet_lab",
    "cli": "import resnet_lab.cli.main",  # what `resnet-lab ...` imports before parsing its arguments
}


def time_process(code: str) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    from resnet_lab.runtime import hardware_info
    from resnet_lab.files import write_json

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--smoke", action="store_true", help="1 round, for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds = 1
    load_before = os.getloadavg()[0]
    time_process("import resnet_lab.cli.main")  # untimed: warms the file cache for every variant
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, code in VARIANTS.items():
            times[name].append(time_process(code))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"benchmark": "import_time", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware_info("cpu"), "python_executable": sys.executable,
              "settings": {"rounds": args.rounds, "smoke": args.smoke, "variants": VARIANTS},
              # other jobs on the machine slow every process down; the 1-minute load average says how busy it was
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "wall_s": times, "median_wall_s": medians,
              "median_import_s": {name: medians[name] - medians["python"] for name in VARIANTS if name != "python"}}
    out = args.out or ROOT / "benchmarks" / "results" / "import_time-cpu.json"
    write_json(out, result)
    for name, code in VARIANTS.items():
        print(f"{code:28s} {medians[name]:.2f} s median wall over {args.rounds} round(s)"
              + (f" ({medians[name] - medians['python']:.2f} s more than `python -c pass`)"
                 if name != "python" else ""))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
