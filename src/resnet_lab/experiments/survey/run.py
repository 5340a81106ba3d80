"""Quantify the folklore of training deep nets by flipping one switch at a time.

``run_survey(depths=(8, 20, 56))`` builds CIFAR-style nets on one data set and measures each *cell*
(one configuration of the design, ``design.py``): the gradient norms of the first and last blocks
at initialisation and a short run (``cells.py``). Each claim (``CLAIMS``) is then judged from the
measured cells by a fixed rule (``findings.judge_claims``), and written with the numbers that
support or contradict it.

Everything returned is plain JSON-ready data; printing is ``table.survey_text``, files are
``report.write_survey_outputs``, figures ``plot.plot_survey``.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from ...errors import UserError
from ...runtime import hardware_info, pick_device
from .cells import _batches, run_cell
from .design import (DESIGN, DIVERGE_FACTOR, FULL_DESIGN, LOSS_SMOOTH, ORDER, TRAINED_DROP, VANISH_RATIO,
                     plan_cells)
from .findings import fmt, fmt_ratio, judge_claims


def _validate(depths, steps, batches_at_init, batch_size, lr, high_lr, clip_norm, image_size, high_lr_depth):
    if not depths:
        raise UserError("give at least one depth, e.g. --depths 8 20 56")
    for d in list(depths) + [high_lr_depth]:
        if isinstance(d, bool) or not isinstance(d, int):
            raise UserError(f"depths must be integers, got {d!r}")
        if d < 8 or (d - 2) % 6:
            near = sorted({max(8, d - (d - 2) % 6), max(8, d - (d - 2) % 6 + 6)})
            raise UserError(f"depth {d}: the survey uses CIFAR-style nets with 6n+2 layers (8, 14, 20, 26, 32, 44, "
                            f"56, 110, ...); nearest: {', '.join(map(str, near))}")
    for name, value in (("steps", steps), ("batches_at_init", batches_at_init), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
    for name, value in (("lr", lr), ("high_lr", high_lr), ("clip_norm", clip_norm)):
        if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
            raise UserError(f"{name.replace('_', '-')} must be a positive number, got {value!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 8):
        raise UserError(f"image-size must be an integer >= 8 (CIFAR nets halve it twice), got {image_size!r}")


def run_survey(
    depths=(8, 20, 56),
    *,
    data: str = "digits",
    data_dir: str | None = None,
    steps: int = 30,
    batches_at_init: int = 3,
    batch_size: int = 32,
    image_size: int | None = None,
    lr: float = 0.1,
    high_lr: float | None = None,
    high_lr_depth: int | None = None,
    clip_norm: float = 1.0,
    seed: int = 0,
    full: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    log: Callable[[str], object] | None = print,
) -> dict:
    """Run the survey and judge the claims; returns JSON-ready data.

    Args:
        depths: CIFAR depths (6n+2), e.g. (8, 20, 56); plain and residual nets of each.
        data: a ``load_data`` spec (digits by default: bundled, no network); ``data_dir`` its cache.
        steps: SGD steps (momentum 0.9) of each cell's short run, at ``lr``.
        batches_at_init: batches the gradient norms at initialisation are averaged over.
        batch_size: images per batch (the same fixed batches for every cell).
        image_size: resize the images to this side (the digits are 8x8 originals upsampled to 32,
            so 16 loses nothing and is about 4x faster); None keeps the data's size.
        high_lr, clip_norm: the learning rate "far too high" (default 10x ``lr``) of the clipping
            pair (a residual net without normalisation), and its clipping threshold; ``high_lr_depth``
            its depth (default: 20 if measured, else the deepest depth).
        seed: seeds every model (each cell starts from the same seed) and the batch order.
        full: the whole product of switches (36 cells per depth) instead of one switch at a time.
        device: cpu, cuda, mps or auto.
        threads: CPU threads for torch during the survey (restored afterwards); None leaves torch's
            setting. These nets are small: on two busy cores one thread was 5x faster than two.
        log: progress lines (None: silent).

    Returns ``{"settings", "design", "cells", "claims", "data", "run_time_s", "hardware"}``; each cell
    has ``name, group, variant, depth, shortcut, norm, activation, init, lr, clip_norm,
    first_block, last_block, grad_first_batches, grad_last_batches, grad_first, grad_last, ratio,
    verdict, reason, verdict_step, steps_run, global_grad_norm, losses, loss_start, loss_end,
    loss_drop, steps_to_90, steps_to_half, outcome, time_s`` (None for a non-finite number); each
    claim ``{id, claim, supported (True/False/None = not measurable here), evidence, cells}``.

    Cost: about (cells x (steps + batches_at_init)) forward/backward passes; the default design
    has 16 cells per depth plus 2. The demo settings (``DEMO_SETTINGS``) take about 30-45 s on two
    busy CPU cores; the defaults (depths 8, 20, 56, 30 steps, batch 32) take minutes on a CPU.
    """
    depths = (depths,) if isinstance(depths, int) else tuple(depths)
    high_lr = 10 * lr if high_lr is None else high_lr
    if high_lr_depth is None:
        high_lr_depth = 20 if 20 in depths else (max(depths) if depths else 20)
    _validate(depths, steps, batches_at_init, batch_size, lr, high_lr, clip_norm, image_size, high_lr_depth)
    depths = tuple(sorted(set(depths)))
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads must be a positive integer, got {threads!r}")
    dev = pick_device(device)
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _survey(depths, data, data_dir, steps, batches_at_init, batch_size, image_size, lr, high_lr,
                       high_lr_depth, clip_norm, seed, full, dev, log or (lambda _msg: None))
    finally:
        torch.set_num_threads(saved_threads)


def _load(data: str, data_dir: str | None):
    from ...data import FolderDataset, load_data

    ds = load_data(data, data_dir)
    if isinstance(ds, FolderDataset):
        raise UserError("the survey needs in-memory data (digits, cifar10, cifar100, npz:PATH), not an image folder")
    return ds


def _progress(i: int, total: int, c: dict) -> str:
    return (f"[{i}/{total}] {c['name']}: first/last {fmt_ratio(c['ratio'])}, loss {fmt(c['loss_start'])} -> "
            f"{fmt(c['loss_end'])} ({c['outcome']}), {c['verdict']} ({c['time_s']:.1f} s)")


def _survey(depths, data, data_dir, steps, batches_at_init, batch_size, image_size, lr, high_lr, high_lr_depth,
            clip_norm, seed, full, dev, say) -> dict:
    t_start = time.perf_counter()
    ds = _load(data, data_dir)
    size = image_size or ds.image_size
    batches = _batches(ds, batch_size, max(steps, batches_at_init), device=dev, seed=seed, image_size=image_size)
    init_batches, train_batches = batches[:batches_at_init], batches[:steps]

    plan = plan_cells(depths, full, lr, high_lr, high_lr_depth, clip_norm)
    say(f"{len(plan)} cells on {ds.description()} at {size}x{size}, batch {batch_size}, {steps} steps, device {dev}")
    cells = []
    for i, cell in enumerate(plan, 1):
        cells.append(run_cell(cell, init_batches, train_batches, steps=steps, seed=seed, device=dev,
                              num_classes=ds.num_classes, in_channels=ds.in_channels))
        say(_progress(i, len(plan), cells[-1]))

    settings = {"depths": list(depths), "data": data, "steps": steps, "batches_at_init": batches_at_init,
                "batch_size": batch_size, "image_size": size, "lr": lr, "momentum": 0.9, "optimizer": "sgd",
                "high_lr": high_lr, "high_lr_depth": high_lr_depth, "clip_norm": clip_norm, "seed": seed,
                "full": full, "device": str(dev), "threads": torch.get_num_threads(),
                "rules": {"loss_smooth": LOSS_SMOOTH, "trained_drop": TRAINED_DROP,
                          "diverge_factor": DIVERGE_FACTOR, "order": ORDER, "vanish_ratio": VANISH_RATIO}}
    return {"settings": settings, "design": FULL_DESIGN if full else DESIGN,
            "data": ds.description(), "cells": cells, "claims": judge_claims(cells),
            "run_time_s": time.perf_counter() - t_start, "hardware": hardware_info(dev)}
