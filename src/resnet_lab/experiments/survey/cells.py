"""Measuring one survey cell with one seed: gradient norms at initialisation, then a short run and what its losses say.

* at initialisation, averaged over ``batches_at_init`` batches (forward + backward, no optimizer
  step, gradients zeroed in between, BatchNorm statistics restored afterwards): the gradient norm
  of the FIRST residual block (``layer1.0``) and of the LAST one (``layer3.<last>``) and their
  ratio first/last (the same block-level grouping as the gradient monitor);
* in a short run (``steps`` SGD steps, momentum 0.9, on the same fixed batches for every cell
  of one seed, through ``run_gradient_check``): the monitor's verdict and reason, the loss at the first step,
  the loss at the end (mean of the last ``LOSS_SMOOTH`` step losses), the relative drop, and the
  steps until the step loss first fell below 90 % and 50 % of the first loss (None if never).
"""

from __future__ import annotations

import itertools
import math
import statistics
import time

import torch
from torch.nn import functional as F

from ...data.choices import IN_MEMORY_DATA_SETS
from ...diagnostics import build_groups, run_gradient_check
from ...errors import UserError
from ...models import cifar_model_name, create_model
from .design import DIVERGE_FACTOR, LOSS_SMOOTH, PREFIX, TRAINED_DROP


def _finite(x) -> float | None:
    """A float, or None for NaN/Inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _group_grad_norm(params: list[torch.nn.Parameter]) -> float:
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().double().square().sum())
    return math.sqrt(total) if math.isfinite(total) else math.nan


def _first_last_blocks(model):
    """The first and last residual-block groups (not the stem, not the head)."""
    groups = [g for g in build_groups(model) if g.name not in ("stem", "head", "(root)")]
    if len(groups) < 2:
        raise UserError("the survey needs a model with at least two blocks")
    return groups[0], groups[-1]


def measure_init_gradients(model, batches) -> dict:
    """Gradient norms of the first and last blocks at initialisation, one value per batch.

    Forward + backward in training mode per batch, gradients zeroed in between, no optimizer step;
    the buffers (BatchNorm running statistics) are restored afterwards, so the model is exactly as
    built. Returns ``{first_block, last_block, grad_first_batches, grad_last_batches, grad_first,
    grad_last, ratio}``, ``grad_*`` being the mean over the batches and ``ratio`` first/last.
    """
    first, last = _first_last_blocks(model)
    named = dict(model.named_parameters())
    first_params = [named[n] for n in first.param_names]
    last_params = [named[n] for n in last.param_names]
    saved = [b.detach().clone() for b in model.buffers()]
    model.train()
    g_first, g_last = [], []
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        g_first.append(_group_grad_norm(first_params))
        g_last.append(_group_grad_norm(last_params))
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for b, s in zip(model.buffers(), saved):
            b.copy_(s)
    mean_first = statistics.fmean(g_first)
    mean_last = statistics.fmean(g_last)
    ratio = mean_first / mean_last if mean_last > 0 and math.isfinite(mean_last) else math.nan
    return {"first_block": first.name, "last_block": last.name,
            "grad_first_batches": [_finite(v) for v in g_first], "grad_last_batches": [_finite(v) for v in g_last],
            "grad_first": _finite(mean_first), "grad_last": _finite(mean_last), "ratio": _finite(ratio)}


def loss_summary(losses: list[float | None], stopped: bool = False) -> dict:
    """What the per-step losses (None = non-finite) of a short run say.

    ``loss_start`` is the first step's loss; ``loss_end`` the mean of the last ``LOSS_SMOOTH`` step
    losses (None when any loss is non-finite or the run was ``stopped`` by non-finite gradients);
    ``loss_drop`` = 1 - end/start; ``steps_to_90``/``steps_to_half``: the first step whose loss is
    below 90 %/50 % of the first loss (None if never); ``outcome``: ``diverged`` (non-finite, or
    ``loss_end >= DIVERGE_FACTOR * loss_start``), ``trained`` (``loss_drop >= TRAINED_DROP``) or
    ``stalled``.
    """
    if not losses or losses[0] is None:
        return {"loss_start": None, "loss_end": None, "loss_drop": None, "steps_to_90": None,
                "steps_to_half": None, "outcome": "diverged"}
    start = losses[0]
    end = None if stopped or any(v is None for v in losses) else statistics.fmean(losses[-LOSS_SMOOTH:])

    def steps_below(fraction):
        return next((i for i, v in enumerate(losses) if v is not None and v < fraction * start), None)

    drop = None if end is None or start <= 0 else 1.0 - end / start
    if end is None or end >= DIVERGE_FACTOR * start:
        outcome = "diverged"
    elif drop >= TRAINED_DROP:
        outcome = "trained"
    else:
        outcome = "stalled"
    return {"loss_start": start, "loss_end": end, "loss_drop": drop, "steps_to_90": steps_below(0.9),
            "steps_to_half": steps_below(0.5), "outcome": outcome}


def run_cell(cell: dict, init_batches, train_batches, *, steps: int, seed: int, device, num_classes: int,
             in_channels: int) -> dict:
    """Build the cell's net from ``seed``, measure its gradients at init, run it; this seed's
    measurements (``seed`` and the rest; the cell's configuration is not repeated)."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = create_model(cifar_model_name(PREFIX[cell["shortcut"]], cell["depth"]), norm=cell["norm"],
                         activation=cell["activation"], init=cell["init"], num_classes=num_classes,
                         in_channels=in_channels).to(device)
    init = measure_init_gradients(model, init_batches)
    check = run_gradient_check(model, train_batches, steps=steps, lr=cell["lr"], clip_norm=cell["clip_norm"])
    losses = [_finite(r["loss"]) for r in check["records"]]
    return {"seed": seed, **init, "verdict": check["verdict"], "reason": check["reason"],
            "verdict_step": check["verdict_step"], "steps_run": check["steps_run"],
            "global_grad_norm": _finite(check["global_grad_norm"]), "losses": losses,
            **loss_summary(losses, stopped=check["steps_run"] < steps
                           or any(e["kind"] == "nonfinite" for e in check["events"])),
            "time_s": time.perf_counter() - t0}


def load_survey_data(data: str, data_dir: str | None):
    """The data set the cells are measured on (in memory: the fixed batches are drawn from it)."""
    from ...data import FolderDataset, load_data

    ds = load_data(data, data_dir)
    if isinstance(ds, FolderDataset):
        raise UserError(f"the survey needs in-memory data ({IN_MEMORY_DATA_SETS}), not an image folder")
    return ds


def check_batch_size(ds, batch_size: int) -> None:
    if batch_size > len(ds.x_train):
        raise UserError(f"--batch-size {batch_size} is larger than the {len(ds.x_train):,} training images")


def _batches(ds, batch_size: int, count: int, *, device, seed: int, image_size: int | None) -> list:
    """``count`` fixed training batches (shuffled, no augmentation), resized if asked."""
    from ...data import DeviceLoader, resize_images

    check_batch_size(ds, batch_size)
    loader = DeviceLoader(ds.x_train, ds.y_train, batch_size, mean=ds.mean, std=ds.std, device=device,
                          train=True, augment=False, hflip=False, seed=seed)
    out = []
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        for x, y in loader:
            if image_size is not None and image_size != x.shape[-1]:
                x = resize_images(x, image_size)
            out.append((x, y))
            if len(out) == count:
                return out
