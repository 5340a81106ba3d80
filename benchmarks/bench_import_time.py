"""Start-up cost: wall time of a fresh Python process that imports torch, the library or the CLI,
or answers ``resnet-lab --help`` or ``resnet-lab report RUN_DIR``.

Each variant is a new interpreter (``python -c "..."``), timed from launch to exit, run round by
round in turn (all variants in round 1, then round 2, ...) so that load on the machine hits them
alike; the result is the median per variant and its ratio to ``import torch``. ``python -c pass``
is the interpreter's own start-up, so ``import X`` minus it is what importing X costs.
``report`` redraws a 2-step digits run made once, untimed, before the rounds (the background
renderer of every fast-recipe run does the same).

``--baseline-src DIR`` also runs every variant with another checkout's ``src`` (e.g. a git
worktree of an earlier commit) in the same rounds, as ``baseline:NAME``: a change measured side
by side with what it replaces.

    python benchmarks/bench_import_time.py                 # 7 rounds
    python benchmarks/bench_import_time.py --baseline-src /tmp/old/src
    python benchmarks/bench_import_time.py --smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
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

VARIANTS = {
    "python": "pass",
    "torch": "import torch",
    "resnet_lab": "import resnet_lab",
    "cli": "import resnet_lab.cli.main",  # what `resnet-lab ...` imports before parsing its arguments
    "help": "from resnet_lab.cli.main import main; main(['--help'])",
    "report": "from resnet_lab.cli.main import main; main(['report', {run_dir!r}])",
}


def time_process(code: str, src: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def make_run(run_dir: Path) -> None:
    """A 2-step digits run for ``report`` to redraw (its own report not drawn)."""
    subprocess.run([sys.executable, "-m", "resnet_lab", "train", "--model", "resnet8", "--data", "digits",
                    "--image-size", "8", "--steps", "2", "--device", "cpu", "--report", "none", "--quiet",
                    "--no-tensorboard", "--out", str(run_dir)], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def main(argv=None) -> dict:
    from resnet_lab.files import write_json
    from resnet_lab.runtime import hardware_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--baseline-src", type=Path, help="another checkout's src folder, timed in the same rounds")
    p.add_argument("--smoke", action="store_true", help="1 round, for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.rounds = 1
    sources = {"": ROOT / "src", **({"baseline:": args.baseline_src.resolve()} if args.baseline_src else {})}
    with tempfile.TemporaryDirectory() as tmp:
        make_run(Path(tmp) / "run")
        codes = {name: code.format(run_dir=str(Path(tmp) / "run")) for name, code in VARIANTS.items()}
        load_before = os.getloadavg()[0]
        for src in sources.values():
            time_process("import resnet_lab.cli.main", src)  # untimed: warms the file cache
        times: dict[str, list[float]] = {prefix + name: [] for prefix in sources for name in VARIANTS}
        for _ in range(args.rounds):
            for prefix, src in sources.items():
                for name, code in codes.items():
                    times[prefix + name].append(time_process(code, src))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"benchmark": "import_time", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware_info("cpu"), "python_executable": sys.executable,
              "settings": {"rounds": args.rounds, "smoke": args.smoke, "variants": VARIANTS,
                           "sources": {prefix or "this": str(src) for prefix, src in sources.items()}},
              # other jobs on the machine slow every process down; the 1-minute load average says how busy it was
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "wall_s": times, "median_wall_s": medians,
              "median_import_s": {name: medians[name] - medians["python"] for name in VARIANTS if name != "python"},
              "ratio_to_import_torch": {name: medians[name] / medians["torch"] for name in medians}}
    out = args.out or ROOT / "benchmarks" / "results" / "import_time-cpu.json"
    write_json(out, result)
    for name in medians:
        print(f"{name:20s} {medians[name]:.2f} s median wall over {args.rounds} round(s) = "
              f"{result['ratio_to_import_torch'][name]:.2f}x `import torch`")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
