"""The degradation networks trained as a sweep (``jobs=``): each network and seed in a worker process
of its own, several at once per device, in ``out/runs/<model>-seed<s>``; the same call again
continues where a killed one stopped.

The workers load the data themselves, so what the in-process path is handed (a ``dataset``
object) cannot be given here. A validation split is drawn with ``val_seed`` 0 by every worker,
as in the in-process path. A shortcut option other than A and ``zero_init_residual`` go to the
ResNets' runs only (a plain net has no residual branch), so those sweeps list their runs (``sweep_runs``).
Each network's record is read back from its run's records (``metrics.jsonl``, and ``steps.jsonl``
for the finer training curve), never its weights: a finished run's ``last.pt`` may have been removed.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...models.registry import cifar_model_name
from ...training.sweep import Grid, check_devices, check_jobs, check_threads, run_whole_sweep
from ...training.sweep.grid import RunSpec, expand
from .defaults import KINDS

#: run_degradation's settings that a worker gets otherwise (its device), or never needs.
_NOT_FIXED = ("device", "progress", "model_options")


def check_sweepable(jobs, threads, devices, dataset, out) -> None:
    """Refuse, in one line and before any work, bad sweep settings, sweep settings without a sweep, and
    what the workers could not reproduce."""
    if jobs is None:
        given = [name for name, value in (("--devices", devices), ("--threads", threads)) if value is not None]
        if given:
            raise UserError(f"{' and '.join(given)} apply to concurrent training; add --jobs N (or auto)")
        return
    check_jobs(jobs)
    check_threads(threads)
    check_devices(devices or ("auto",))
    if out is None:
        raise UserError("training the networks concurrently (--jobs) keeps their run directories: give an output "
                        "folder (out=...)")
    if dataset is not None:
        raise UserError("jobs=... trains each network in a worker that loads the data itself; pass data=SPEC "
                        "instead of dataset=, or leave jobs unset")


def sweep_runs(depths: list[int], seeds: list[int], recipe: str, common: dict,
               kind_options: dict) -> tuple[Grid, list[RunSpec] | None]:
    """Every network (by depth, plain before residual) x every seed, with the shared settings fixed:
    the grid, and its runs listed when the kinds' model options (``kind_options``) differ (else ``None``)."""
    fixed = {k: v for k, v in common.items() if k not in _NOT_FIXED and v is not None}
    fixed["recipe"] = recipe
    axes = {"model": [cifar_model_name(k, d) for d in depths for k in KINDS], "seed": list(seeds)}
    if kind_options["plain"] == kind_options["resnet"]:
        return Grid(axes, {**fixed, **kind_options["plain"]}), None
    grid = Grid(axes, fixed)
    plains, resnets = (expand(Grid(axes, {**fixed, **kind_options[kind]})) for kind in KINDS)
    return grid, [p if p.settings["model"].startswith("plain") else r for p, r in zip(plains, resnets)]


def train_as_sweep(grid: Grid, runs: list[RunSpec] | None, out: Path, keys: list[tuple], jobs, devices, threads, say,
                   record) -> dict:
    """Train the grid (``runs``: its runs, when listed) in ``out/runs``; ``record(run_dir)`` per
    ``(kind, depth, seed)`` key."""
    run_whole_sweep(grid, Path(out) / "runs", runs=runs, jobs=jobs, devices=devices or ("auto",), threads=threads,
                    log=say)
    records = {}
    for kind, depth, seed in keys:
        run_dir = Path(out) / "runs" / f"{cifar_model_name(kind, depth)}-seed{seed}"
        records[(kind, depth, seed)] = record(run_dir)
    return records
