"""``jobs="auto"``: how many runs at once train the most images per second on this device.

The probe trains ``steps`` steps of one run's settings in 1, 2, 4 and 8 workers at once (never
more than the runs left) and stops at the first count that does not beat the best so far. It
trains in ``out/.probe`` (removed afterwards); ``sweep.json`` records what it measured.

What a count scores (``overlap_rate``): the images all its workers trained per second while every
one of them was past its first quarter of steps (start-up, autotuning, graph capture) and none
had finished, from the wall-clock time of each worker's finer-curve rows. Workers start seconds
apart (each imports torch), so summing each one's own rate would count steps that ran alone as
if they had run together. A task's workers report their own rate (``task.py``).
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

from ...files import write_json
from ...text import counted
from .grid import TRAIN, RunSpec
from .run_state import SPEC_FILE, STDERR_FILE, read_status
from .task import images_per_s as task_images_per_s
from .worker import launch, threads_per_worker

COUNTS = (1, 2, 4, 8)


def probe_jobs(spec: RunSpec, out: Path, device: str, runs_left: int, steps: int,
               log: Callable[[str], object]) -> dict:
    """Measure, pick the count with the most images/s in all, return the record for sweep.json."""
    base = out / ".probe"
    results = []
    try:
        for count in (c for c in COUNTS if c <= max(runs_left, 1)):
            rate = _aggregate_rate(spec, base / f"jobs{count}", count, device, steps)
            results.append({"jobs": count, "images_per_s": rate})
            log(f"sweep: probe, {counted(count, 'job')} at once: {rate:,.0f} images/s in all")
            if rate <= max(r["images_per_s"] for r in results[:-1] or [{"images_per_s": 0.0}]):
                break
    finally:
        shutil.rmtree(base, ignore_errors=True)
    best = max(results, key=lambda r: r["images_per_s"])
    log(f"sweep: jobs auto -> {best['jobs']}")
    return {"jobs": best["jobs"], "device": device, "host": platform.node(), "steps": steps, "run": spec.name,
            "results": results, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _aggregate_rate(spec: RunSpec, base: Path, count: int, device: str, steps: int) -> float:
    """``count`` workers of the run's settings at once, ``steps`` steps each: their images/s summed."""
    dirs = [base / f"worker{i}" for i in range(count)]
    for run_dir in dirs:
        write_json(run_dir / SPEC_FILE, _probe_spec(spec, steps, run_dir.name))
    workers = [launch(run_dir, device, threads_per_worker(count)) for run_dir in dirs]
    try:
        codes = [w.wait() for w in workers]
    except BaseException:  # Ctrl-C during the probe: no worker outlives it
        for w in workers:
            w.kill()
            w.wait()
        raise
    for run_dir, code in zip(dirs, codes):
        status = read_status(run_dir, run_dir.name)
        if code != 0 or status.state != "done":
            from ...errors import UserError

            reason = (run_dir / STDERR_FILE).read_text().strip().splitlines()[-1:] or [f"exit status {code}"]
            raise UserError(f"the jobs probe could not train {spec.name} ({reason[0]}); fix that run's settings "
                            "or give --jobs N")
    if spec.task != TRAIN:
        return sum(task_images_per_s(run_dir) for run_dir in dirs)
    from ..checkpoint import load_checkpoint

    curves = [_steady_points(load_checkpoint(d / "last.pt").get("step_history", []), steps) for d in dirs]
    if any(len(points) < 2 for points in curves):  # too few steps for a curve: each worker's own rate
        return sum(_images_per_s(run_dir) for run_dir in dirs)
    return overlap_rate(curves, spec.config.batch_size)


def _steady_points(step_history: list[dict], steps: int) -> list[tuple[float, int]]:
    """(wall time, step) of the rows after the first quarter of the run's steps."""
    return [(row["time"], row["step"]) for row in step_history if "time" in row and row["step"] >= steps // 4]


def overlap_rate(curves: list[list[tuple[float, int]]], batch_size: int) -> float:
    """Images per second of all workers together, over the time when all of them were training.

    ``curves``: per worker, (wall time, step) points. Without such a time (a worker finished
    before another started) the images of every worker over the whole span: a lower bound."""
    start, end = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
    if end <= start:
        start, end = min(c[0][0] for c in curves), max(c[-1][0] for c in curves)
    steps = sum(_steps_at(c, end) - _steps_at(c, start) for c in curves)
    return steps * batch_size / max(end - start, 1e-9)


def _steps_at(curve: list[tuple[float, int]], t: float) -> float:
    """The step a worker had reached at time ``t``, linear between its points (clamped at the ends)."""
    import numpy as np

    times, steps = zip(*curve)
    return float(np.interp(t, times, steps))


def _probe_spec(spec: RunSpec, steps: int, worker: str) -> dict:
    head = {"name": f"probe-{worker}", "index": -1, "settings": {}}
    if spec.task != TRAIN:  # a task is shortened through its config's steps (task.py)
        return {**head, "task": spec.task, "config": {**spec.config_dict(), "steps": steps}}
    config = dataclasses.replace(spec.config, steps=steps, epochs=None, eval_every=0, tensorboard=False,
                                 log_every=max(1, steps // 10))  # timed rows for overlap_rate
    return {**head, "config": config.to_dict()}


def _images_per_s(run_dir: Path) -> float:
    """Images per second over the worker's training steps (its metrics rows, weighted by their time)."""
    from ...diagnostics.records import read_jsonl

    rows = read_jsonl(run_dir / "metrics.jsonl")
    seconds = sum(r["time_s"] for r in rows)
    return sum(r["images_per_s"] * r["time_s"] for r in rows) / max(seconds, 1e-9)
