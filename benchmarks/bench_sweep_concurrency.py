"""Sweep concurrency: aggregate training images/s of N runs at once on one device, as ratios to 1 run.

What runs is the user's command, one per job count N (runs are seeds 0..N-1 of one model):

    resnet-lab sweep --model M --seed 0 .. N-1 --recipe paper --batch-size 128 --steps 64000 --eval-every 0
        --data D --devices DEV --jobs N --no-tensorboard --out <tmp>/jobsN

so every run is a sweep worker process of its own, as in `resnet-lab sweep` and `resnet-lab degradation --jobs`.
The benchmark polls each run's ``metrics.jsonl`` (one row per epoch, written atomically) every
``--poll-s`` seconds and notes when each row first appears. What is timed:

- warm-up discarded: each run's first epoch (process start, data loading, cuDNN autotuning) and any
  epoch that ended before every one of the N runs had finished its first epoch (time T0);
- per run: the images of its epochs that ended after T0, divided by the wall time from its first
  row seen at or after T0 to its last row seen (``images_per_s``: checkpoint saves between epochs
  included, as a user's sweep spends them); beside it ``loop_images_per_s``, the same epochs' own
  training-loop rate (the trainer's per-epoch ``images_per_s``: the loop only);
- aggregate: the sum over the N runs (all N were training throughout: the sweep is stopped with
  SIGTERM only after every run has ``--epochs-measured`` epochs after T0, and no run ends earlier).

With ``--compare-graph`` it then measures the best count once more with every step replayed as one
CUDA graph (``--cuda-graph``: the same arithmetic, fewer kernel launches; the NaN policy ``stop`` is
checked at each epoch's end instead of each step), as ``graphed_at_best`` with its ratio to the eager
figure: what ``reproduce --cuda-graph`` would gain.

Then, unless ``--no-probe`` or the budget is spent, it asks ``--jobs auto`` which count it picks:
the same sweep with 8 runs (``--probe-runs``) and ``--jobs auto`` (the engine's probe: 1, 2, 4, 8
workers training together for ``--probe-seconds`` each), stopped with SIGTERM once the probe has
printed its pick; the probe's own figures come from the sweep's ``sweep.json``.

``--budget-s`` bounds the whole benchmark: each job count gets a share of what is left (minus the
reserves for the graph and the probe) in proportion to N + 2, since N runs at once take about N
times as long per epoch after a start-up of their own; a sweep still short of its epochs at its
deadline is stopped and its count reported as not measured. (On the H200 on 2026-11-29 equal
shares of a 190 s budget gave 11 s to one job, and no count was measured.) Goal (issue #16):
>= 3x one run at the best count.

    python benchmarks/bench_sweep_concurrency.py --device cuda --data npz:/tmp/cifar/cifar10-full.npz --budget-s 300
    python benchmarks/bench_sweep_concurrency.py --smoke --out /tmp/x.json   # CPU: resnet8, digits, jobs 1 and 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

GOAL = 3.0  # issue #16: aggregate images/s at the best job count >= 3x one job
STOP_WAIT_S = 60  # a SIGTERMed sweep's workers checkpoint and exit; after this, SIGKILL


GRAPHED = ["--cuda-graph"]  # what reproduce --cuda-graph adds to the paper recipe


def sweep_command(args, jobs, seeds: int, out: Path, extra=()) -> list[str]:
    return [sys.executable, "-m", "resnet_lab", "sweep", "--model", args.model,
            "--seed", *(str(s) for s in range(seeds)), "--recipe", "paper", "--batch-size", str(args.batch_size),
            "--steps", str(args.steps), "--eval-every", "0", "--data", args.data, "--devices", args.device,
            "--jobs", str(jobs), "--no-tensorboard", "--status-every", "3600", *args.train_args, *extra,
            "--out", str(out)]


def _env() -> dict:
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}


def _stop(proc: subprocess.Popen) -> int:
    """SIGTERM the sweep (its workers checkpoint and exit: 143), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _read_rows(run_dir: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def measure_count(args, jobs: int, base: Path, deadline: float, extra=()) -> dict:
    """``jobs`` runs at once until each has ``epochs_measured`` epochs after warm-up (or the deadline)."""
    out = base / f"jobs{jobs}{'-graphed' if extra else ''}"
    cmd = sweep_command(args, jobs, jobs, out, extra)
    t_launch = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_env(), text=True)
    seen: dict[str, list[tuple[float, dict]]] = {}  # run name -> [(time first seen, row)]
    t0 = None
    ready = False
    try:
        while time.perf_counter() < deadline and proc.poll() is None:
            now = time.perf_counter()
            for run_dir in out.glob("*/"):
                rows = _read_rows(run_dir)
                got = seen.setdefault(run_dir.name, [])
                got.extend((now, row) for row in rows[len(got):])
            if len(seen) == jobs and all(seen.values()):
                t0 = max(rows[0][0] for rows in seen.values())  # every run past its first epoch
                ready = all(sum(t >= t0 for t, _ in rows) >= args.epochs_measured + 1 for rows in seen.values())
                if ready:
                    break
            time.sleep(args.poll_s)
    finally:
        t_stop = time.perf_counter()
        rc = _stop(proc)
    output = proc.stdout.read() if proc.stdout else ""
    row = {"jobs": jobs, "command": " ".join(cmd), "sweep_exit_status": rc, "wall_s": round(t_stop - t_launch, 2),
           "measured": ready}
    if not ready:
        row["why_not"] = ("sweep exited early: " + output.strip().splitlines()[-1] if proc.returncode not in (
            None, 143, -signal.SIGTERM) and output.strip() else "deadline reached before every run had "
            f"{args.epochs_measured} epochs after warm-up")
        row["output_tail"] = output.strip().splitlines()[-5:]
        return row
    runs = []
    for name, rows in sorted(seen.items()):
        after = [(t, r) for t, r in rows if t >= t0]
        (t_first, first), last = after[0], after[-1]
        window = [r for _, r in after[1:]]
        images = (last[1]["step"] - first["step"]) * args.batch_size
        loop_s = sum((r["step"] - p["step"]) * args.batch_size / r["images_per_s"]
                     for p, r in zip([first, *window], window))
        runs.append({"run": name, "epochs": len(window), "images": images, "seconds": last[0] - t_first,
                     "images_per_s": images / (last[0] - t_first), "loop_images_per_s": images / loop_s,
                     "epoch_rows_images_per_s": [round(r["images_per_s"], 1) for r in window],
                     "warmup_epoch_s": rows[0][1]["time_s"]})
    row.update({"runs": runs, "t0_after_launch_s": round(t0 - t_launch, 2),
                "images_per_s": sum(r["images_per_s"] for r in runs),
                "loop_images_per_s": sum(r["loop_images_per_s"] for r in runs)})
    return row


