"""Run a `resnet-lab` command as a user runs it and keep what it printed, with the hardware, the
date and the wall time: the README's console blocks quote these files.

    python benchmarks/record_output.py --name compare-cpu -- compare resnet20 resnet56 resnet1202
    python benchmarks/record_output.py --name survey-stopped --interrupt-after 30 -- survey --jobs 2 ...
    python benchmarks/record_output.py --out /tmp/x.json -- models      # the suite's smoke test
    cd $(mktemp -d) && python ~/resnet-lab/benchmarks/record_output.py --name lightning-cpu --script \
        --versions lightning -- examples/lightning_gradients.py      # a script of the checkout, run here

Writes ``benchmarks/results/output-NAME.json`` (or ``--out``): ``command``, ``exit_status``,
``interrupt_after_s``, ``stdout``, ``stderr``, ``files`` (``--keep``'s texts; null: not written),
``wall_s``, ``hardware`` (with ``--versions``' packages), ``load_average_1min``, ``time``. The command
runs in the current directory.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing


def main(argv=None) -> dict:
    from resnet_lab.files import write_json
    from resnet_lab.runtime import hardware_info

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", help="results/output-NAME.json")
    p.add_argument("--out", type=Path, help="or this file")
    p.add_argument("--interrupt-after", type=float, metavar="S",
                   help="send SIGINT (what Ctrl-C sends) after S seconds, to record how the command stops")
    p.add_argument("--hardware", default="cpu", choices=("cpu", "cuda"), help="the device to describe (default cpu)")
    p.add_argument("--script", action="store_true",
                   help="the command is a Python script and its arguments (an example), not resnet-lab's")
    p.add_argument("--keep", nargs="+", default=[], metavar="FILE",
                   help="also keep these text files the command wrote (paths from the current directory)")
    p.add_argument("--versions", nargs="+", default=[], metavar="PKG", help="also record these packages' versions")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the resnet-lab command's arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not (args.name or args.out):
        p.error("give --name NAME (or --out FILE), then -- and the command")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    if args.script:  # a path not found here is a script of this checkout (examples/...), run here all the same
        script = command[0] if Path(command[0]).exists() else str(ROOT / command[0])
        argv = [sys.executable, script, *command[1:]]
    else:
        argv = [sys.executable, "-m", "resnet_lab", *command]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=args.interrupt_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    result = {"benchmark": "output", "command": ("python " if args.script else "resnet-lab ") + " ".join(command),
              "exit_status": proc.returncode, "interrupt_after_s": args.interrupt_after, "stdout": stdout,
              "stderr": stderr, "wall_s": wall,
              "hardware": {**hardware_info(args.hardware), **{pkg: version(pkg) for pkg in args.versions}},
              "files": {name: Path(name).read_text() if Path(name).is_file() else None for name in args.keep},
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    out = args.out or ROOT / "benchmarks" / "results" / f"output-{args.name}.json"
    write_json(out, result)
    print(f"{result['command']}: exit {proc.returncode} after {wall:.1f} s; wrote {out}")
    return result


if __name__ == "__main__":
    main()
