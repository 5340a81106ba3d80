"""Quantify the folklore of training deep nets by flipping one switch at a time.

``run_survey(depths=(8, 20, 56))`` builds CIFAR-style nets on one data set and measures each *cell*
(one configuration of the design, ``design.py``) with several seeds: the gradient norms of the
first and last blocks at initialisation and a short run (``cells.py``), combined over the seeds
(``spread.py``). Each claim (``CLAIMS``) is then judged from every seed's measurements by a fixed
rule (``findings.judge_claims``), and written with the numbers, their spread and the budget.

Everything returned is plain JSON-ready data; printing is ``table.survey_text``, files are
``report.write_survey_outputs``, figures ``plot.plot_survey``. With ``jobs=`` the cells are
measured as a sweep, each cell and seed in a worker process of its own (``concurrent.py``). The
keywords become one ``SurveySettings`` (``settings.py``), checked before any work; the helpers take it.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from ...errors import UserError, numpy_scalars_as_numbers
from ...runtime import hardware_info, pick_device
from ...text import counted
from .cells import _batches, check_batch_size, load_survey_data, run_cell
from .concurrent import measure_as_sweep
from .design import (DEFAULTS, DESIGN, DIVERGE_FACTOR, FULL_DESIGN, LOSS_SMOOTH, ORDER, TRAINED_DROP, VANISH_RATIO,
                     plan_cells)
from .findings import judge_claims
from .settings import SurveySettings
from .spread import combine_runs
from .table import run_line


@numpy_scalars_as_numbers
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
        only: cell names (or one name) to run, the rest of the design skipped (e.g. the cells a claim was judged
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
    settings = SurveySettings.from_keywords(
        depths, data=data, data_dir=data_dir, steps=steps, seeds=seeds, batches_at_init=batches_at_init,
        batch_size=batch_size, image_size=image_size, lr=lr, high_lr=high_lr, high_lr_depth=high_lr_depth,
        clip_norm=clip_norm, seed=seed, full=full, only=only, device=device, threads=threads, jobs=jobs,
        devices=devices, out=out)
    dev = pick_device(device if settings.devices is None else settings.devices[0])
    saved_threads = torch.get_num_threads()
    if settings.threads is not None and settings.jobs is None:
        torch.set_num_threads(settings.threads)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # each cell seeds its own
            return _survey(settings, dev, log or (lambda _msg: None))
    finally:
        torch.set_num_threads(saved_threads)


def _select(plan: list[dict], only) -> list[dict]:
    """The planned cells named in ``only`` (all if None); a name the design does not plan is an error."""
    if only is None:
        return plan
    names = {only} if isinstance(only, str) else set(only)  # one name, not its letters
    unknown = names - {c["name"] for c in plan}
    if unknown:
        raise UserError(f"not cells of this design: {', '.join(sorted(unknown))}")
    return [c for c in plan if c["name"] in names]


def _progress(i: int, total: int, name: str, r: dict) -> str:
    return f"[{i}/{total}] {name} seed {r['seed']}: {run_line(r)} ({r['time_s']:.1f} s)"


def _measure(plan: list[dict], s: SurveySettings, ds, dev, say) -> list[list[dict]]:
    """Every cell with every seed: per cell, its runs in seed order. Seed by seed, so that each
    seed's batches are built once."""
    steps, at_init, seeds = s.steps, s.batches_at_init, s.seed_list
    runs = [[] for _ in plan]
    done, total = 0, len(plan) * len(seeds)
    for seed in seeds:
        batches = _batches(ds, s.batch_size, max(steps, at_init), device=dev, seed=seed, image_size=s.image_size)
        for cell, cell_runs in zip(plan, runs):
            cell_runs.append(run_cell(cell, batches[:at_init], batches[:steps], steps=steps, seed=seed,
                                      device=dev, num_classes=ds.num_classes, in_channels=ds.in_channels))
            done += 1
            say(_progress(done, total, cell["name"], cell_runs[-1]))
    return runs


def _survey(s: SurveySettings, dev, say) -> dict:
    t_start = time.perf_counter()
    ds = load_survey_data(s.data, s.data_dir)
    check_batch_size(ds, s.batch_size)
    size = s.image_size or ds.image_size
    plan = _select(plan_cells(s.depths, s.full, s.lr, s.high_lr, s.high_lr_depth, s.clip_norm), s.only)
    say(f"{counted(len(plan), 'cell')} x {counted(s.seeds, 'seed')} on {ds.description()} at {size}x{size}, "
        f"batch {s.batch_size}, {counted(s.steps, 'step')}, device {dev if s.jobs is None else ', '.join(s.devices)}")
    workers = {}
    if s.jobs is None:
        runs = _measure(plan, s, ds, dev, say)
    else:
        runs, swept = measure_as_sweep(plan, s, say)
        workers = {"threads": swept.threads, "jobs": swept.jobs, "devices": swept.devices,
                   "cells_dir": str(swept.out)}
    cells = [combine_runs({**cell, "steps": s.steps, "batches_at_init": s.batches_at_init}, cell_runs)
             for cell, cell_runs in zip(plan, runs)]
    return {"settings": _record(s, size, plan, dev, workers), "design": FULL_DESIGN if s.full else DESIGN,
            "data": ds.description(), "cells": cells, "claims": judge_claims(cells),
            "run_time_s": time.perf_counter() - t_start, "hardware": hardware_info(dev)}


def _record(s: SurveySettings, image_size: int, plan: list[dict], dev, workers: dict) -> dict:
    """The result's ``settings``: what was measured, as run (the image size, the cells of ``only``, the
    device and threads, a sweep's ``workers``), and the rules the claims were judged by."""
    return {"depths": list(s.depths), "data": s.data, "steps": s.steps, "seeds": s.seed_list,
            "batches_at_init": s.batches_at_init, "batch_size": s.batch_size, "image_size": image_size, "lr": s.lr,
            "momentum": 0.9, "optimizer": "sgd", "high_lr": s.high_lr, "high_lr_depth": s.high_lr_depth,
            "clip_norm": s.clip_norm, "full": s.full, "only": None if s.only is None else [c["name"] for c in plan],
            "device": str(dev), "threads": torch.get_num_threads(), **workers,
            "rules": {"loss_smooth": LOSS_SMOOTH, "trained_drop": TRAINED_DROP,
                      "diverge_factor": DIVERGE_FACTOR, "order": ORDER, "vanish_ratio": VANISH_RATIO}}
