"""Sweeps: many training runs of one grid, a few at a time per device, each in its own process,
resumable at any point.

- ``grid``: ``Grid`` (settings, some as lists) expanded into named runs (``expand``);
- ``run_state``: a run's state read from its directory alone (done, running, failed, ...);
- ``manifest``: ``sweep.json`` (a cache of the run directories) and the rule for re-using a folder;
- ``worker``: one run in one process (``python -m resnet_lab.training.sweep``, ``__main__.py``);
- ``task``: runs that are not ``train`` runs: a function the worker calls (a survey cell, ...);
- ``scheduler``: the loop that keeps the workers busy, forwards signals, reports failures;
- ``probe``: ``jobs="auto"``; ``progress``: the lines it prints;
- ``engine``: ``run_sweep`` (``run_whole_sweep``: all runs or ``SweepFailed``) and ``sweep_status``, the API.
"""

from .engine import (SweepFailed, SweepInterrupted, SweepResult, check_devices, check_jobs, check_shard,
                     check_threads, run_sweep, run_whole_sweep, sweep_status)
from .grid import MODEL_OPTIONS, TRAIN, Grid, RunSpec, expand
from .run_state import STATES, RunStatus

__all__ = ["MODEL_OPTIONS", "STATES", "TRAIN", "Grid", "RunSpec", "RunStatus", "SweepFailed", "SweepInterrupted",
           "SweepResult", "check_devices", "check_jobs", "check_shard", "check_threads", "expand", "run_sweep",
           "run_whole_sweep", "sweep_status"]
