"""``jobs="auto"``: how many runs at once train the most images per second on this device.

The probe trains ``steps`` steps of one run's settings in 1, 2, 4 and 8 workers at once (never
more than the runs left), adds up the images/s each worker measured over its training steps (a
task's worker: what its result says, ``task.py``),
and stops at the first count that does not beat the best so far. It trains in
``out/.probe`` (removed afterwards); ``sweep.json`` records what it measured.
"""

from __future__ import annotations

import dataclasses
import platform
import shutil
import time
from pathlib import Path
from typing import Callable

from ...files import write_json
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
            log(f"sweep: probe, {count} job(s) at once: {rate:,.0f} images/s in all")
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
    rates = []
    for run_dir, code in zip(dirs, codes):
        status = read_status(run_dir, run_dir.name)
        if code != 0 or status.state != "done":
            from ...errors import UserError

            reason = (run_dir / STDERR_FILE).read_text().strip().splitlines()[-1:] or [f"exit status {code}"]
            raise UserError(f"the jobs probe could not train {spec.name} ({reason[0]}); fix that run's settings "
                            "or give --jobs N")
        rates.append(_images_per_s(run_dir) if spec.task == TRAIN else task_images_per_s(run_dir))
    return sum(rates)


def _probe_spec(spec: RunSpec, steps: int, worker: str) -> dict:
    head = {"name": f"probe-{worker}", "index": -1, "settings": {}}
    if spec.task != TRAIN:  # a task is shortened through its config's steps (task.py)
        return {**head, "task": spec.task, "config": {**spec.config_dict(), "steps": steps}}
    config = dataclasses.replace(spec.config, steps=steps, epochs=None, eval_every=0, tensorboard=False)
    return {**head, "config": config.to_dict()}


def _images_per_s(run_dir: Path) -> float:
    """Images per second over the worker's training steps (its metrics rows, weighted by their time)."""
    from ...diagnostics.records import read_jsonl

    rows = read_jsonl(run_dir / "metrics.jsonl")
    seconds = sum(r["time_s"] for r in rows)
    return sum(r["images_per_s"] * r["time_s"] for r in rows) / max(seconds, 1e-9)
