"""Table 6 of He et al. (2015): the CIFAR ResNets trained with the paper's recipe, test error at the end.

``run_table6(out, depths=(20, 32, 44, 56, 110), seeds=(0, 1))`` trains ``resnet{depth}`` for
every seed on the full training set (no validation split) with ``recipe="paper"`` through the
sweep engine, one run per depth x seed in ``out/runs/resnet{depth}-seed{s}``: calling it again
continues (done runs are skipped, interrupted ones resume from their checkpoint). The figure
kept per run is the test error after the LAST step, never the best epoch's: the paper reports
the end of training. Returns data; ``report.write_table6_outputs`` writes it.
"""

from __future__ import annotations

import datetime
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

from ...errors import UserError, check_bool, check_positive_int, numpy_scalars_as_numbers
from ...models.registry import cifar_model_name
from ...text import counted
from ..degradation import check_depths, check_seeds
from .findings import table6_findings
from .paper import CURVE_EVERY, PAPER_STEPS, SEEDS, TABLE6_DEPTHS, paper_entry


def check_data(data: str) -> str:
    """The paper's data set, whole: ``cifar10`` or an ``npz:PATH`` copy of it (a file that exists)."""
    if data == "cifar10":
        return data
    if not isinstance(data, str) or not data.startswith("npz:"):
        raise UserError(f"--data must be cifar10 or npz:PATH (CIFAR-10 as .npz), got {data!r}")
    if not Path(data[4:]).expanduser().is_file():  # ~ as load_npz reads it (bash leaves a ~ after 'npz:')
        raise UserError(f"--data {data}: no such file")
    return data


def data_gap(data: str) -> str | None:
    """How ``data`` differs from the paper's (CIFAR-10's 50,000 training and 10,000 test images in 10 classes), or
    None: a subset at the paper's 64k steps was judged 'within 0.3 points of the paper' or 'misses by' as if it
    were the paper's data."""
    if data == "cifar10":
        return None
    import numpy as np

    try:  # ~ as load_npz reads it; the labels only: the images stay compressed
        with np.load(Path(data[4:]).expanduser(), allow_pickle=False) as arrays:
            labels = arrays["y_train"]
            sizes = (len(labels), len(arrays["y_test"]), len(np.unique(labels)))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # not compared unless known to be the paper's data
        return f"the labels of {data[4:]} could not be read again ({type(exc).__name__})"
    if sizes == (50_000, 10_000, 10):
        return None
    return f"{sizes[0]:,} train / {sizes[1]:,} test images in {sizes[2]} classes, not CIFAR-10's 50,000 / 10,000 in 10"


def device_list(devices) -> list[str]:
    """``devices`` as a list of names: one name (``"cuda"``) is one device, not its letters, and a
    ``torch.device`` is its name (the result stays JSON-ready)."""
    from ...training.sweep.engine import device_names

    return ["auto"] if devices is None else device_names(devices)


def check_sweep_options(jobs, threads, devices) -> list[str]:
    """``--jobs``, ``--threads`` and ``--devices`` checked before the first line is printed (the sweep checks
    them again); the devices as a list of names."""
    from ...training.sweep import check_devices, check_jobs, check_threads

    check_jobs(jobs)
    check_threads(threads)
    devices = device_list(devices)
    check_devices(devices)
    return devices


def check_steps(steps: int | None) -> int:
    """The run length: the paper's 64k iterations unless a positive ``steps`` is given."""
    if steps is None:
        return PAPER_STEPS
    return check_positive_int("--steps", steps)


def paper_settings(data: str, steps: int, cuda_graph: bool = False) -> dict:
    """Every reproduction run's settings besides model and seed (Fig. 6's too: ``fig6.py``): the paper's
    recipe on the whole training set, evaluated every epoch for the curves (and after the last step).
    ``cuda_graph``: each step replayed as one CUDA graph on a GPU (the same arithmetic, fewer kernel
    launches); the NaN policy ``stop`` is then checked at each epoch's end, not at every step."""
    graph = {"cuda_graph": True} if check_bool("cuda_graph", cuda_graph) else {}  # "no" would be true
    return {"recipe": "paper", "data": data, "steps": steps, "val_split": 0, "eval_every": 1,
            "log_every": CURVE_EVERY, **graph}


