"""Runs that are not ``train`` runs: a function that a sweep's worker calls, such as one survey cell.

A run's ``sweep_run.json`` names its task by one of the names in ``TASKS``, never by a module
path: a spec file is data, and no file we read may make the worker import or call code of its
choosing. The worker calls
``function(config, device)`` with the spec's ``config`` (a JSON-ready dict) and the device it was
given, after setting its CPU threads; the function returns a JSON-ready dict, which the worker
writes atomically to ``sweep_result.json``: the run is done when that file exists. The dict holds
``summary`` (the one line the sweep prints for the run) and may hold ``images_per_s`` (what
``--jobs auto`` compares); the probe runs a task with ``config["steps"]`` set to its own steps.

A task keeps no checkpoint: a worker stopped by a signal (or killed) leaves no result, and the
run starts again from the beginning next time, so a task should be short (a survey cell is
seconds to minutes). Exit status: 0 done, 2 bad settings (``UserError``: its line on stderr),
1 any other error (its traceback on stderr, whose last line the sweep reports).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Callable

from ...errors import UserError
from ...files import write_json
from .run_state import RESULT_FILE


#: Every task a sweep can run: its name in a run's spec -> the function, imported when a worker needs it.
TASKS = {"survey-cell": "resnet_lab.experiments.survey.concurrent:measure_cell_run"}


def resolve(task: str) -> Callable[[dict, str], dict]:
    """The function of a registered task; any other name is refused."""
    if task not in TASKS:
        raise UserError(f"unknown sweep task {task!r} (known: {', '.join(TASKS)}); the run's sweep_run.json was "
                        "not written by this version of resnet-lab: run the command that made it again")
    module, _, name = TASKS[task].partition(":")
    return getattr(importlib.import_module(module), name)


def run_task(run_dir: Path, spec: dict, device: str, threads: int) -> int:
    """The worker's part for a task run: call it, write its result; the exit status."""
    import torch

    try:
        task = resolve(spec["task"])  # an unknown name is refused before anything else happens
        torch.set_num_threads(threads)  # on CPU part of the result: the same count gives the same bits
        result = task(dict(spec["config"]), device)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(run_dir / RESULT_FILE, result)
    print(f"done: {result.get('summary', '')}", flush=True)
    return 0


def images_per_s(run_dir: Path) -> float:
    """What a finished task run measured, for the probe (0 if it did not say)."""
    return float(json.loads((run_dir / RESULT_FILE).read_text()).get("images_per_s") or 0.0)
