"""``run_sweep``: train every run of a grid, a few at a time per device, resumably; ``sweep_status``.

Run it again with the same grid and it goes on: done runs are skipped, interrupted ones resume
from their ``last.pt``, failed ones are tried again. Everything it decides comes from the run
directories (``run_state.py``); ``sweep.json`` is rewritten from them after every change.
"""

from __future__ import annotations

import json
import numbers
import platform
import tempfile
from dataclasses import dataclass, field
from math import inf
from pathlib import Path
from typing import Callable, Iterable

from ...errors import UserError, check_positive_int, numpy_scalars_as_numbers, writing
from ...files import as_path, shell_arg, write_json
from ...text import counted
from .grid import TRAIN, Grid, RunSpec, expand
from .manifest import check_compatible, enclosing_sweep, read_manifest, statuses, write_manifest
from .probe import PROBE_SECONDS, probe_jobs
from .run_state import SPEC_FILE, RunStatus, read_spec
from .scheduler import Scheduler
from .worker import threads_per_worker


class SweepInterrupted(Exception):
    """SIGINT/SIGTERM stopped the sweep; every running training worker saved a checkpoint first, but
    those still setting up (``unsaved``: none saved yet, they start from the beginning); a task's
    worker keeps none: its run starts again (``task.py``)."""

    def __init__(self, out: Path, signum: int, stopped: list[str], checkpointed: bool = True,
                 unsaved: list[str] = ()):
        if checkpointed:
            saved = len(stopped) - len(unsaved)
            what = f"{counted(saved, 'running run')} saved a checkpoint"
            if unsaved:
                none = f"had saved none yet ({'it starts' if len(unsaved) == 1 else 'they start'} from the beginning)"
                what = f"{what}, {len(unsaved)} {none}" if saved else f"{counted(len(unsaved), 'running run')} {none}"
        else:
            what = f"{counted(len(stopped), 'running run')} stopped (they start again from the beginning)"
        super().__init__(f"interrupted; {what}; run the same command again to continue (see the state with "
                         f"'resnet-lab sweep --out {shell_arg(out)} --status')")
        self.out, self.signum, self.stopped = out, signum, stopped

    @property
    def exit_code(self) -> int:
        """A command's exit status: 128 + the signal's number, as a shell reports a process the signal ended."""
        return 128 + self.signum


class SweepFailed(Exception):
    """Some runs of the sweep failed (the others were trained); ``result`` says which and why."""

    exit_code = 1

    def __init__(self, result: "SweepResult"):
        failed = [r.name for r in result.runs if result.states[r.name].state != "done"]
        first = failed[0]
        super().__init__(f"{len(failed)} of {counted(len(result.runs), 'run')} did not finish ({', '.join(failed)}); "
                         "why: "
                         f"{result.states[first].reason or result.states[first].state} (see "
                         f"{result.out / first / 'worker.err'}); run the same command again to retry them")
        self.result = result


@dataclass
class SweepResult:
    out: Path
    runs: list[RunSpec]  # this shard's runs, in grid order
    states: dict[str, RunStatus]
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    jobs: int = 1
    probe: dict | None = None
    threads: int | None = None  # CPU threads per worker
    devices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.states[r.name].state == "done" for r in self.runs)


@numpy_scalars_as_numbers
def run_sweep(grid: Grid, out: str | Path, *, runs: list[RunSpec] | None = None, jobs: int | str = 1,
              devices=("auto",), shard=(0, 1), threads: int | None = None, log: Callable[[str], object] | None = print,
              status_every: float = 30.0, probe_seconds: float = PROBE_SECONDS) -> SweepResult:
    """Train the runs of ``grid`` (those of ``shard`` ``(i, n)``: index % n == i) in ``out/<run name>``,
    at most ``jobs`` at once on each of ``devices``; ``jobs="auto"`` measures 1, 2, 4, 8 first.

    ``runs``: the grid's runs when they are not the ``train`` runs of ``expand(grid)`` but tasks
    (``task.py``, e.g. the survey's cells); ``grid`` is then only their record in ``sweep.json``.

    ``threads``: CPU threads per worker (default: this process's cores shared out among the
    workers). On a CPU the count changes the last bits of the result: give it to reproduce a run.
    """
    log = log or (lambda *_: None)
    if not isinstance(grid, Grid):
        raise UserError(f"run_sweep takes a Grid, got {type(grid).__name__}: e.g. Grid(axes={{'model': ['resnet8', "
                        "'resnet14']}, fixed={'epochs': 2})")
    jobs, shard, devices, threads = check_jobs(jobs), check_shard(shard), check_devices(devices), check_threads(threads)
    check_probe_seconds(probe_seconds)
    # None or text once ended in a TypeError from the comparison; NaN fails the range
    if isinstance(status_every, bool) or not isinstance(status_every, numbers.Real) or not 0 <= status_every < inf:
        raise UserError(f"--status-every is seconds between status lines (0: none), got {status_every}")
    out, grid, runs, mine, before = _take_stock(grid, runs, as_path(out, "out"), shard, log)
    todo = [r for r in mine if before[r.name].state != "done"]
    jobs, probe = _jobs(jobs, todo, out, devices[0], probe_seconds, log)
    threads = threads or threads_per_worker(jobs * len(devices))
    invocation = {"jobs": jobs, "devices": devices, "threads": threads, "shard": list(shard), "host": platform.node()}

    def refresh(running=()) -> None:
        states = statuses(out, runs)
        for name in running:  # launched, perhaps not yet holding its lock
            if states[name].state != "done":
                states[name].state = "running"
        write_manifest(out, grid, runs, states, last_invocation=invocation, probe=probe)

    layout = f"{counted(jobs, 'job')} per device of {counted(threads, 'thread')} on {', '.join(devices)}"
    _announce(out, mine, todo, before, layout, shard, log, total=len(runs))
    refresh()
    outcome = Scheduler(out, todo, len(mine), len(mine) - len(todo), devices, jobs, threads, log, refresh,
                        status_every).run()
    refresh()
    if outcome.signum:
        raise SweepInterrupted(out, outcome.signum, outcome.interrupted,
                               checkpointed=all(r.task == TRAIN for r in mine), unsaved=outcome.unsaved)
    return SweepResult(out, mine, statuses(out, mine), outcome.failed, jobs, probe, threads, devices)


