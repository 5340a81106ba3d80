"""Quantify the folklore of training deep nets by flipping one switch at a time.

``run_survey(depths=(8, 20, 56))`` builds CIFAR-style nets on one data set and measures each *cell*
(one configuration of the design, ``design.py``) with several seeds: the gradient norms of the
first and last blocks at initialisation and a short run (``cells.py``), combined over the seeds
(``spread.py``). Each claim (``CLAIMS``) is then judged from every seed's measurements by a fixed
rule (``findings.judge_claims``), and written with the numbers, their spread and the budget.

Everything returned is plain JSON-ready data; printing is ``table.survey_text``, files are
``report.write_survey_outputs``, figures ``plot.plot_survey``. With ``jobs=`` the cells are
measured as a sweep, each cell and seed in a worker process of its own (``concurrent.py``).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ...errors import UserError, check_positive_int
from ...models.choices import MIN_IMAGE_SIZE
from ...runtime import hardware_info, pick_device
from ...text import counted
from ...training.sweep import check_devices
from .cells import _batches, check_batch_size, load_survey_data, run_cell
from .concurrent import check_sweepable, measure_as_sweep
from .design import (DEFAULTS, DESIGN, DIVERGE_FACTOR, FULL_DESIGN, LOSS_SMOOTH, ORDER, TRAINED_DROP, VANISH_RATIO,
                     plan_cells)
from .findings import judge_claims
from .spread import combine_runs
from .table import run_line


def _validate(depths, steps, seeds, batches_at_init, batch_size, lr, high_lr, clip_norm, image_size,
              high_lr_depth):
    if not depths:
        raise UserError("give at least one depth, e.g. --depths 8 20 56")
    for d in list(depths) + [high_lr_depth]:
        if isinstance(d, bool) or not isinstance(d, int):
            raise UserError(f"depths must be integers, got {d!r}")
        if d < 8 or (d - 2) % 6:
            near = sorted({max(8, d - (d - 2) % 6), max(8, d - (d - 2) % 6 + 6)})
            raise UserError(f"depth {d}: the survey uses CIFAR-style nets with 6n+2 layers (8, 14, 20, 26, 32, 44, "
                            f"56, 110, ...); nearest: {', '.join(map(str, near))}")
    for name, value in (("steps", steps), ("seeds", seeds), ("batches_at_init", batches_at_init),
                        ("batch_size", batch_size)):
        check_positive_int(name.replace("_", "-"), value)
    for name, value in (("lr", lr), ("high_lr", high_lr), ("clip_norm", clip_norm)):
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise UserError(f"{name.replace('_', '-')} must be a positive number, got {value!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE):
        raise UserError(f"image-size must be an integer >= {MIN_IMAGE_SIZE} (CIFAR nets halve it twice), "
                        f"got {image_size!r}")


def run_survey(
    depths=DEFAULTS["depths"],
    *,
    data: str = "digits",
    data_dir: str | None = None,
    steps: int = DEFAULTS["steps"],
    seeds: int = DEFAULTS["seeds"],
    batches_at_init: int = DEFAULTS["batches_at_init"],
    batch_size: int = DEFAULTS["batch_size"],
    image_size: int | None = None,
    lr: float = DEFAULTS["lr"],
    high_lr: float | None = None,
    high_lr_depth: int | None = None,
    clip_norm: float = DEFAULTS["clip_norm"],
    seed: int = DEFAULTS["seed"],
    full: bool = False,
    only=None,
    device: str = "cpu",
    threads: int | None = None,
    jobs: int | str | None = None,
    devices=None,
    out=None,
    log: Callable[[str], object] | None = print,
) -> dict:
    """Run the survey and judge the claims; returns JSON-ready data.

    Args:
        depths: CIFAR depths (6n+2), e.g. (8, 20, 56); plain and residual nets of each.
        data: a ``load_data`` spec (digits by default: bundled, no network); ``data_dir`` its cache.
        steps: SGD steps (momentum 0.9) of each cell's short run, at ``lr``.
        seeds: how many seeds (``seed``, ``seed + 1``, ...) each cell is measured with; each claim
            must hold in every seed to be supported (``findings.decide``).
        batches_at_init: batches the gradient norms at initialisation are averaged over.
        batch_size: images per batch (the same fixed batches for every cell).
        image_size: resize the images to this side (the digits are 8x8 originals upsampled to 32,
            so 16 loses nothing and is about 4x faster); None keeps the data's size.
        high_lr, clip_norm: the learning rate "far too high" (default 10x ``lr``) of the clipping
            pair (a residual net without normalisation), and its clipping threshold; ``high_lr_depth``
            its depth (default: 20 if measured, else the deepest depth).
        seed: the first seed; a seed sets every model's weights (each cell of one seed starts from
            the same seed) and the batch order.
        full: the whole product of switches (36 cells per depth) instead of one switch at a time.
        only: cell names to run, the rest of the design skipped (e.g. the cells a claim was judged
            from, ``claim["measured"]``); a claim whose cells are missing comes out NOT MEASURED.
        device: cpu, cuda, mps or auto.
        threads: CPU threads for torch during the survey (restored afterwards); None leaves torch's
            setting. These nets are small: on two busy cores one thread was 5x faster than two.
            With ``jobs``: the threads of each worker (default: the cores shared out among them).
        jobs: measure the cells as a sweep (``concurrent.py``): each cell and seed in a worker
            process, ``jobs`` (or ``"auto"``) at once on each of ``devices`` (default ``[device]``),
            in ``out/cells/<cell>-seed<s>``; the same call again measures only the cells without a
            result, and refuses an ``out`` whose cells were measured with other settings. Raises
            ``SweepFailed`` (some cells failed: no claim is judged) or ``SweepInterrupted``.
            ``None`` (default): one cell after another in this process.
        log: progress lines (None: silent).

    Returns ``{"settings", "design", "cells", "claims", "data", "run_time_s", "hardware"}``; each cell
    has its configuration (``name, group, variant, depth, shortcut, norm, activation, init, lr,
    clip_norm, steps, batches_at_init``), ``runs`` (per seed: ``seed, first_block, last_block,
    grad_first_batches, grad_last_batches, grad_first, grad_last, ratio, verdict, reason,
    verdict_step, steps_run, global_grad_norm, losses, loss_start, loss_end, loss_drop, steps_to_90,
    steps_to_half, outcome, time_s``; None for a non-finite number) and their summary
    (``spread.combine_runs``: medians, ``<key>_range``, ``outcomes``, ``verdicts``); each claim
    ``{id, claim, verdict, supported, budget, measured, evidence, cells}`` (``findings.judge_claims``).

    Cost: about (seeds x cells x (steps + batches_at_init)) forward/backward passes; the default
    design has 16 cells per depth plus 2. See ``DEMO_SETTINGS`` for the demo's budget and its time.
    """
    depths = (depths,) if isinstance(depths, int) else tuple(depths)
    high_lr = 10 * lr if high_lr is None else high_lr
    if high_lr_depth is None:
        high_lr_depth = 20 if 20 in depths else (max(depths) if depths else 20)
    _validate(depths, steps, seeds, batches_at_init, batch_size, lr, high_lr, clip_norm, image_size, high_lr_depth)
    depths = tuple(sorted(set(depths)))
    if threads is not None:
        check_positive_int("threads", threads)
    check_sweepable(jobs, threads, devices, out)
    sweep = None
    if jobs is not None:
        sweep = {"jobs": jobs, "devices": check_devices(devices or [device]), "threads": threads, "out": out}
    dev = pick_device(device if sweep is None else sweep["devices"][0])
    saved_threads = torch.get_num_threads()
    if threads is not None and sweep is None:
        torch.set_num_threads(threads)
    try:
        return _survey(depths, data, data_dir, steps, batches_at_init, batch_size, image_size, lr, high_lr,
                       high_lr_depth, clip_norm, list(range(seed, seed + seeds)), full, only, dev,
                       log or (lambda _msg: None), sweep)
    finally:
        torch.set_num_threads(saved_threads)


def _select(plan: list[dict], only) -> list[dict]:
    """The planned cells named in ``only`` (all if None); a name the design does not plan is an error."""
    if only is None:
        return plan
    names = set(only)
    unknown = names - {c["name"] for c in plan}
    if unknown:
        raise UserError(f"not cells of this design: {', '.join(sorted(unknown))}")
    return [c for c in plan if c["name"] in names]


def _progress(i: int, total: int, name: str, r: dict) -> str:
    return f"[{i}/{total}] {name} seed {r['seed']}: {run_line(r)} ({r['time_s']:.1f} s)"


def _measure(plan, seeds, ds, steps, batches_at_init, batch_size, image_size, dev, say) -> list[list[dict]]:
    """Every cell with every seed: per cell, its runs in seed order. Seed by seed, so that each
    seed's batches are built once."""
    runs = [[] for _ in plan]
    done, total = 0, len(plan) * len(seeds)
    for seed in seeds:
        batches = _batches(ds, batch_size, max(steps, batches_at_init), device=dev, seed=seed, image_size=image_size)
        for cell, cell_runs in zip(plan, runs):
            cell_runs.append(run_cell(cell, batches[:batches_at_init], batches[:steps], steps=steps, seed=seed,
                                      device=dev, num_classes=ds.num_classes, in_channels=ds.in_channels))
            done += 1
            say(_progress(done, total, cell["name"], cell_runs[-1]))
    return runs


