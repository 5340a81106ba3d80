"""What a sweep prints: a line per finished or failed run and a periodic status line with an ETA.

Plain lines (no bars, no carriage returns): as readable in a log file as in a terminal.
"""

from __future__ import annotations

import time

from .run_state import STDERR_FILE, RunStatus


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def finished_line(position: str, status: RunStatus, wall_s: float) -> str:
    r = status.result
    if "summary" in r:  # a task's own line (task.py)
        return f"{position} done {status.name}: {r['summary']}, {wall_s:.1f} s"
    test = f", test acc {r['test_acc']:.4f}" if r.get("test_acc") is not None else ""
    return (f"{position} done {status.name}: train error {100 * r['final_train_error']:.2f}%{test}, "
            f"{r['steps']:,} steps, {wall_s:.1f} s")


def failed_line(position: str, status: RunStatus, run_dir) -> str:
    return f"{position} FAILED {status.name}: {status.reason}; see {run_dir / STDERR_FILE}"


class StatusClock:
    """The periodic status line: every ``every`` seconds, with an ETA from the runs finished so far."""

    def __init__(self, every: float, slots: int):
        self.every, self.slots = every, slots
        self.start = self.last = time.monotonic()
        self.run_times: list[float] = []  # wall time of each run finished by this sweep process

    def due(self) -> bool:
        return self.every > 0 and time.monotonic() - self.last >= self.every

    def line(self, counts: dict, remaining: int) -> str:
        self.last = time.monotonic()
        parts = [f"{counts['done']}/{counts['total']} done", f"{counts['running']} running"]
        parts += [f"{counts[k]} {k}" for k in ("waiting", "failed", "interrupted") if counts.get(k)]
        elapsed = duration(time.monotonic() - self.start)
        if not remaining:
            eta = "finishing"
        elif self.run_times:
            eta = "ETA " + duration(sum(self.run_times) / len(self.run_times) * remaining / self.slots)
        else:
            eta = "ETA after the first run ends"
        return f"sweep: {', '.join(parts)}; {elapsed} elapsed, {eta}"
