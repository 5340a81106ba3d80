"""The degradation experiment (He et al. 2015, Fig. 1 and Fig. 6): plain and residual nets of
several depths, trained with one recipe on one data set, compared on training error.

``run_degradation(depths=(20, 56))`` trains ``plain20``, ``resnet20``, ``plain56`` and ``resnet56``
(CIFAR family, option A shortcuts, so a plain net and its residual twin have the same
parameters) for every seed with identical settings, and records for each network:

* training and test error per epoch (mean over seeds, and the spread over seeds);
* a finer training-error curve every ``log_every`` steps;
* gradient-flow snapshots (per layer group gradient norm) at a few epochs.

Then it says (``findings``), from the measured final training errors and never by assumption,
whether degradation showed up: the deeper *plain* net ending with a higher training error than
the shallower one, while the deeper *ResNet* ends lower than the shallower ResNet.

It returns data; ``write_degradation_outputs`` (``report``) writes ``results.json``, the figures
and ``report.html``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

from ...errors import UserError, numpy_scalars_as_numbers, shown
from ...files import as_path
from ...models.registry import cifar_model_name
from ...text import counted, percent
from ...training.sweep.progress import heading_first
from . import defaults
from .concurrent import check_sweepable, sweep_runs, train_as_sweep
from .defaults import KINDS
from .findings import findings
from .networks import network_entry, snapshot_epochs
from .table import run_length_text

#: Points per epoch of the finer training curve when ``log_every`` is not given.
POINTS_PER_EPOCH = 4


# --------------------------------------------------------------------------- checks

def _distinct_ints(values: Sequence[int], what: str, example: str) -> list[int]:
    """Integers, at least one, none repeated: the shared check for --depths and --seeds."""
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values]  # one depth or seed where a list goes (as run_survey takes it): not "must be integers"
    try:
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
            raise TypeError  # 8.7 or "8" would be cut to 8 by int(): not what was asked
        values = [int(v) for v in values]
    except TypeError:
        raise UserError(f"{what} must be integers such as {example}, got {shown(values)}") from None
    if not values:
        raise UserError(f"give at least one {what[:-1]}, e.g. --{what} {example}")
    if len(set(values)) != len(values):
        raise UserError(f"each {what[:-1]} once, please: {' '.join(map(str, values))}")
    return values


def check_depths(depths: Sequence[int]) -> list[int]:
    from ...models import get_spec

    depths = _distinct_ints(depths, "depths", "20 56")
    for d in depths:
        get_spec(cifar_model_name("resnet", d))  # the zoo's own message for a depth that is not 6n+2
    return sorted(depths)


def check_seeds(seeds: Sequence[int]) -> list[int]:
    return _distinct_ints(seeds, "seeds", "0 1 2")


# --------------------------------------------------------------------------- data

def _load_dataset(dataset, data: str, first):
    """The data set every net trains on: ``dataset`` if given, else ``data`` loaded; resized to the
    config's ``image_size`` when it is in memory (folder data: the trainer resizes)."""
    from ...data import resize_dataset
    from ...training.setup import check_given_dataset

    check_given_dataset(first, dataset)
    if dataset is None:
        from ...data import load_data

        dataset = load_data(data, first.data_dir, val_split=first.val_split, seed=first.split_seed)
    if first.image_size is not None:
        dataset = resize_dataset(dataset, first.image_size)
    return dataset


# --------------------------------------------------------------------------- the plan

@dataclasses.dataclass
class _Plan:
    """Every network's validated config, resolved before any data is loaded or any net trained."""
    depths: list[int]
    seeds: list[int]
    shortcut: str
    kind_options: dict  # kind -> its model options
    configs: dict  # (kind, depth, seed) -> TrainConfig
    run_dirs: dict  # (kind, depth, seed) -> Path, when the runs are kept

    @property
    def first(self):
        return self.configs[(KINDS[0], self.depths[0], self.seeds[0])]


