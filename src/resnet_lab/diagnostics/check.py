"""``run_gradient_check``: a few monitored training steps and a verdict, for the CLI."""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UserError, check_positive_int
from .choices import MAX_OPTIMIZER_SCALAR, OPTIMIZERS
from .monitor import GradientMonitor
from .table import average_groups


def _cycle(batches: Iterable) -> Iterator:
    """Yield batches forever: re-iterate a re-iterable (a DataLoader, a list), replay a
    one-shot iterator from memory."""
    one_shot = iter(batches) is batches
    seen = []
    while True:
        count = 0
        for batch in (seen if one_shot and seen else batches):
            count += 1
            if one_shot and len(seen) < count:
                seen.append(batch)
            yield batch
        if count == 0:
            raise UserError("the batches given to the gradient check are empty: pass at least one (x, y) batch")


def _optimizer(name: str, params, lr: float, momentum: float, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"optimizer={name!r} is not valid; choose one of: {', '.join(OPTIMIZERS)}")


def run_gradient_check(
    model: nn.Module,
    batches: Iterable,
    steps: int = 10,
    lr: float = 0.1,
    *,
    clip_norm: float | None = None,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    loss_fn: Callable | None = None,
    locate: bool = True,
    **monitor_options,
) -> dict:
    """Train ``model`` for ``steps`` steps with a ``GradientMonitor`` attached and judge it.

    Each step: forward, ``loss_fn`` (default cross-entropy), backward, ``monitor.step``
    (raw gradients, before clipping), optional ``clip_grad_norm_(clip_norm)``, then the
    optimizer step, skipped if anything is non-finite. A non-finite step ends the check;
    with ``locate`` its batch is re-run to name the first module that produced the NaN/Inf.
    The model is trained in place (pass a fresh model); batches are moved to its device and
    re-used in a cycle when there are fewer than ``steps``. A vanishing verdict needs at
    least ``vanish_patience`` (default 3) steps. ``monitor_options`` go to
    ``GradientMonitor`` (``groups``, thresholds, ``track_activations``, ``jsonl_path`` ...).

    Returns a dict:
        ``verdict``, ``reason``, ``verdict_step``: the first non-healthy verdict (the root
            cause: an explosion that ends in NaN reports ``exploding``), else the last one;
        ``last_verdict``: the verdict of the last step;
        ``events``: every change into a non-healthy verdict, as dicts;
        ``groups``: per group ``{name, depth_index, grad_norm, weight_norm, update_ratio}``,
            each the MEAN over the steps where it was finite;
        ``last_groups``: the same at the last recorded step;
        ``global_grad_norm``: mean global gradient norm over the finite steps;
        ``steps_run``, ``nonfinite`` (the location report as a dict, or None), ``records``.
    """
    _check_settings(steps, lr, clip_norm)
    loss_fn = loss_fn or F.cross_entropy
    monitor_options["nonfinite"] = "skip"
    monitor = GradientMonitor(model, **monitor_options)  # first: it explains a model with no parameters
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        opt = _optimizer(optimizer, params, lr, momentum, weight_decay)
    except UserError:
        monitor.close()
        raise
    device = params[0].device
    model.train()

    steps_run = 0
    try:
        for _, (x, y) in zip(range(steps), _cycle(batches)):
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            monitor.step(loss)
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_norm)
            steps_run += 1
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the result reports it
                stepped = monitor.guarded_step(opt, inputs=x if locate else None, targets=y, loss_fn=loss_fn)
            if not stepped:
                break
        records = monitor.records()
        events = monitor.events()
        last = monitor.verdict()
    finally:
        monitor.close()
    return _summary(monitor, records, events, last, steps_run)


def _check_settings(steps, lr, clip_norm) -> None:
    check_positive_int("steps", steps)
    if not lr >= 0:
        raise UserError(f"lr must be >= 0, got {lr!r}")
    if lr > MAX_OPTIMIZER_SCALAR:  # torch's update of the float32 weights would end in a traceback
        raise UserError(f"lr must be at most {MAX_OPTIMIZER_SCALAR:g} (the float32 weights' update overflows beyond), "
                        f"got {lr:g}")
    if clip_norm is not None and not clip_norm > 0:
        raise UserError(f"clip_norm must be > 0 (or None for no clipping), got {clip_norm!r}")


def _summary(monitor: GradientMonitor, records: list[dict], events: list, last, steps_run: int) -> dict:
    """``run_gradient_check``'s result (see there) from the closed monitor's records and verdicts."""
    first = events[0] if events else last
    finite = [r["global_grad_norm"] for r in records if math.isfinite(r["global_grad_norm"])]
    return {
        "verdict": first.kind,
        "reason": first.reason,
        "verdict_step": first.step,
        "last_verdict": last.kind,
        "events": [e.to_dict() for e in events],
        "groups": average_groups(records),
        "last_groups": records[-1]["groups"] if records else [],
        "global_grad_norm": statistics.fmean(finite) if finite else math.nan,
        "steps_run": steps_run,
        "group_order": monitor.group_order,
        "nonfinite": monitor.last_report.to_dict() if monitor.last_report is not None else None,
        "records": records,
    }
