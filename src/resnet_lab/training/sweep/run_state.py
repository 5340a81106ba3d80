"""A sweep run's state, read from its directory alone: the truth that ``sweep.json`` only caches.

Besides what ``train`` writes (``run_files.py``), a sweep run's directory holds:

- ``sweep_run.json``: its name, place in the grid, axis values and full settings;
- ``sweep.lock``: locked (``fcntl.flock``) by the worker training it, for as long as it lives, so
  two sweeps never train the same run at once and a live worker is told from a dead one;
- ``sweep_failure.json``: why its last worker failed (removed when a worker starts again);
- ``worker.out`` / ``worker.err``: the workers' output, appended attempt after attempt;
- ``sweep_result.json``: a task's result (a run that is not ``train``, ``task.py``), written
  atomically when it finished.

States: ``done`` (``result.json``, which a run writes only once it finished, and ``last.pt`` at the last
step or no ``last.pt``: a finished run's weights may be removed to save space, its records still hold
its results; or a task's result exists), ``running`` (locked),
``failed``, ``interrupted`` (a checkpoint or config to resume from), ``pending`` (nothing yet).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import first_line
from ...files import try_lock, write_json

SPEC_FILE = "sweep_run.json"
LOCK_FILE = "sweep.lock"
FAILURE_FILE = "sweep_failure.json"
STDOUT_FILE = "worker.out"
STDERR_FILE = "worker.err"
RESULT_FILE = "sweep_result.json"
STATES = ("pending", "running", "interrupted", "done", "failed")


@dataclass
class RunStatus:
    name: str
    state: str
    step: int = 0
    total_steps: int | None = None
    # train: final_train_error, test_acc, best_acc, steps, train_time_s; a task: its summary (task.py)
    result: dict = field(default_factory=dict)
    reason: str | None = None  # why it failed

    def to_dict(self) -> dict:
        return {"state": self.state, "step": self.step, "total_steps": self.total_steps, "result": self.result,
                "reason": self.reason}


def read_status(run_dir: Path, name: str) -> RunStatus:
    """Where the run in ``run_dir`` stands, from its files (and its lock) only."""
    checkpoint, unreadable = _checkpoint_facts(run_dir / "last.pt")
    if checkpoint is None and unreadable is None:
        checkpoint = _finished_run_facts(run_dir)
    step, total = (checkpoint["step"], checkpoint["total_steps"]) if checkpoint else (0, None)
    result = result_from_history(checkpoint["history"], checkpoint["eval_split"]) if checkpoint else {}
    # Every step taken is not enough: a run stopped in its last step has not ended that epoch (evaluated it,
    # written its metrics row and result.json), nor has one killed just before result.json, until resumed.
    if checkpoint and step >= total and not checkpoint.get("batch_in_epoch") and (run_dir / "result.json").exists():
        return RunStatus(name, "done", step, total, result)
    finished = _read_json(run_dir / RESULT_FILE)
    if isinstance(finished, dict):
        return RunStatus(name, "done", result={"summary": finished.get("summary")})
    if is_locked(run_dir):
        return RunStatus(name, "running", step, total, result)
    failure = _read_json(run_dir / FAILURE_FILE)
    if failure is not None:
        return RunStatus(name, "failed", step, total, result, failure.get("reason"))
    if unreadable:  # an atomic write never leaves this: a damaged disk or a hand-edited file
        return RunStatus(name, "failed", 0, None, {}, f"{run_dir / 'last.pt'} cannot be read ({unreadable})")
    if checkpoint or (run_dir / "config.json").exists():
        return RunStatus(name, "interrupted", step, total, result)
    return RunStatus(name, "pending")


def result_from_history(history: list[dict], eval_split: str = "test") -> dict:
    """The result of a run from its metrics rows: final training error and test accuracy, steps, time;
    ``eval_split``: what that accuracy is measured on ("test", or "val" held out of train)."""
    if not history:
        return {}
    last = history[-1]
    evaluated = [r for r in history if r.get("test_acc") is not None]
    return {"final_train_error": 1.0 - last["train_acc"],
            "test_acc": evaluated[-1]["test_acc"] if evaluated else None,
            "best_acc": max(r["test_acc"] for r in evaluated) if evaluated else None,
            "steps": last["step"], "epochs": last["epoch"],
            "train_time_s": sum(r.get("time_s", 0.0) for r in history), "eval_split": eval_split}


def _checkpoint_facts(path: Path) -> tuple[dict | None, str | None]:
    """Step, total steps, metrics rows and evaluation split of a checkpoint, without reading its tensors (mmap)."""
    if not path.exists():
        return None, None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return {"step": int(state["step"]), "total_steps": int(state["total_steps"]),
                "batch_in_epoch": int(state.get("batch_in_epoch") or 0), "history": list(state.get("history") or []),
                "eval_split": (state.get("data_info") or {}).get("eval_split", "test")}, None
    except Exception as exc:  # noqa: BLE001 - any damage means "cannot be read"
        return None, first_line(exc)[:160]


def _finished_run_facts(run_dir: Path) -> dict | None:
    """``_checkpoint_facts`` of a finished run without its ``last.pt``, from its records: ``result.json``
    (written once the run finished), ``config.json`` and ``metrics.jsonl``; None if any is missing or damaged."""
    result, config = _read_json(run_dir / "result.json"), _read_json(run_dir / "config.json")
    try:
        history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        return {"step": int(result["steps"]), "total_steps": int(config["resolved"]["total_steps"]),
                "history": history, "eval_split": config["data_info"].get("eval_split", "test")}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


def is_locked(run_dir: Path) -> bool:
    """True while a worker holds the run's lock (a dead worker's lock is released by the kernel)."""
    path = run_dir / LOCK_FILE
    if not path.exists():
        return False
    # Read-only and a shared lock (which a worker's exclusive one blocks): looking needs no write access, so
    # `sweep --status` works on a read-only copy or another user's folder (O_RDWR failed there, exit 1).
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we took
    return False


def take_lock(run_dir: Path) -> int | None:
    """The run's lock for this process (kept until it exits), or None when another process has it."""
    return try_lock(run_dir / LOCK_FILE)


def write_failure(run_dir: Path, reason: str, exit_code: int | None) -> None:
    write_json(run_dir / FAILURE_FILE, {"reason": reason, "exit_code": exit_code})


def clear_failure(run_dir: Path) -> None:
    (run_dir / FAILURE_FILE).unlink(missing_ok=True)


def read_spec(run_dir: Path) -> dict | None:
    return _read_json(run_dir / SPEC_FILE)


def trained_config(run_dir: Path) -> dict | None:
    """The settings the run was started with: the trainer's config.json, else the sweep's spec."""
    saved = _read_json(run_dir / "config.json")
    if saved is not None:
        return saved
    spec = read_spec(run_dir)
    return spec.get("config") if spec else None


def _read_json(path: Path) -> dict | None:
    """A JSON object, or None: missing, unreadable, damaged, or not an object."""
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None
