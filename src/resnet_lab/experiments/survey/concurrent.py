"""The survey's cells measured as a sweep (``jobs=``): each cell and seed a run of the sweep engine
(a task, ``training/sweep/task.py``) in ``out/cells/<cell>-seed<s>``, several at once per device.

A worker loads the data itself and draws the fixed batches of its seed as the in-process survey
does (``_measure``), so every cell of one seed still sees the same batches and, with the same
thread count, measures the same numbers bit for bit on a CPU. Its measurements are written
atomically to the run's ``sweep_result.json``; the same call again skips the cells that have one.
A cell keeps no checkpoint: one stopped partway starts again (cells are seconds to minutes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UserError
from ...training.sweep import Grid, RunSpec, check_jobs, check_threads, run_whole_sweep
from ...training.sweep.run_state import RESULT_FILE

if TYPE_CHECKING:
    from .settings import SurveySettings

#: The task a cell's worker runs: ``measure_cell_run`` (registered in ``training/sweep/task.py``).
TASK = "survey-cell"
#: The cell's own fields in a run's config (the rest: the seed and the settings every cell shares).
CELL_FIELDS = ("name", "group", "variant", "depth", "shortcut", "norm", "activation", "init", "lr", "clip_norm")


def check_sweepable(jobs, threads, devices, out) -> None:
    """Refuse, in one line and before any work, bad sweep settings."""
    if jobs is None:
        if devices is not None:
            raise UserError("--devices applies to measuring the cells as a sweep; add --jobs N (or auto)")
        return
    check_jobs(jobs)
    check_threads(threads)
    if out is None:
        raise UserError("measuring the cells as a sweep (--jobs) keeps each cell's run in a folder: give an "
                        "output folder (out=...)")


def _shared(settings: SurveySettings) -> dict:
    """What every cell's worker shares (the rest of its config: the cell and the seed)."""
    return {"data": settings.data, "data_dir": settings.data_dir, "steps": settings.steps,
            "batches_at_init": settings.batches_at_init, "batch_size": settings.batch_size,
            "image_size": settings.image_size}


def cell_runs(plan: list[dict], seeds: list[int], shared: dict) -> list[RunSpec]:
    """One run per cell and seed, seed by seed (as the in-process survey measures them)."""
    runs = []
    for seed in seeds:
        for cell in plan:
            config = {**{k: cell[k] for k in CELL_FIELDS}, "seed": seed, **shared}
            runs.append(RunSpec(len(runs), f"{cell['name']}-seed{seed}", {"cell": cell["name"], "seed": seed},
                                config, task=TASK))
    return runs


def measure_as_sweep(plan: list[dict], settings: SurveySettings, say):
    """Every cell with every seed, as ``_measure`` returns them, and the sweep's result (jobs, threads)."""
    cells_dir = Path(settings.out) / "cells"
    seeds, shared = settings.seed_list, _shared(settings)
    runs = cell_runs(plan, seeds, shared)
    grid = Grid({"cell": [c["name"] for c in plan], "seed": list(seeds)}, dict(shared))
    result = run_whole_sweep(grid, cells_dir, runs=runs, jobs=settings.jobs, devices=settings.devices,
                             threads=settings.threads, log=say)
    measured = {r.name: _measurements(cells_dir / r.name / RESULT_FILE) for r in runs}
    return [[measured[f"{cell['name']}-seed{seed}"] for seed in seeds] for cell in plan], result


def _measurements(path: Path) -> dict:
    """A finished cell's measurements; a result file that holds none (hand-edited, a damaged disk) is one line."""
    measurements = json.loads(path.read_text()).get("measurements")  # a JSON object: its run is done (run_state)
    if not isinstance(measurements, dict):
        raise UserError(f"{path} holds no measurements (damaged); delete it and run the same command again to "
                        "measure that cell again")
    return measurements


def measure_cell_run(config: dict, device: str) -> dict:
    """A worker's task: one cell with one seed, on the batches of that seed (``task.py``'s contract)."""
    from ...runtime import pick_device
    from .cells import _batches, load_survey_data, run_cell
    from .table import run_line

    dev = pick_device(device)
    ds = load_survey_data(config["data"], config["data_dir"])
    steps, at_init, batch_size = config["steps"], config["batches_at_init"], config["batch_size"]
    batches = _batches(ds, batch_size, max(steps, at_init), device=dev, seed=config["seed"],
                       image_size=config["image_size"])
    cell = {k: config[k] for k in CELL_FIELDS}
    _warm_up()
    r = run_cell(cell, batches[:at_init], batches[:steps], steps=steps, seed=config["seed"], device=dev,
                 num_classes=ds.num_classes, in_channels=ds.in_channels)
    images = (r["steps_run"] + at_init) * batch_size
    return {"summary": run_line(r), "images_per_s": images / max(r["time_s"], 1e-9), "measurements": r}


def _warm_up() -> None:
    """Pay this process's one-time costs before the cell is timed, as the in-process survey pays them
    once for all cells: the first optimizer imports torch._dynamo (2 s of a 6 s digits cell here)."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