def _survey(depths, data, data_dir, steps, batches_at_init, batch_size, image_size, lr, high_lr, high_lr_depth,
            clip_norm, seeds, full, only, dev, say, sweep) -> dict:
    t_start = time.perf_counter()
    ds = load_survey_data(data, data_dir)
    check_batch_size(ds, batch_size)
    size = image_size or ds.image_size
    plan = _select(plan_cells(depths, full, lr, high_lr, high_lr_depth, clip_norm), only)
    say(f"{counted(len(plan), 'cell')} x {counted(len(seeds), 'seed')} on {ds.description()} at {size}x{size}, "
        f"batch {batch_size}, {counted(steps, 'step')}, device {dev if sweep is None else ', '.join(sweep['devices'])}")
    workers = {}
    if sweep is None:
        runs = _measure(plan, seeds, ds, steps, batches_at_init, batch_size, image_size, dev, say)
    else:
        shared = {"data": data, "data_dir": data_dir, "steps": steps, "batches_at_init": batches_at_init,
                  "batch_size": batch_size, "image_size": image_size}
        runs, swept = measure_as_sweep(plan, seeds, shared, sweep["out"], sweep["jobs"], sweep["devices"],
                                       sweep["threads"], say)
        workers = {"threads": swept.threads, "jobs": swept.jobs, "devices": swept.devices,
                   "cells_dir": str(swept.out)}
    cells = [combine_runs({**cell, "steps": steps, "batches_at_init": batches_at_init}, cell_runs)
             for cell, cell_runs in zip(plan, runs)]

    settings = {"depths": list(depths), "data": data, "steps": steps, "seeds": seeds,
                "batches_at_init": batches_at_init, "batch_size": batch_size, "image_size": size, "lr": lr,
                "momentum": 0.9, "optimizer": "sgd", "high_lr": high_lr, "high_lr_depth": high_lr_depth,
                "clip_norm": clip_norm, "full": full, "only": None if only is None else [c["name"] for c in plan],
                "device": str(dev), "threads": torch.get_num_threads(), **workers,
                "rules": {"loss_smooth": LOSS_SMOOTH, "trained_drop": TRAINED_DROP,
                          "diverge_factor": DIVERGE_FACTOR, "order": ORDER, "vanish_ratio": VANISH_RATIO}}
    return {"settings": settings, "design": FULL_DESIGN if full else DESIGN,
            "data": ds.description(), "cells": cells, "claims": judge_claims(cells),
            "run_time_s": time.perf_counter() - t_start, "hardware": hardware_info(dev)}