def _kind_options(model_options: dict | None) -> tuple[str, dict]:
    """The ResNets' shortcut option and each kind's model options: the plain nets get no shortcut and
    no ``zero_init_residual`` (they have no residual branch); any other option applies to every net alike."""
    if model_options is not None and not isinstance(model_options, dict):  # dict("x"): a bare ValueError
        raise UserError(f"model_options is a dict of create_model keywords (e.g. {{'norm': 'none'}}), got "
                        f"{shown(model_options)}")
    options = dict(model_options or {})
    shortcut = options.pop("shortcut", None) or "A"
    if shortcut == "none":
        raise UserError("shortcut 'none' would make the ResNets plain; choose A (the paper's, default), B or C")
    resnet_only = {"shortcut": shortcut} if shortcut != "A" else {}
    if options.pop("zero_init_residual", None):
        resnet_only["zero_init_residual"] = True
    return shortcut, {"plain": options, "resnet": {**options, **resnet_only}}


def _run_dirs(configs: dict, out: str | Path | None) -> dict:
    """Where each run is kept (``out/runs/<model>-seed<s>``); refuses folders that hold a run."""
    if out is None:
        return {}
    run_dirs = {(k, d, s): Path(out) / "runs" / f"{cifar_model_name(k, d)}-seed{s}" for (k, d, s) in configs}
    taken = [str(p) for p in run_dirs.values() if (p / "config.json").exists()]
    if taken:
        raise UserError(f"{taken[0]} already holds a run; choose another output folder or remove it")
    return run_dirs


def _plan(depths, seeds, recipe: str, log_every, common: dict, train_overrides: dict) -> _Plan:
    """Check the arguments and resolve (and validate) every network's config; no run folders yet."""
    from ...training import resolve_config

    depths = check_depths(depths)
    seeds = check_seeds(seeds)
    if log_every is not None and (isinstance(log_every, bool) or not isinstance(log_every, numbers.Integral)
                                  or log_every < 0):  # "2" once ended in a TypeError from the comparison
        raise UserError(f"--log-every must be an integer >= 0 (steps), got {shown(log_every)}")
    for reserved in ("model", "seed", "out", "data"):
        if reserved in train_overrides:
            raise UserError(f"{reserved} is set by the experiment; it cannot be overridden")
    if train_overrides.get("eval_every", 1) != 1:
        raise UserError(f"eval_every must be 1 here (the curves need the test error of every epoch), "
                        f"got {train_overrides['eval_every']!r}")
    common = {**common, **train_overrides, "eval_every": 1}
    shortcut, kind_options = _kind_options(common.pop("model_options", None))
    configs = {(k, d, s): resolve_config(recipe, model=cifar_model_name(k, d), seed=s,
                                         model_options=kind_options[k] or None, **common)
               for d in depths for k in KINDS for s in seeds}
    return _Plan(depths, seeds, shortcut, kind_options, configs, {})