def run_whole_sweep(grid: Grid, out: str | Path, **options) -> SweepResult:
    """``run_sweep`` for an experiment that reads every run back: raises ``SweepFailed`` unless every run
    finished. Status lines every minute unless ``status_every`` says otherwise (an experiment's runs are long)."""
    options.setdefault("status_every", 60.0)
    result = run_sweep(grid, out, **options)
    if not result.ok:
        raise SweepFailed(result)
    return result


def _take_stock(grid: Grid, runs: list[RunSpec] | None, out: Path, shard: tuple[int, int], log):
    """The sweep this grid goes on with and all its runs, this grid's shard of them (each with its
    spec on disk) and their states. Task runs (``runs`` given) are their own whole sweep."""
    given = expand(grid) if runs is None else list(runs)
    _check_runs_can_start(given)
    out = _prepare_out(out)
    whole_grid, whole = enclosing_sweep(out, grid, given, log) if runs is None else (grid, given)
    check_compatible(out, whole)
    if len(whole) > len(given):
        log(f"sweep: this grid is part of the sweep in {out} ({len(given)} of its {counted(len(whole), 'run')}): only "
            "those are trained")
    by_name = {r.name: r for r in whole}
    mine = [by_name[r.name] for r in given if r.index % shard[1] == shard[0]]
    for r in mine:
        _write_spec(out, r)
    return out, whole_grid, whole, mine, statuses(out, mine)


def _check_runs_can_start(runs: list[RunSpec]) -> None:
    """Each model (name and options) and data set of the training runs, before anything is written: a
    typo is one line now rather than a failed run per worker, and CIFAR is downloaded once, here."""
    import torch

    from ...data import prepare_data
    from ...models import create_model

    configs = [r.config for r in runs if r.task == TRAIN]
    for model, options in sorted({(c.model, json.dumps(c.model_options, sort_keys=True)) for c in configs}):
        with torch.device("meta"):  # built without memory or initialisation cost
            create_model(model, **json.loads(options))
    for data, data_dir in sorted({(c.data, c.data_dir or "") for c in configs}):
        prepare_data(data, data_dir or None)


def sweep_status(out: str | Path, log: Callable[[str], object] = print) -> list[RunStatus]:
    """Every run's state, from the run directories (the runs listed in ``sweep.json``, else the runs' specs;
    a damaged ``sweep.json`` is said in ``log`` and passed over)."""
    out = as_path(out, "out")
    manifest = read_manifest(out, log) if out.is_dir() else None
    if manifest is not None:
        names = [r["name"] for r in manifest["runs"]]
    else:
        specs = [(read_spec(p.parent) or {}, p.parent.name) for p in out.glob(f"*/{SPEC_FILE}")]
        names = [name for spec, name in sorted(specs, key=lambda s: (s[0].get("index", 0), s[1]))]
    if not names:
        what = "holds no sweep" if out.is_dir() else "is a file" if out.exists() else "does not exist"
        raise UserError(f"{out} {what} (no sweep.json and no run with {SPEC_FILE}); give the --out of a sweep")
    from .run_state import read_status

    return [read_status(out / name, name) for name in names]


def check_jobs(jobs) -> int | str:
    if jobs == "auto":
        return jobs
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise UserError(f"--jobs must be a positive integer or 'auto', got {jobs!r}")
    return int(jobs)


def check_threads(threads) -> int | None:
    return None if threads is None else check_positive_int("--threads", threads)


