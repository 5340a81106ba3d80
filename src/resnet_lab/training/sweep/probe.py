"""``jobs="auto"``: how many runs at once train the most images per second on this device.

The probe trains one run's settings in 1, 2, 4 and 8 workers at once (never more than the runs
left) and stops at the first count that does not beat the best so far. It trains in a folder of
its own, ``out/.probe-XXXXXXXX``, locked while it lives (``probe.lock``) and removed however it ends
(``_scratch``); ``sweep.json`` records what it measured.

A count is timed by the clock, not by a number of steps: workers start seconds apart (each imports
torch, loads the data and sets up its model), and on a GPU a few dozen steps take less time than
that, so a short run per worker timed runs that never overlapped (on an H200, 20 steps each picked
1 job, while 4 runs at once trained about 6,800 images/s each). So the probe waits until every
worker has set up (its ``config.json`` written), lets them train together for ``seconds``, then
stops them with SIGTERM (each saves a checkpoint, as in any sweep).

What a count scores (``overlap_rate``): the images all its workers trained per second while every
one of them was past the first quarter of that window (autotuning, graph capture) and none had
stopped, from the wall-clock time of each worker's finer-curve rows. A task run (``task.py``)
cannot be stopped half-way: it trains ``TASK_STEPS`` steps and reports its own rate.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ...errors import UserError
from ...files import try_lock, write_json
from ...text import counted
from .grid import TRAIN, RunSpec
from .run_state import LOCK_FILE, SPEC_FILE, STDERR_FILE, is_locked, read_status
from .task import images_per_s as task_images_per_s
from .worker import launch, threads_per_worker

COUNTS = (1, 2, 4, 8)
PROBE_SECONDS = 10.0  # the window each count's workers train together
TASK_STEPS = 20
RETRIES = 2  # a window with too few timed steps is tried again, twice as long
LOG_EVERY = 10  # steps between the timed rows: a row reads the loss, which waits for the GPU
PROBE_LOCK = "probe.lock"  # held by the probe that made the folder, for as long as it lives


def probe_jobs(spec: RunSpec, out: Path, device: str, runs_left: int, seconds: float,
               log: Callable[[str], object]) -> dict:
    """Measure, pick the count with the most images/s in all, return the record for sweep.json."""
    results = []
    with _scratch(out, log) as base:
        for count in (c for c in COUNTS if c <= max(runs_left, 1)):
            rate = _rate_in_a_long_enough_window(spec, base / f"jobs{count}", count, device, seconds, log)
            results.append({"jobs": count, "images_per_s": rate})
            log(f"sweep: probe, {counted(count, 'job')} at once: {rate:,.0f} images/s in all")
            if rate <= max(r["images_per_s"] for r in results[:-1] or [{"images_per_s": 0.0}]):
                break
    best = max(results, key=lambda r: r["images_per_s"])
    log(f"sweep: jobs auto -> {best['jobs']}")
    return {"jobs": best["jobs"], "device": device, "host": platform.node(), "seconds": seconds,
            "run": spec.name, "results": results, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


@contextmanager
def _scratch(out: Path, log: Callable[[str], object]):
    """A new folder for this probe in ``out``, removed when it ends, however it ends. Folders that killed
    probes left (``.probe-*`` with a ``probe.lock`` no one holds, and no worker of theirs alive) are removed
    first; anything else, another sweep's probe in progress (a shard) included, is left as it is."""
    for left in out.glob(".probe-*"):
        lock = try_lock(left / PROBE_LOCK) if (left / PROBE_LOCK).is_file() else None
        if lock is not None:
            try:
                if not any(is_locked(held.parent) for held in left.rglob(LOCK_FILE)):
                    _remove(left, log)
            finally:
                os.close(lock)
    base = Path(tempfile.mkdtemp(prefix=".probe-", dir=out))
    lock = try_lock(base / PROBE_LOCK)
    try:
        yield base
    finally:
        _remove(base, log)
        os.close(lock)


def _remove(folder: Path, log: Callable[[str], object]) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as err:  # said, not passed over: the folder is left for the user to delete
        log(f"sweep: warning: the jobs probe's folder {folder} could not be removed ({err}); delete it")