def compare_graph(args, best: dict | None, base: Path, start: float) -> dict:
    """The best count again with CUDA-graph steps; ``ratio_to_eager``: its images/s over the eager one's."""
    left = args.budget_s - (time.perf_counter() - start) - (0 if args.no_probe else args.probe_reserve_s)
    if best is None or left < 10:
        return {"measured": False, "why_not": "no eager count measured" if best is None else "budget spent"}
    row = measure_count(args, best["jobs"], base, time.perf_counter() + left - STOP_WAIT_S / 4, GRAPHED)
    if row.get("images_per_s"):
        eager = best["images_per_s"]
        row["ratio_to_eager"] = row["images_per_s"] / eager
        print(f"{best['jobs']} job(s) with CUDA-graph steps: {row['images_per_s']:,.0f} images/s in all, "
              f"{row['ratio_to_eager']:.2f}x the eager steps", flush=True)
    return row


def probe_pick(args, base: Path, deadline: float) -> dict:
    """What ``--jobs auto`` picks: the engine's probe in a real sweep of ``--probe-runs`` runs (it tries
    1, 2, 4, 8 workers, never more than the runs), stopped once it has picked."""
    out = base / "auto"
    cmd = sweep_command(args, "auto", args.probe_runs, out, ["--probe-seconds", str(args.probe_seconds)])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=_env())
    lines, picked = [], None
    os.set_blocking(proc.stdout.fileno(), False)
    try:
        buffer = ""
        while time.perf_counter() < deadline and proc.poll() is None and picked is None:
            buffer += (proc.stdout.read() or b"").decode(errors="replace")
            *done, buffer = buffer.split("\n")
            lines += done
            picked = next((int(line.rsplit(" ", 1)[1]) for line in lines if "jobs auto -> " in line), None)
            time.sleep(0.2)
    finally:
        rc = _stop(proc)
    try:
        probe = json.loads((out / "sweep.json").read_text()).get("probe")
    except (FileNotFoundError, json.JSONDecodeError):
        probe = None
    return {"command": " ".join(cmd), "jobs": picked, "probe": probe, "sweep_exit_status": rc,
            "lines": [line for line in lines if "probe" in line or "jobs auto" in line],
            **({} if picked else {"why_not": "no pick before the deadline"})}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="the one device all jobs share (cpu, cuda, cuda:N)")
    p.add_argument("--data", default="digits", help="as for train: npz:PATH (full CIFAR-10 on a GPU), digits, ...")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128, help="the paper recipe's batch (128)")
    p.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4, 8], help="counts measured, in order")
    p.add_argument("--steps", type=int, default=64_000,
                   help="run length given to the sweep (it is stopped long before)")
    p.add_argument("--epochs-measured", type=int, default=1, help="epochs per run timed after warm-up")
    p.add_argument("--budget-s", type=float, default=300.0, help="the whole benchmark, probe included")
    p.add_argument("--probe-reserve-s", type=float, default=95.0, help="kept back from the counts for the probe")
    p.add_argument("--probe-seconds", type=float, default=10.0, help="as for sweep --probe-seconds")
    p.add_argument("--probe-runs", type=int, default=8, help="runs in the probed sweep (8: all of 1, 2, 4, 8 tried)")
    p.add_argument("--no-probe", action="store_true", help="skip asking --jobs auto for its pick")
    p.add_argument("--compare-graph", action="store_true",
                   help="also measure the best count with CUDA-graph steps (reproduce --cuda-graph)")
    p.add_argument("--graph-reserve-s", type=float, default=55.0, help="kept back for --compare-graph")
    p.add_argument("--poll-s", type=float, default=0.05)
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="more sweep/train flags, last")
    p.add_argument("--smoke", action="store_true", help="CPU, resnet8, digits at 8 px, jobs 1 and 2: for the tests")
    p.add_argument("--out", help="JSON output (default: benchmarks/results/sweep_concurrency-<device>.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.model, args.data, args.jobs = "cpu", "resnet8", "digits", [1, 2]
        args.epochs_measured, args.probe_seconds, args.probe_runs, args.probe_reserve_s = 1, 3.0, 2, 25.0
        # A cap, not a wait: room for a loaded 2-core machine (one run took 30 s while other tests ran).
        args.budget_s = min(args.budget_s, 150.0 + (args.graph_reserve_s if args.compare_graph else 0.0))
        args.train_args = ["--image-size", "8", *args.train_args]
    return args


def main(argv=None) -> dict:
    from resnet_lab.files import write_json
    from resnet_lab.runtime import hardware_info, pick_device

    args = parse_args(argv)
    device = pick_device(args.device)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"sweep_concurrency-{device.type}.json")
    start = time.perf_counter()
    result = {"benchmark": "sweep_concurrency", "hardware": hardware_info(device),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load_average_before": os.getloadavg(),
              "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "what_is_timed": __doc__.split("\n\n")[2:5], "goal_ratio": GOAL, "rows": []}
    with tempfile.TemporaryDirectory(prefix="sweep-concurrency-") as tmp:
        reserve = (0 if args.no_probe else args.probe_reserve_s) + (args.graph_reserve_s if args.compare_graph else 0)
        for i, jobs in enumerate(args.jobs):
            left = args.budget_s - (time.perf_counter() - start) - reserve
            share = left * (jobs + 2) / sum(n + 2 for n in args.jobs[i:]) - 5  # 5 s: room for the stop
            if share < 5:
                result["rows"].append({"jobs": jobs, "measured": False, "why_not": "budget spent"})
                continue
            row = measure_count(args, jobs, Path(tmp), time.perf_counter() + share)
            result["rows"].append(row)
            one = result["rows"][0].get("images_per_s")
            if row.get("images_per_s") and one:
                row["ratio_to_1_job"] = row["images_per_s"] / one
                row["loop_ratio_to_1_job"] = row["loop_images_per_s"] / result["rows"][0]["loop_images_per_s"]
            if row["measured"]:
                ratio = f", {row['ratio_to_1_job']:.2f}x one job" if "ratio_to_1_job" in row else ""
                print(f"{jobs} job(s): {row['images_per_s']:,.0f} images/s in all "
                      f"(loop {row['loop_images_per_s']:,.0f}){ratio}", flush=True)
            else:
                print(f"{jobs} job(s): not measured ({row['why_not']})", flush=True)
            write_json(out, result)  # after each count: a cut-off keeps the rest
        measured = [r for r in result["rows"] if "ratio_to_1_job" in r]
        best = max(measured, key=lambda r: r["images_per_s"], default=None)
        result["best"] = None if best is None else {"jobs": best["jobs"], "ratio_to_1_job": best["ratio_to_1_job"],
                                                    "images_per_s": best["images_per_s"],
                                                    "meets_goal": best["ratio_to_1_job"] >= GOAL}
        if args.compare_graph:
            result["graphed_at_best"] = compare_graph(args, result["best"], Path(tmp), start)
        left = args.budget_s - (time.perf_counter() - start)
        if args.no_probe:
            result["jobs_auto"] = {"why_not": "--no-probe"}
        elif left < 10:
            result["jobs_auto"] = {"why_not": f"budget spent ({left:.0f} s left)"}
        else:
            result["jobs_auto"] = probe_pick(args, Path(tmp), time.perf_counter() + left - 5)
    result["elapsed_s"] = time.perf_counter() - start
    result["load_average_after"] = os.getloadavg()
    write_json(out, result)
    if best:
        print(f"best: {best['jobs']} jobs, {best['ratio_to_1_job']:.2f}x one job (goal >= {GOAL}x: "
              f"{'met' if best['ratio_to_1_job'] >= GOAL else 'NOT met'})")
    print(f"--jobs auto picks: {result['jobs_auto'].get('jobs') or result['jobs_auto'].get('why_not')}")
    print(f"wrote {out} ({result['elapsed_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
