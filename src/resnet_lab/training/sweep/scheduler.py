"""The loop that keeps at most ``jobs`` workers per device busy until every run is done or failed.

Workers run in sessions of their own, so a terminal's Ctrl-C reaches only the sweep, which then
sends each worker exactly one SIGTERM (two signals would make a training worker stop without
saving its checkpoint; a task's worker just stops, ``task.py``). The sweep waits for them all
before it returns.
"""

from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ...signals import StopSignals
from ...text import counted
from .grid import TRAIN, RunSpec
from .progress import LiveLines, StatusClock, failed_line, finished_line
from .run_state import STDERR_FILE, RunStatus, clear_failure, is_locked, read_status, write_failure
from .worker import BUSY, launch

_POLL_S = 0.2
_INTERRUPTED = {128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT}


@dataclass
class _Worker:
    spec: RunSpec
    device: str
    process: subprocess.Popen
    started: float
    stderr_offset: int  # where this attempt's lines begin in worker.err


@dataclass
class Outcome:
    """What happened to this process's runs."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    interrupted: list[str] = field(default_factory=list)  # stopped by a signal: they resume next time
    unsaved: list[str] = field(default_factory=list)  # those of them stopped before their first checkpoint
    signum: int = 0  # the signal that stopped the sweep, if one did


class Scheduler:
    """``todo``: the runs to train, of ``total`` in this shard; ``on_change(running names)`` after each
    start and end (the manifest's refresh)."""

    def __init__(self, out: Path, todo: list[RunSpec], total: int, done_before: int, devices: list[str],
                 jobs: int, threads: int, log: Callable[[str], object], on_change: Callable[[list[str]], None],
                 status_every: float, live: LiveLines | None = None):
        self.out, self.queue, self.total, self.devices, self.jobs = out, list(todo), total, devices, jobs
        self.threads = threads
        self.live = live or LiveLines(out, total, done_before)
        self.log = lambda line: self.live.write(log, line)  # above the live lines, on a terminal
        self.on_change = on_change
        self.running: dict[str, _Worker] = {}
        self.outcome = Outcome()
        self.finished = done_before  # done or failed, for the "[k/N]" of each line
        self.clock = StatusClock(status_every, jobs * len(devices))
        self._forwarded = 0

    def run(self) -> Outcome:
        try:
            with StopSignals() as signals:
                while self.queue or self.running:
                    if signals.signum and self._forwarded < signals.count:
                        self._forward(signals.signum, signals.count)
                    self._reap()
                    if not signals.signum:
                        self._launch()
                    elif not self.running:
                        break
                    if self.clock.due():
                        self.log(self.clock.line(self._counts(), len(self.queue) + len(self.running)))
                    self.live.refresh(self.finished)
                    time.sleep(_POLL_S)
                self.outcome.signum = signals.signum
        finally:
            self.live.close()
        return self.outcome

    def _forward(self, signum: int, count: int) -> None:
        """One SIGTERM per worker per signal received: the worker saves a checkpoint and exits."""
        if self._forwarded == 0:
            training = all(w.spec.task == TRAIN for w in self.running.values())
            how = ("at their next step (each saves a checkpoint, or stops at once if still setting up)" if training
                   else "(a task keeps no checkpoint)")
            self.log(f"sweep: {signal.Signals(signum).name} received; stopping "
                     f"{counted(len(self.running), 'running worker')} {how}")
        for worker in self.running.values():
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        self._forwarded = count

    def _launch(self) -> None:
        for spec in list(self.queue):
            device = self._free_device()
            if device is None:
                return
            run_dir = self.out / spec.name
            if is_locked(run_dir):  # another sweep (a shard, an orphaned worker) has it: wait
                continue
            self.queue.remove(spec)
            if read_status(run_dir, spec.name).state == "done":  # finished by someone else meanwhile
                self._count_done(spec, 0.0, quiet=True)
                continue
            clear_failure(run_dir)
            offset = (run_dir / STDERR_FILE).stat().st_size if (run_dir / STDERR_FILE).exists() else 0
            self.running[spec.name] = _Worker(spec, device, launch(run_dir, device, self.threads),
                                            time.monotonic(), offset)
            self.live.started(spec.name)
            self.on_change(list(self.running))

    def _free_device(self) -> str | None:
        """The device with the fewest running workers (the first of equals), if one has a free slot."""
        load = {d: 0 for d in self.devices}
        for worker in self.running.values():
            load[worker.device] += 1
        device = min(self.devices, key=lambda d: load[d])
        return device if load[device] < self.jobs else None

    def _reap(self) -> None:
        for name, worker in list(self.running.items()):
            code = worker.process.poll()
            if code is None:
                continue
            del self.running[name]
            self._settle(worker, code, time.monotonic() - worker.started)
            self.live.ended(name)
            self.on_change(list(self.running))

    def _settle(self, worker: _Worker, code: int, wall_s: float) -> None:
        run_dir = self.out / worker.spec.name
        status = read_status(run_dir, worker.spec.name)
        if status.state == "done":
            self._count_done(worker.spec, wall_s, status=status)
        elif code == BUSY:
            self.queue.insert(0, worker.spec)  # locked by another process since we looked: wait for it
        elif code in _INTERRUPTED:
            self.outcome.interrupted.append(worker.spec.name)
            if worker.spec.task != TRAIN:
                where = "(it starts again next time)"
            elif status.total_steps is None:  # stopped while setting up (or before its first save): no last.pt
                self.outcome.unsaved.append(worker.spec.name)
                where = "before its first checkpoint (nothing saved: it starts from the beginning next time)"
            else:
                where = f"at step {status.step} (checkpoint saved)"
            self.log(f"sweep: {worker.spec.name} interrupted {where}")
        else:
            self._count_failed(worker, code, run_dir)

    def _count_done(self, spec: RunSpec, wall_s: float, status: RunStatus | None = None, quiet: bool = False):
        self.finished += 1
        self.outcome.done.append(spec.name)
        if wall_s:
            self.clock.run_times.append(wall_s)
        if not quiet:
            self.log(finished_line(f"[{self.finished}/{self.total}]", status, wall_s))

    def _count_failed(self, worker: _Worker, code: int, run_dir: Path) -> None:
        reason = _failure_reason(run_dir / STDERR_FILE, worker.stderr_offset, code)
        write_failure(run_dir, reason, code)
        self.finished += 1
        self.outcome.failed[worker.spec.name] = reason
        self.log(failed_line(f"[{self.finished}/{self.total}]", read_status(run_dir, worker.spec.name), run_dir))

    def _counts(self) -> dict:
        waiting = sum(is_locked(self.out / s.name) for s in self.queue)
        return {"total": self.total, "done": self.finished - len(self.outcome.failed), "running": len(self.running),
                "waiting": waiting, "failed": len(self.outcome.failed), "interrupted": len(self.outcome.interrupted)}


def _failure_reason(stderr: Path, offset: int, code: int) -> str:
    """The last line the worker wrote to stderr in this attempt, and how it ended."""
    try:
        with open(stderr, "rb") as f:
            f.seek(offset)
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    ended = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
    return f"{lines[-1]} ({ended})" if lines else ended