def table6_grid(depths: list[int], seeds: list[int], data: str, steps: int, cuda_graph: bool = False):
    """resnet{depth} x seed with ``paper_settings``."""
    from ...training.sweep import Grid

    return Grid({"model": [cifar_model_name("resnet", d) for d in depths], "seed": list(seeds)},
                paper_settings(data, steps, cuda_graph))


def seed_record(run_dir: Path) -> dict:
    """One finished run, from its records (its weights are not needed, and may have been removed):
    final errors (%), the per-epoch curves, time."""
    from ...report.run_record import read_run

    run = read_run(run_dir)
    history, info = run.history, run.data_info
    if info["eval_split"] != "test":  # the paper's figure is on the test set, nothing else
        raise UserError(f"{run_dir} was evaluated on {info['eval_split']!r}, not the test set")
    curve = [{"step": h["step"], "train_error": 100 * (1 - h["train_acc"]),
              "test_error": None if h.get("test_acc") is None else 100 * (1 - h["test_acc"])} for h in history]
    return {"seed": run.settings["seed"], "test_error": curve[-1]["test_error"],
            "train_error": curve[-1]["train_error"], "steps": run.steps,
            "time_s": sum(h.get("time_s", 0.0) for h in history), "data": info.get("description"),
            "run_dir": str(run_dir), "curve": curve}


def summarise(values: list[float]) -> dict:
    """Mean, sample std (``None`` with one value) and n of a depth's per-seed test errors (%)."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values), "per_seed": values}


def depth_entry(depth: int, records: list[dict]) -> dict:
    """The published figures and ours for one depth."""
    ours = summarise([r["test_error"] for r in records])
    ours["seeds"] = [r["seed"] for r in records]
    return {"depth": depth, "model": cifar_model_name("resnet", depth), **paper_entry(depth), "ours": ours,
            "runs": records}


@numpy_scalars_as_numbers
def run_table6(out: str | Path, depths: Sequence[int] = TABLE6_DEPTHS, seeds: Sequence[int] = SEEDS, *,
               data: str = "cifar10", steps: int | None = None, jobs: int | str = 1,
               devices: Sequence[str] | None = None, threads: int | None = None, cuda_graph: bool = False,
               log: Callable[[str], object] | None = print) -> dict:
    """Train every depth x seed (resumably, in ``out/runs``) and return the Table 6 comparison.

    Returns a JSON-ready dict: ``settings`` (depths, seeds, data, recipe, steps, paper_steps,
    papers_budget, jobs, devices), ``depths`` (per depth: ``paper_error``, ``reimplementation_error``
    and its source, ``ours`` {mean, std, n, per_seed, seeds}, per-seed ``runs`` with curves),
    ``findings``, ``hardware``, ``date``, ``run_time_s``.
    Raises ``SweepFailed`` / ``SweepInterrupted`` as ``run_whole_sweep`` does.
    """
    from ...runtime import hardware_info, pick_device
    from ...training.sweep import run_whole_sweep
    from ...training.sweep.progress import heading_first

    depths, seeds = check_depths(depths), check_seeds(seeds)
    data, steps = check_data(data), check_steps(steps)
    say = log or (lambda *_: None)
    devices = check_sweep_options(jobs, threads, devices)
    start = time.perf_counter()
    runs = Path(out) / "runs"
    heading = (f"table6: resnet{', resnet'.join(map(str, depths))} x seeds {' '.join(map(str, seeds))}, recipe "
               f"paper, {counted(steps, 'step')}{'' if steps == PAPER_STEPS else ' (not the paper schedule)'}, "
               f"data {data}")
    result = run_whole_sweep(table6_grid(depths, seeds, data, steps, cuda_graph), runs, jobs=jobs, devices=devices,
                             threads=threads, log=heading_first(say, heading))
    entries = [depth_entry(d, [seed_record(runs / f"{cifar_model_name('resnet', d)}-seed{s}") for s in seeds])
               for d in depths]
    settings = {"depths": depths, "seeds": seeds, "data": data, "data_description": entries[0]["runs"][0]["data"],
                "recipe": "paper", "steps": steps, "paper_steps": PAPER_STEPS, "papers_budget": steps == PAPER_STEPS,
                "jobs": result.jobs, "devices": devices, "eval_split": "test", "cuda_graph": cuda_graph}
    return {"experiment": "table6", "settings": settings, "depths": entries,
            "findings": table6_findings(entries, steps, data_gap(data)),
            "hardware": hardware_info(pick_device(devices[0])), "date": datetime.date.today().isoformat(),
            "run_time_s": time.perf_counter() - start}
