"""The degradation networks trained as a sweep (``jobs=``): each network and seed in a worker process
of its own, several at once per device, in ``out/runs/<model>-seed<s>``; the same call again
continues where a killed one stopped.

The workers load the data themselves, so what the in-process path is handed (a ``dataset``
object) cannot be given here, nor a validation split (each worker would draw it with its own
seed), nor a shortcut option other than A (the plain nets would get it too). Each network's
record is read back from its run's ``last.pt``: the metrics rows and the finer training curve
(``step_history``) are kept in the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...training.sweep import MODEL_OPTIONS, Grid, SweepFailed, check_jobs, check_threads, run_sweep
from .networks import model_name

#: run_degradation's settings that a worker gets otherwise (its device), or never needs.
_NOT_FIXED = ("device", "progress", "model_options")


def check_sweepable(jobs, threads, dataset, shortcut: str, val_split: int | None, out) -> None:
    """Refuse, in one line and before any work, bad sweep settings and what the workers could not reproduce."""
    check_jobs(jobs)
    check_threads(threads)
    if out is None:
        raise UserError("training the networks concurrently (--jobs) keeps their run directories: give an output "
                        "folder (out=...)")
    if dataset is not None:
        raise UserError("jobs=... trains each network in a worker that loads the data itself; pass data=SPEC "
                        "instead of dataset=, or leave jobs unset")
    if shortcut != "A":
        raise UserError(f"--shortcut {shortcut} with --jobs is not supported (the plain nets would get it too); "
                        "drop --jobs or use shortcut A")
    if val_split:
        raise UserError("--val-split with --jobs would give each seed its own held-out images; drop one of them")


def sweep_grid(depths: list[int], seeds: list[int], kinds, recipe: str, common: dict) -> Grid:
    """Every network (by depth, plain before residual) x every seed, with the shared settings fixed."""
    fixed = {k: v for k, v in common.items() if k not in _NOT_FIXED and v is not None}
    fixed.update({k: v for k, v in (common.get("model_options") or {}).items() if k in MODEL_OPTIONS})
    fixed["recipe"] = recipe
    return Grid({"model": [model_name(k, d) for d in depths for k in kinds], "seed": list(seeds)}, fixed)


def train_as_sweep(grid: Grid, out: Path, keys: list[tuple], jobs, devices, threads, say, record) -> dict:
    """Train the grid in ``out/runs``; ``record(run_dir, checkpoint)`` per ``(kind, depth, seed)`` key."""
    from ...training import load_checkpoint

    result = run_sweep(grid, Path(out) / "runs", jobs=jobs, devices=devices or ("auto",), threads=threads,
                       log=say, status_every=60.0)
    if not result.ok:
        raise SweepFailed(result)
    records = {}
    for kind, depth, seed in keys:
        run_dir = Path(out) / "runs" / f"{model_name(kind, depth)}-seed{seed}"
        records[(kind, depth, seed)] = record(run_dir, load_checkpoint(run_dir / "last.pt"))
    return records