def _rate_in_a_long_enough_window(spec: RunSpec, base: Path, count: int, device: str, seconds: float,
                                  log: Callable[[str], object]) -> float:
    """``_aggregate_rate``, the window doubled (twice at most) while it holds too few timed steps: a
    loaded machine's first steps can take seconds."""
    for attempt in range(RETRIES + 1):
        rate = _aggregate_rate(spec, base / f"try{attempt}", count, device, seconds * 2**attempt)
        if rate is not None:
            return rate
        if attempt < RETRIES:
            log(f"sweep: probe, {counted(count, 'job')} at once: too few steps in {seconds * 2**attempt:g} s; "
                f"again with {seconds * 2**(attempt + 1):g} s")
    raise UserError(f"the jobs probe's {seconds * 2**RETRIES:g} s were too short for {spec.name} to train two "
                    f"timed steps in {counted(count, 'worker')} at once; give a longer --probe-seconds, or --jobs N")


def _aggregate_rate(spec: RunSpec, base: Path, count: int, device: str, seconds: float) -> float | None:
    """``count`` workers of the run's settings at once for ``seconds`` together: their images/s summed
    (None: a worker recorded fewer than two timed steps)."""
    dirs = [base / f"worker{i}" for i in range(count)]
    for run_dir in dirs:
        write_json(run_dir / SPEC_FILE, _probe_spec(spec, run_dir.name))
    workers = []
    try:
        for run_dir in dirs:  # started inside the try: a failure to start the next still stops the first
            workers.append(launch(run_dir, device, threads_per_worker(count)))
        steady_from = _train_together(workers, dirs, seconds) if spec.task == TRAIN else 0.0
        codes = [w.wait() for w in workers]
    except BaseException:  # Ctrl-C during the probe: no worker outlives it (nor writes in its folder again)
        for w in workers:
            w.kill()
            w.wait()
        raise
    statuses = [read_status(run_dir, run_dir.name) for run_dir in dirs]
    for run_dir, code, state in zip(dirs, codes, (s.state for s in statuses)):
        # Stopped at the window's end: at a step boundary (143), or while it was finishing (-15); either way
        # its last.pt, written atomically, holds the rows the probe reads.
        stopped = code in (128 + signal.SIGTERM, -signal.SIGTERM) and spec.task == TRAIN
        if not (code == 0 or stopped) or state not in ("done", "interrupted"):
            reason = (run_dir / STDERR_FILE).read_text().strip().splitlines()[-1:] or [f"exit status {code}"]
            raise UserError(f"the jobs probe could not train {spec.name} ({reason[0]}); fix that run's settings "
                            "or give --jobs N")
    if spec.task != TRAIN:
        return sum(task_images_per_s(run_dir) for run_dir in dirs)
    from ..checkpoint import load_checkpoint

    # No last.pt: stopped before its first step (a SIGTERM before the trainer's handler is in place)
    checkpoints = [load_checkpoint(d / "last.pt") if (d / "last.pt").exists() else {} for d in dirs]
    # A run shorter than the window counts whole: there is no more of it to time. Its checkpoint says so, not
    # its exit status or state: the window's SIGTERM may reach a worker that trained every step but had not yet
    # exited, or written result.json.
    curves = [_points_from(c.get("step_history", []), 0.0 if s.total_steps and s.step >= s.total_steps else steady_from)
              for c, s in zip(checkpoints, statuses)]
    if any(len(points) < 2 for points in curves):
        return None
    return overlap_rate(curves, spec.config.batch_size)


def _train_together(workers: list[subprocess.Popen], dirs: list[Path], seconds: float) -> float:
    """Wait until every worker has set up, let them train ``seconds``, SIGTERM those still training;
    the wall-clock time from which their rows count (the window's first quarter is warm-up)."""
    while not all((d / "config.json").exists() or w.poll() is not None for w, d in zip(workers, dirs)):
        time.sleep(0.1)
    together = time.time()
    while time.time() < together + seconds and any(w.poll() is None for w in workers):
        time.sleep(min(0.1, seconds / 10))
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    return together + seconds / 4


def _points_from(step_history: list[dict], start: float) -> list[tuple[float, int]]:
    """(wall time, step) of the rows at or after ``start``."""
    return [(row["time"], row["step"]) for row in step_history if row.get("time", 0.0) >= start]


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


def _probe_spec(spec: RunSpec, worker: str) -> dict:
    head = {"name": f"probe-{worker}", "index": -1, "settings": {}}
    if spec.task != TRAIN:  # a task is shortened through its config's steps (task.py)
        return {**head, "task": spec.task, "config": {**spec.config_dict(), "steps": TASK_STEPS}}
    steps = spec.config.steps or LOG_EVERY * 10  # a run of a few steps times each of them
    config = dataclasses.replace(spec.config, eval_every=0, tensorboard=False,
                                 log_every=max(1, min(LOG_EVERY, steps // 10)))
    return {**head, "config": config.to_dict()}

