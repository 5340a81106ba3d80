"""``sweep.json``: the grid, every run's settings and state, and the jobs probe, written atomically.

A cache and a summary, never the only truth: each write re-reads every run's state from its
directory (``run_state.py``), so shards writing into one folder, or a sweep killed between two
writes, leave a file that the next write puts right.

Re-using an output folder (the rule, stated once): a grid may go on in a folder when every run
already there is one of its runs with the same settings. Adding runs (more seeds, another
model) is allowed; changing the settings of a run that has started, or leaving out a run that
exists, is refused in one line. A grid that is part of the folder's sweep (each of its runs one
of the sweep's, with the same settings) trains its own runs only, and ``sweep.json`` keeps
describing the whole sweep: ``reproduce all`` trains Fig. 6's and Table 6's networks as one
sweep, and then each reproduction reads its part back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from ...errors import UserError
from ...files import write_json
from ..config import RESUMABLE, TrainConfig
from .grid import TRAIN, Grid, RunSpec, expand
from .run_state import SPEC_FILE, RunStatus, read_spec, read_status, trained_config

MANIFEST = "sweep.json"
FORMAT = 1
#: Settings that do not change what a run computes: a run may continue with other values.
_NOT_COMPARED = {*RESUMABLE, "out", "progress"}


def read_manifest(out: Path, log: Callable[[str], object]) -> dict | None:
    """``sweep.json``, or None when there is none. A damaged one is said in ``log`` and passed over:
    it is only a summary, written again from the grid and the run directories."""
    path = out / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
        Grid.from_dict(manifest["grid"])
        if not all(isinstance(r["name"], str) for r in manifest["runs"]):  # what sweep_status lists
            raise TypeError("a run's name is not a string")
        return manifest
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        why = f"no {err} entry" if isinstance(err, KeyError) else str(err)  # a KeyError reads "'grid'" alone
        log(f"warning: {path} is damaged ({why}); passed over (rebuilt from the run directories)")
        return None


def statuses(out: Path, runs: list[RunSpec]) -> dict[str, RunStatus]:
    return {r.name: read_status(out / r.name, r.name) for r in runs}


def write_manifest(out: Path, grid: Grid, runs: list[RunSpec], states: dict[str, RunStatus], **extra) -> None:
    """Every run's settings and state, the grid and ``extra`` (jobs, devices, probe, ...)."""
    write_json(out / MANIFEST, {
        "format": FORMAT, "grid": grid.to_dict(), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {s: sum(st.state == s for st in states.values()) for s in ("done", "running", "interrupted",
                                                                             "pending", "failed")},
        **extra,
        "runs": [{"name": r.name, "index": r.index, "dir": r.name, "settings": r.settings, **states[r.name].to_dict(),
                  "config": _comparable_spec(r)} for r in runs],
    })


def enclosing_sweep(out: Path, grid: Grid, runs: list[RunSpec], log) -> tuple[Grid, list[RunSpec]]:
    """The sweep ``grid`` goes on with: the folder's own (``sweep.json``) when ``grid`` is part of
    it (see the module's rule), else ``grid`` itself."""
    manifest = read_manifest(out, log)
    if manifest is None:
        return grid, runs
    saved = Grid.from_dict(manifest["grid"])
    try:
        whole = expand(saved)
    except UserError:  # e.g. its data file moved: this grid is judged on its own
        return grid, runs
    theirs = {r.name: _comparable_spec(r) for r in whole}
    if all(theirs.get(r.name) == _comparable_spec(r) for r in runs):
        return saved, whole
    return grid, runs


def check_compatible(out: Path, runs: list[RunSpec]) -> None:
    """Refuse a grid that would change or drop runs already in ``out`` (see the module's rule)."""
    by_name = {r.name: r for r in runs}
    # A run's folder without its spec (lost, or a `train --out` run) is compared by its config.json, never adopted.
    existing = sorted({p.parent.name for p in out.glob(f"*/{SPEC_FILE}")} |
                      {name for name in by_name if (out / name / "config.json").exists()})
    strangers = [name for name in existing if name not in by_name]
    if strangers:
        raise UserError(f"{out} holds runs that are not in this grid ({', '.join(strangers[:3])}"
                        f"{', ...' if len(strangers) > 3 else ''}), a run being named by the settings given several "
                        f"values; give the grid that made them (see {out / MANIFEST}), a grid that names them "
                        "alike, or another --out")
    for name in existing:
        theirs = _comparable_saved(out / name, by_name[name].task)
        if theirs is None:
            continue
        ours = _comparable_spec(by_name[name])
        changed = next((k for k in ours if ours[k] != theirs.get(k)), None)
        if changed is not None:
            raise UserError(f"{out / name} was started with {changed}={theirs.get(changed)!r}, this grid gives it "
                            f"{changed}={ours[changed]!r}; give the settings that made it (see {out / MANIFEST}) "
                            "or another --out")


def _comparable_spec(spec: RunSpec) -> dict:
    return _comparable(spec.config_dict())


def _comparable_saved(run_dir: Path, task: str) -> dict | None:
    """The settings a run in ``run_dir`` was started with, as ``_comparable_spec`` gives them (None: none yet)."""
    spec = read_spec(run_dir) or {}
    if spec.get("task", TRAIN) != task:
        raise UserError(f"{run_dir} is a run of another kind ({spec.get('task', TRAIN)}, not {task}); give "
                        "another --out")
    if task != TRAIN:
        return _comparable(spec["config"]) if isinstance(spec.get("config"), dict) else None
    saved = trained_config(run_dir)
    return None if saved is None else _comparable(TrainConfig.from_dict(saved).to_dict())


def _comparable(config: dict) -> dict:
    config = {k: v for k, v in config.items() if k not in _NOT_COMPARED}
    return json.loads(json.dumps(config))  # tuples as lists, as read back from a file