def _run_length(dataset, first, log_every: int | None) -> dict:
    """Steps per epoch, the finer curve's ``log_every``, total steps and the epochs that run."""
    steps_per_epoch = len(dataset.y_train) // first.batch_size if hasattr(dataset, "y_train") else None
    if steps_per_epoch == 0:
        raise UserError(f"batch size {first.batch_size} leaves no full batch in {dataset.description()}; "
                        "lower --batch-size")
    if log_every is None:
        log_every = max(1, (steps_per_epoch or 4 * POINTS_PER_EPOCH) // POINTS_PER_EPOCH)
    total_steps = first.steps or (first.epochs * steps_per_epoch if steps_per_epoch else None)
    epochs_run = math.ceil(total_steps / steps_per_epoch) if total_steps and steps_per_epoch else first.epochs
    return {"steps_per_epoch": steps_per_epoch, "log_every": log_every, "total_steps": total_steps,
            "epochs_run": epochs_run}


def _parameter_counts(plan: _Plan, dataset) -> dict:
    """Parameters per (kind, depth), from meta copies (a plain net and its option-A twin agree)."""
    import torch

    from ...models import count_params, create_model

    params = {}
    for d in plan.depths:
        for k in KINDS:
            with torch.device("meta"):
                net = create_model(cifar_model_name(k, d), num_classes=dataset.num_classes,
                                   in_channels=dataset.in_channels, **plan.configs[(k, d, plan.seeds[0])].model_options)
            params[(k, d)] = count_params(net)
    return params


# --------------------------------------------------------------------------- training

def _train_one(c, dataset, say, verbose: bool) -> dict:
    """Train one network with one seed; its record (the per-epoch errors and the histories)."""
    from ...diagnostics import NonFiniteError
    from ...training import train

    t0 = time.perf_counter()
    try:
        result = train(c, log=(lambda m: say(f"  {m}")) if verbose else (lambda *_: None), dataset=dataset)
    except NonFiniteError as err:  # name the network; a lower lr or on_nonfinite="skip" helps
        raise NonFiniteError(f"{c.model} (seed {c.seed}): {err}; lower the learning rate or pass "
                             "on_nonfinite='skip' (--on-nonfinite skip)", step=err.step,
                             report=err.report) from err
    seconds = time.perf_counter() - t0
    record = _record(c.seed, result.history, result.step_history, result.steps, seconds, result.run_dir)
    say(f"  {c.model} seed {c.seed}: final training error {percent(record['final_train_error'])}, "
        f"{'val' if c.val_split else 'test'} error {percent(record['final_test_error'])} ({seconds:.1f} s)")
    return record


def _record(seed: int, history: list[dict], step_history: list[dict], steps: int, seconds: float, run_dir) -> dict:
    """One network's run: its per-epoch errors and losses and its histories."""
    train_error = [1.0 - h["train_acc"] for h in history]
    test_error = [1.0 - h["test_acc"] for h in history]
    return {"seed": seed, "train_error": train_error, "test_error": test_error,
            "final_train_error": train_error[-1], "final_test_error": test_error[-1],
            "train_loss": [h["train_loss"] for h in history],
            "test_loss": [h["test_loss"] for h in history],
            "steps": steps, "time_s": seconds,
            "images_per_s": statistics.fmean(h["images_per_s"] for h in history),
            "history": history, "step_history": step_history,
            "run_dir": str(run_dir) if run_dir else None}


def _record_of_run(run_dir: Path) -> dict:
    """The record of a network trained by a sweep worker, from its records, not its weights (time: its
    epochs' time)."""
    from ...report.run_record import read_run

    run = read_run(run_dir)
    return _record(run.settings["seed"], run.history, run.step_history, run.steps,
                   sum(h["time_s"] for h in run.history), run_dir)


def _train_networks(plan: _Plan, dataset, say, verbose: bool) -> dict:
    """Every network (by depth, plain before residual), every seed, one after another in this process."""
    records = {}
    for done, key in enumerate(sorted(plan.configs, key=_network_order), start=1):
        c = plan.configs[key]
        if key in plan.run_dirs:
            c.out = str(plan.run_dirs[key])
        say(f"[{done}/{len(plan.configs)}] {c.model}, seed {key[2]}")
        records[key] = _train_one(c, dataset, say, verbose)
    return records


def _network_order(key: tuple) -> tuple:
    kind, depth, seed = key
    return depth, KINDS.index(kind), seed


def _entries(plan: _Plan, params: dict, snap: list[int], records: dict) -> list[dict]:
    """One entry per network, its seeds' records summarised."""
    return [network_entry(k, d, params[(k, d)], [records[(k, d, s)] for s in plan.seeds], snap, plan.shortcut)
            for d in plan.depths for k in KINDS]


def _settings(plan: _Plan, length: dict, dataset, data: str, recipe: str, dev, snapshots: list[int]) -> dict:
    first = plan.first
    return {
        "depths": plan.depths, "seeds": plan.seeds, "recipe": recipe, "data": data, "shortcut": plan.shortcut,
        "data_description": dataset.description(), "eval_split": getattr(dataset, "eval_split", "test"),
        "num_classes": dataset.num_classes,
        "device": str(dev), "epochs": first.epochs, "steps": first.steps, "epochs_run": length["epochs_run"],
        "steps_per_epoch": length["steps_per_epoch"], "total_steps": length["total_steps"],
        "log_every": length["log_every"], "snapshot_epochs": snapshots,
        "train": {k: v for k, v in first.to_dict().items()
                  if k not in ("model", "seed", "out", "progress", "tensorboard", "log_every", "data")},
        "effective_lr": first.effective_lr,
    }


# --------------------------------------------------------------------------- the experiment

@numpy_scalars_as_numbers
def run_degradation(depths: Sequence[int] = defaults.DEPTHS, *, data: str = "digits",
                    seeds: Sequence[int] = defaults.SEEDS, recipe: str = defaults.RECIPE, epochs: int | None = None,
                    device: str = "auto", log_every: int | None = None, out: str | Path | None = None,
                    log: Callable[[str], object] | None = print, progress: bool = False, dataset=None,
                    jobs: int | str | None = None, devices: Sequence[str] | None = None, threads: int | None = None,
                    **train_overrides) -> dict:
    """Train plain and residual nets of each depth with the same recipe, data and seeds.

    Args:
        depths: CIFAR depths (6n+2: 8, 14, 20, 32, 44, 56, 110, ...); default 20 and 56.
        data: data set spec (``digits``, ``cifar10``, ``npz:PATH``, ...), loaded once for all nets.
        seeds: one run per seed and network; curves and final errors are means over seeds, with
            their sample standard deviation as the spread.
        recipe, epochs, device, **train_overrides: as ``resolve_config`` (``batch_size``, ``lr``,
            ``schedule``, ``steps``, ``data_dir``, ``val_split``, ...), the same for every net.
        log_every: steps between points of the finer training curve (default: about
            ``POINTS_PER_EPOCH`` per epoch).
        out: also keep each net's run directory (checkpoints, metrics) in ``out/runs/<model>-seed<s>``.
        log: progress messages (``None``: silent); ``progress``: tqdm bars per epoch.
        dataset: an already loaded data set (then ``data`` only names it).
        image_size (a train override): also resizes in-memory data (digits: ``image_size=16``
            trains about four times faster than the default 32x32 upsampling of its 8x8 images).
        jobs: train the networks as a sweep (``concurrent.py``): each in a worker process, ``jobs``
            (or ``"auto"``) at once on each of ``devices`` with ``threads`` CPU threads each, in
            ``out/runs``; calling again with the same arguments continues a killed call. ``None``
            (default): one after another in this process.

    Returns a JSON-ready dict: ``settings``, ``networks`` (one entry per net: ``model, depth, shortcut,
    shortcut_option, params, seeds, epochs, train_error, test_error`` (lists per epoch) and their
    ``_std``, ``final_train_error, final_test_error`` and their ``_std``, ``step_curve``,
    ``gradient_flow``, ``time_s``, per-seed ``runs``), ``findings``, ``run_time_s``, ``hardware``.
    """
    from ...runtime import hardware_info, pick_device

    say = log or (lambda *_: None)
    out = None if out is None else as_path(out, "out")  # a number: one line, not pathlib's TypeError
    # No report per network: the experiment draws its own.
    common = dict(data=data, epochs=epochs, device=device, tensorboard=False, progress=progress, report="none")
    if train_overrides.get("val_split"):  # every net and seed judged on the same held-out images
        train_overrides.setdefault("val_seed", 0)
    plan = _plan(depths, seeds, recipe, log_every, common, train_overrides)
    check_sweepable(jobs, threads, devices, dataset, out)
    dev = pick_device(plan.first.device)
    plan.run_dirs = _run_dirs(plan.configs, out) if jobs is None else {}  # a sweep checks its own folder
    start = time.perf_counter()
    dataset = _load_dataset(dataset, data, plan.first)
    length = _run_length(dataset, plan.first, log_every)
    for c in plan.configs.values():
        c.log_every = length["log_every"]
    params = _parameter_counts(plan, dataset)
    heading = (f"degradation: {', '.join(cifar_model_name(k, d) for d in plan.depths for k in KINDS)} on "
               f"{dataset.description()}, {dev}, {counted(len(plan.seeds), 'seed')}, "
               f"{run_length_text(length['total_steps'], length['epochs_run'], length['steps_per_epoch'])}, "
               f"recipe {recipe}")
    snap = snapshot_epochs(length["epochs_run"] or 1)
    if jobs is None:
        say(heading)
        records = _train_networks(plan, dataset, say, verbose=log is not None)
    else:  # the heading after the sweep's checks of its folder: a refusal there is the one line
        fixed = {"eval_every": 1, **common, **train_overrides, "log_every": length["log_every"]}
        grid, runs = sweep_runs(plan.depths, plan.seeds, recipe, fixed, plan.kind_options)
        records = train_as_sweep(grid, runs, out, list(plan.configs), jobs, devices, threads,
                                 heading_first(say, heading), _record_of_run)
    networks = _entries(plan, params, snap, records)
    # the epochs that have a snapshot: an epoch without a monitor record (--monitor-every) has none
    taken = sorted({g["epoch"] for n in networks for g in n["gradient_flow"]})
    settings = _settings(plan, length, dataset, data, recipe, dev, taken)
    return {"experiment": "degradation", "settings": settings, "networks": networks,
            "findings": findings(networks, settings), "run_time_s": time.perf_counter() - start,
            "hardware": hardware_info(dev)}