def check_probe_seconds(seconds) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not 0 < seconds < 1e6:
        raise UserError(f"--probe-seconds is the time each count of workers trains together in the --jobs auto "
                        f"probe, more than 0 seconds (default {PROBE_SECONDS:g}), got {seconds!r}")
    return float(seconds)


def _jobs(jobs, todo: list[RunSpec], out: Path, device: str, probe_seconds: float, log) -> tuple[int, dict | None]:
    """``jobs`` as given, or measured (``auto``): by an earlier probe on this machine, else now."""
    if jobs != "auto":
        return jobs, None
    probe = _previous_probe(out, device)
    if probe is None and not todo:
        return 1, None  # nothing left to run: nothing to measure
    if probe is None:
        probe = probe_jobs(todo[0], out, device, len(todo), probe_seconds, log)
    else:
        log(f"sweep: jobs auto -> {probe['jobs']} (the probe of {probe['measured']} in sweep.json)")
    return probe["jobs"], probe


def check_shard(shard) -> tuple[int, int]:
    """``(I, N)`` as two integers: ``int()`` once made shard=(0.5, 2) shard 0/2 without a word."""
    try:
        index, count = shard
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (index, count)):
            raise TypeError
    except (TypeError, ValueError):
        raise UserError(f"--shard is I/N (e.g. 0/2; shard=(0, 2) in Python), got {shard!r}") from None
    index, count = int(index), int(count)
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {index}/{count}: I must be from 0 to N-1 (e.g. 0/{max(count, 2)} and "
                        f"1/{max(count, 2)})")
    return index, count


def check_devices(devices) -> list[str]:
    from ...runtime import pick_device

    devices = device_names(devices)
    if not devices:
        raise UserError("give at least one device (--devices cpu, or cuda:0 cuda:1)")
    resolved = [str(pick_device(d, "--devices")) for d in devices]
    if len(set(map(_same_device, resolved))) != len(resolved):  # cpu:0 is cpu, cuda is cuda:0 (the current one)
        raise UserError(f"--devices names a device twice ({' '.join(devices)}); use --jobs for more workers per device")
    return resolved


def device_names(devices) -> list[str]:
    """``devices`` as a list of names: one device (a name, a ``torch.device``: not iterable) or several."""
    if isinstance(devices, str) or not isinstance(devices, Iterable):
        return [str(devices)]
    return [str(d) for d in devices]


def _same_device(name: str) -> str:
    """One name for each device: ``cpu:0`` and ``cpu`` are one, as are ``cuda`` and ``cuda:N`` of the current GPU."""
    import torch

    device = torch.device(name)
    if device.type == "cpu":
        return "cpu"
    if device.index is None and device.type == "cuda":
        return f"cuda:{torch.cuda.current_device()}"
    return f"{device.type}:{device.index or 0}"


def _prepare_out(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a directory")
    if (out / "config.json").exists():  # a sweep's runs are folders inside its --out, never inside a run
        raise UserError(f"--out {out} is a training run's folder; give the sweep a folder of its own "
                        f"(e.g. {out.parent / 'sweep'})")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()  # an existing folder may still refuse writes
    return out


def _write_spec(out: Path, spec: RunSpec) -> None:
    """The run's own record of its settings: what its worker trains, and what a later grid must match."""
    run_dir = out / spec.name
    if read_spec(run_dir) is None:  # missing, or damaged: the grid's own settings are written again
        task = {} if spec.task == TRAIN else {"task": spec.task}  # a train run's spec as it always was
        write_json(run_dir / SPEC_FILE, {"name": spec.name, "index": spec.index, "settings": spec.settings,
                                         **task, "config": spec.config_dict()})


def _previous_probe(out: Path, device: str) -> dict | None:
    """A probe recorded by an earlier invocation on this machine and device: not measured twice."""
    probe = (read_manifest(out, log=lambda _: None) or {}).get("probe")  # damage: said when the sweep was read
    if probe and probe.get("device") == device and probe.get("host") == platform.node():
        return probe
    return None


def _announce(out: Path, mine, todo, before: dict, how: str, shard, log, total: int) -> None:
    if not mine:  # more shards than runs (a job array sized ahead): said, not a bare "0 runs"
        log(f"sweep: shard {shard[0]}/{shard[1]} has none of the grid's {counted(total, 'run')} (it takes runs "
            f"{shard[0]}, {shard[0] + shard[1]}, ... by their place in the grid): nothing to do here")
        return
    resume = sum(before[r.name].state == "interrupted" for r in todo)
    retry = [r.name for r in todo if before[r.name].state == "failed"]
    part = f" (shard {shard[0]}/{shard[1]})" if shard[1] > 1 else ""
    resumed = f" ({resume} resumed from {'its' if resume == 1 else 'their'} checkpoint)" if resume else ""
    log(f"sweep: {counted(len(mine), 'run')}{part} in {out}: {len(mine) - len(todo)} done, {len(todo)} to run"
        f"{resumed}; {how}")
    for name in retry:
        log(f"sweep: trying {name} again (it failed before: {before[name].reason})")
