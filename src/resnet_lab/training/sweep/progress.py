"""What a sweep prints: a line per finished or failed run and a periodic status line with an ETA.

Plain lines (no bars, no carriage returns): as readable in a log file as in a terminal. On a
terminal, ``LiveLines`` adds a live line per running run and one for the whole sweep below them.
"""

from __future__ import annotations

import time

from ...text import counted
from .run_state import STDERR_FILE, RunStatus


def heading_first(log, heading: str):
    """``log`` that writes ``heading`` just before its first line: an experiment's heading then follows the
    sweep's checks of its folder and settings, and a refusal there stays the command's one line."""
    pending = [heading]

    def write(line: str) -> None:
        if pending:
            log(pending.pop())
        log(line)
    return write


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def finished_line(position: str, status: RunStatus, wall_s: float) -> str:
    r = status.result
    if "summary" in r:  # a task's own line (task.py)
        return f"{position} done {status.name}: {r['summary']}, {wall_s:.1f} s"
    test = f", {r.get('eval_split', 'test')} acc {r['test_acc']:.4f}" if r.get("test_acc") is not None else ""
    return (f"{position} done {status.name}: train error {100 * r['final_train_error']:.2f}%{test}, "
            f"{counted(r['steps'], 'step')}, {wall_s:.1f} s")


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


class LiveLines:
    """On a terminal: one live line per running run (its step of its total, from the run's own
    ``config.json`` and ``metrics.jsonl``, so at epoch ends) under one for the whole sweep (runs
    finished of all, with tqdm's ETA). Off a terminal (a log file, a pipe) it draws nothing: the
    plain lines say it all. ``write`` prints a plain line above the live ones."""

    def __init__(self, out, total: int, finished: int, file=None, enabled: bool | None = None,
                 every_s: float = 1.0):
        import sys

        self.file = file or sys.stderr
        self.enabled = self.file.isatty() if enabled is None else enabled
        self.out, self.every_s, self.last = out, every_s, 0.0
        self.runs: dict = {}  # name -> its tqdm line
        self.sweep = self._line(total, "sweep", "runs", finished) if self.enabled else None

    def _line(self, total, desc: str, unit: str, initial: int = 0):
        from tqdm import tqdm  # each new line takes the next free row

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=self.file, leave=False,
                    dynamic_ncols=True)

    def write(self, log, line: str) -> None:
        if not self.enabled:
            log(line)
            return
        from tqdm import tqdm

        with tqdm.external_write_mode(file=self.file):
            log(line)

    def started(self, name: str) -> None:
        if self.enabled:
            self.runs[name] = self._line(None, name, "step")

    def ended(self, name: str) -> None:
        if self.enabled and name in self.runs:
            self.runs.pop(name).close()

    def refresh(self, finished: int) -> None:
        """The runs finished, and each running run's step, at most every ``every_s`` seconds (its files
        are read each time)."""
        if not self.enabled or time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        self.sweep.n = finished
        self.sweep.refresh()
        for name, line in self.runs.items():
            if line.total is None:  # config.json appears once the worker has set the run up
                line.total = _total_steps(self.out / name)
            line.n = _last_step(self.out / name)
            line.refresh()

    def close(self) -> None:
        for line in [*self.runs.values(), *([self.sweep] if self.sweep is not None else [])]:
            line.close()
        self.runs.clear()


def _total_steps(run_dir) -> int | None:
    """The run's total steps, from the config.json its worker writes at the start (None until then)."""
    import json

    try:
        return json.loads((run_dir / "config.json").read_text())["resolved"]["total_steps"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _last_step(run_dir) -> int:
    """The step of the run's last metrics row (0 before its first epoch ends)."""
    import json

    try:
        rows = (run_dir / "metrics.jsonl").read_text().splitlines()
        return json.loads(rows[-1])["step"] if rows else 0
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return 0
