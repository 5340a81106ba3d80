"""Quantify the folklore of training deep nets by flipping one switch at a time.

``run_survey(depths=(8, 20, 56))`` builds CIFAR-style nets on one data set and, for each *cell*
(one configuration), measures

* at initialisation, averaged over ``batches_at_init`` batches (forward + backward, no optimizer
  step, gradients zeroed in between, BatchNorm statistics restored afterwards): the gradient norm
  of the FIRST residual block (``layer1.0``) and of the LAST one (``layer3.<last>``) and their
  ratio first/last (the same block-level grouping as the gradient monitor);
* in a short run (``steps`` SGD steps, momentum 0.9, on the same fixed batches for every cell,
  through ``run_gradient_check``): the monitor's verdict and reason, the loss at the first step,
  the loss at the end (mean of the last ``LOSS_SMOOTH`` step losses), the relative drop, and the
  steps until the step loss first fell below 90 % and 50 % of the first loss (None if never).

Design (documented in ``DESIGN``): not the full product of switches, but two baselines, ReLU + He
init with BatchNorm and the same without normalisation, and one switch flipped from them, for
every depth and for the plain net and its residual twin (same layers, same parameters):

    batch/relu/he   none/relu/he          the BatchNorm switch
    batch/sigmoid   none/sigmoid          the activation switch (sigmoid needs both: the claim is
    batch/tanh                            about sigmoid WITHOUT normalisation)
    batch/xavier                          the init switch (with BatchNorm the scale of the weights
    batch/normal    none/normal           is normalised away, so small-normal vs He is also
                                          measured without it, where the claim lives)

plus a pair at a learning rate far too high (``high_lr``, default 10x ``lr``, on a residual net
without normalisation of depth ``high_lr_depth``, whose activations grow with depth), without and
with gradient clipping by norm (``clip_norm``).
``full=True`` runs the whole product depth x shortcut x norm (batch, none) x activation (relu,
sigmoid, tanh) x init (he, xavier, normal 0.01) instead (36 cells per depth).

Each claim (``CLAIMS``) is then judged from the measured cells by a fixed rule (``judge_claims``),
and written with the numbers that support or contradict it. A contradiction is a valid outcome:
the rule is never bent to make a claim come out true.

Everything returned is plain JSON-ready data; printing is ``survey_report.survey_table``, files
are ``survey_report.write_survey_outputs``, figures ``survey_plot.plot_survey``.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from typing import Callable

import torch
from torch.nn import functional as F

from ..diagnostics import build_groups, run_gradient_check
from ..diagnostics.verdicts import Thresholds
from ..errors import UserError
from ..models import create_model
from ..runtime import hardware_info, pick_device

# ---------------------------------------------------------------------------------- design

SHORTCUTS = ("plain", "residual")
_PREFIX = {"plain": "plain", "residual": "resnet"}

# (norm, activation, init) of the default design, in heat-map row order.
VARIANTS = (
    ("batch", "relu", "he"),
    ("none", "relu", "he"),
    ("batch", "sigmoid", "he"),
    ("none", "sigmoid", "he"),
    ("batch", "tanh", "he"),
    ("batch", "relu", "xavier"),
    ("batch", "relu", "normal"),
    ("none", "relu", "normal"),
)
FULL_NORMS = ("batch", "none")
FULL_ACTIVATIONS = ("relu", "sigmoid", "tanh")
FULL_INITS = ("he", "xavier", "normal")

_COMMON = (
    "Every cell starts from the same seed and sees the same batches. 'First' and 'last' are the first and "
    "last residual blocks (layer1.0 and the last block of layer3); their gradient norms are measured at "
    "initialisation and averaged over a few batches."
)
DESIGN = (
    "One switch flipped at a time from two baselines (ReLU, He init, with BatchNorm and without "
    "normalisation), at every depth, for the plain net and its residual twin (same layers and "
    "parameters): norm batch->none; activation relu->sigmoid (with and without BatchNorm) and "
    "relu->tanh; init he->xavier and he->normal(0.01) (the latter also without BatchNorm, which "
    "would otherwise normalise the weight scale away). Plus one residual net without normalisation "
    "at a learning rate far too high, without and with gradient clipping by norm. " + _COMMON
)
FULL_DESIGN = (
    "The full product of the switches: depth x plain/residual x norm (batch, none) x activation (relu, "
    "sigmoid, tanh) x init (he, xavier, normal 0.01), plus one residual net without normalisation at a "
    "learning rate far too high, without and with gradient clipping by norm. " + _COMMON
)

# Rules that turn measurements into outcomes and claims (the tests re-derive claims from these).
LOSS_SMOOTH = 3           # loss_end = mean of the last LOSS_SMOOTH step losses
TRAINED_DROP = 0.10       # "trains": the loss fell by at least 10 % in the short run
DIVERGE_FACTOR = 2.0      # "diverged": a non-finite loss, or loss_end >= 2x loss_start
ORDER = 10.0              # "within an order of magnitude": 1/10 <= first/last <= 10
VANISH_RATIO = Thresholds().vanish_ratio  # the monitor's threshold: first/last < 1e-3 vanishes
OUTCOMES = ("trained", "stalled", "diverged")

# Small enough for the demo: about 30-45 s on two busy CPU cores (see run_survey).
DEMO_SETTINGS = {"depths": (8, 20, 56), "steps": 16, "batch_size": 32, "image_size": 16,
                 "batches_at_init": 2, "threads": 1}

CLAIMS = {
    "bn_plain_trainable": "BatchNorm keeps plain nets trainable to tens of layers",
    "residual_gradient": "Residual connections keep the gradient at the first layer within an order "
                         "of magnitude of the last",
    "sigmoid_vanishes": "Sigmoid without normalisation vanishes",
    "he_beats_normal": "He init beats small-normal init in deep ReLU nets",
    "clip_prevents_blowup": "Clipping by norm prevents the blow-up at high learning rate",
    "residual_trains_faster": "Residual nets train at least as fast as their plain twins at depth",
}


def cell_name(shortcut: str, depth: int, norm: str, activation: str, init: str,
              lr: float | None = None, clip_norm: float | None = None) -> str:
    """``plain56-batch-relu-he``; high-lr cells add ``@lr=2`` and ``+clip=1``."""
    name = f"{_PREFIX[shortcut]}{depth}-{norm}-{activation}-{init}"
    if lr is not None:
        name += f"@lr={lr:g}"
    if clip_norm is not None:
        name += f"+clip={clip_norm:g}"
    return name


def _plan(depths, full: bool, lr: float, high_lr: float, high_lr_depth: int, clip_norm: float) -> list[dict]:
    """The cells to run, in order: per depth, per shortcut, per variant; the high-lr pair last."""
    variants = (list(itertools.product(FULL_NORMS, FULL_ACTIVATIONS, FULL_INITS)) if full
                else list(VARIANTS))
    plan = []
    for depth in depths:
        for shortcut in SHORTCUTS:
            for norm, activation, init in variants:
                plan.append({"name": cell_name(shortcut, depth, norm, activation, init), "group": "switches",
                             "variant": f"{norm}/{activation}/{init}", "depth": depth, "shortcut": shortcut,
                             "norm": norm, "activation": activation, "init": init, "lr": lr, "clip_norm": None})
    for clip in (None, clip_norm):
        plan.append({"name": cell_name("residual", high_lr_depth, "none", "relu", "he", high_lr, clip),
                     "group": "high_lr", "variant": "none/relu/he", "depth": high_lr_depth, "shortcut": "residual",
                     "norm": "none", "activation": "relu", "init": "he", "lr": high_lr, "clip_norm": clip})
    return plan


# ---------------------------------------------------------------------------------- measuring

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


def _run_cell(cell: dict, init_batches, train_batches, *, steps: int, seed: int, device, num_classes: int,
              in_channels: int) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = create_model(f"{_PREFIX[cell['shortcut']]}{cell['depth']}", norm=cell["norm"],
                         activation=cell["activation"], init=cell["init"], num_classes=num_classes,
                         in_channels=in_channels).to(device)
    init = measure_init_gradients(model, init_batches)
    check = run_gradient_check(model, train_batches, steps=steps, lr=cell["lr"], clip_norm=cell["clip_norm"])
    losses = [_finite(r["loss"]) for r in check["records"]]
    return {**cell, **init, "verdict": check["verdict"], "reason": check["reason"],
            "verdict_step": check["verdict_step"], "steps_run": check["steps_run"],
            "global_grad_norm": _finite(check["global_grad_norm"]), "losses": losses,
            **loss_summary(losses, stopped=check["steps_run"] < steps
                           or any(e["kind"] == "nonfinite" for e in check["events"])),
            "time_s": time.perf_counter() - t0}


def _batches(ds, batch_size: int, count: int, *, device, seed: int, image_size: int | None) -> list:
    """``count`` fixed training batches (shuffled, no augmentation), resized if asked."""
    from ..data import DeviceLoader

    if batch_size > len(ds.x_train):
        raise UserError(f"--batch-size {batch_size} is larger than the {len(ds.x_train):,} training images")
    loader = DeviceLoader(ds.x_train, ds.y_train, batch_size, mean=ds.mean, std=ds.std, device=device,
                          train=True, augment=False, hflip=False, seed=seed)
    out = []
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        for x, y in loader:
            if image_size is not None and image_size != x.shape[-1]:
                x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True,
                                  align_corners=False)
            out.append((x, y))
            if len(out) == count:
                return out


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


def _survey(depths, data, data_dir, steps, batches_at_init, batch_size, image_size, lr, high_lr, high_lr_depth,
            clip_norm, seed, full, dev, say) -> dict:
    t_start = time.perf_counter()

    from ..data import FolderDataset, load_data

    ds = load_data(data, data_dir)
    if isinstance(ds, FolderDataset):
        raise UserError("the survey needs in-memory data (digits, cifar10, cifar100, npz:PATH), not an image folder")
    size = image_size or ds.image_size
    batches = _batches(ds, batch_size, max(steps, batches_at_init), device=dev, seed=seed, image_size=image_size)
    init_batches, train_batches = batches[:batches_at_init], batches[:steps]

    plan = _plan(depths, full, lr, high_lr, high_lr_depth, clip_norm)
    say(f"{len(plan)} cells on {ds.description()} at {size}x{size}, batch {batch_size}, {steps} steps, device {dev}")
    cells = []
    for i, cell in enumerate(plan, 1):
        result = _run_cell(cell, init_batches, train_batches, steps=steps, seed=seed, device=dev,
                           num_classes=ds.num_classes, in_channels=ds.in_channels)
        cells.append(result)
        say(f"[{i}/{len(plan)}] {result['name']}: first/last {_fmt_ratio(result['ratio'])}, "
            f"loss {_fmt(result['loss_start'])} -> {_fmt(result['loss_end'])} ({result['outcome']}), "
            f"{result['verdict']} ({result['time_s']:.1f} s)")

    settings = {"depths": list(depths), "data": data, "steps": steps, "batches_at_init": batches_at_init,
                "batch_size": batch_size, "image_size": size, "lr": lr, "momentum": 0.9, "optimizer": "sgd",
                "high_lr": high_lr, "high_lr_depth": high_lr_depth, "clip_norm": clip_norm, "seed": seed,
                "full": full, "device": str(dev), "threads": torch.get_num_threads(),
                "rules": {"loss_smooth": LOSS_SMOOTH, "trained_drop": TRAINED_DROP,
                          "diverge_factor": DIVERGE_FACTOR, "order": ORDER, "vanish_ratio": VANISH_RATIO}}
    return {"settings": settings, "design": FULL_DESIGN if full else DESIGN,
            "data": ds.description(), "cells": cells, "claims": judge_claims(cells),
            "run_time_s": time.perf_counter() - t_start, "hardware": hardware_info(dev)}


def _fmt(x) -> str:
    return "nan" if x is None else f"{x:.3g}"


def _fmt_ratio(x) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def _short(c: dict) -> str:
    """``loss drop 12% (healthy)`` or ``diverged (exploding)``."""
    if c["outcome"] == "diverged":
        return f"diverged ({c['verdict']})"
    pct = f"{100 * c['loss_drop']:.0f}%".replace("-0%", "0%")
    return f"loss drop {pct} ({c['verdict']})"


# ---------------------------------------------------------------------------------- claims

def _lookup(cells: list[dict]):
    index = {}
    for c in cells:
        key = (c["group"], c["shortcut"], c["depth"], c["norm"], c["activation"], c["init"], c["clip_norm"])
        index[key] = c

    def find(shortcut, depth, norm, activation, init, group="switches", clip_norm=None):
        return index.get((group, shortcut, depth, norm, activation, init, clip_norm))

    return find


_OUTCOME_RANK = {"diverged": 0, "stalled": 1, "trained": 2}


def training_rank(c: dict, by_verdict: bool = False) -> tuple:
    """How well a cell trained, for "X beats Y": outcome (trained > stalled > diverged), then (with
    ``by_verdict``) a healthy monitor verdict over any other, then the loss drop."""
    drop = -math.inf if c["loss_drop"] is None else c["loss_drop"]
    healthy = (1 if c["verdict"] == "healthy" else 0,) if by_verdict else ()
    return (_OUTCOME_RANK[c["outcome"]], *healthy, drop)


def _describe(c: dict) -> str:
    """``plain20-batch-relu-he: loss fell 64% in 30 steps``."""
    steps = c["steps_run"]
    if c["outcome"] == "diverged":
        what = ("loss became non-finite" if c["loss_end"] is None else
                f"loss rose from {c['loss_start']:.3g} to {c['loss_end']:.3g}")
        return f"{c['name']}: {what} (diverged, {c['verdict']})"
    pct = round(abs(100 * c["loss_drop"]))
    if pct == 0:
        return f"{c['name']}: loss did not move in {steps} steps ({c['outcome']})"
    verb = "fell" if c["loss_drop"] >= 0 else "rose"
    return f"{c['name']}: loss {verb} {pct}% in {steps} steps ({c['outcome']})"


def _unmeasured(key: str, why: str) -> dict:
    return {"id": key, "claim": CLAIMS[key], "supported": None, "evidence": f"not measured: {why}", "cells": []}


def judge_claims(cells: list[dict]) -> list[dict]:
    """Each claim in ``CLAIMS`` judged from the cells by a fixed rule (see the comments below);
    ``supported`` is None where the cells it needs were not measured."""
    find = _lookup(cells)
    depths = sorted({c["depth"] for c in cells if c["group"] == "switches"})
    claims = []
    deep = max(depths) if depths else None

    # 1. BatchNorm keeps plain nets trainable to tens of layers: every plain BN baseline of depth 20-99
    #    trains (loss falls >= TRAINED_DROP); the no-norm twins are reported alongside.
    key = "bn_plain_trainable"
    tens = [d for d in depths if 20 <= d < 100 and find("plain", d, "batch", "relu", "he")]
    if not tens:
        claims.append(_unmeasured(key, "needs a plain net of 20 to 99 layers (e.g. --depths 20 56)"))
    else:
        bn = [find("plain", d, "batch", "relu", "he") for d in tens]
        none = [c for c in (find("plain", d, "none", "relu", "he") for d in tens) if c]
        ok = all(c["outcome"] == "trained" for c in bn)
        evidence = "; ".join(_describe(c) for c in bn)
        if none:
            evidence += " -- without normalisation: " + "; ".join(_describe(c) for c in none)
        claims.append({"id": key, "claim": CLAIMS[key], "supported": ok,
                       "evidence": evidence, "cells": [c["name"] for c in bn + none]})

    # 2. Residual connections keep first/last within an order of magnitude: every residual BN
    #    baseline has 1/ORDER <= first/last <= ORDER; the plain twins are reported alongside.
    key = "residual_gradient"
    res = [c for c in (find("residual", d, "batch", "relu", "he") for d in depths) if c]
    if not res:
        claims.append(_unmeasured(key, "needs residual batch/relu/he cells"))
    else:
        plain = [c for c in (find("plain", d, "batch", "relu", "he") for d in depths) if c]
        ok = all(c["ratio"] is not None and 1 / ORDER <= c["ratio"] <= ORDER for c in res)
        evidence = "first/last block gradient at init: " + ", ".join(
            f"{c['name']} {_fmt_ratio(c['ratio'])}" for c in res)
        if plain:
            evidence += "; plain twins: " + ", ".join(f"{c['name']} {_fmt_ratio(c['ratio'])}" for c in plain)
        claims.append({"id": key, "claim": CLAIMS[key], "supported": ok, "evidence": evidence,
                       "cells": [c["name"] for c in res + plain]})

    # 3. Sigmoid without normalisation vanishes: in the deepest plain net, first/last < VANISH_RATIO
    #    (the monitor's threshold) at init; BN and residual sigmoid twins are reported alongside.
    key = "sigmoid_vanishes"
    c = find("plain", deep, "none", "sigmoid", "he") if deep else None
    if c is None:
        claims.append(_unmeasured(key, "needs a plain none/sigmoid/he cell"))
    else:
        ok = c["ratio"] is not None and c["ratio"] < VANISH_RATIO
        others = [o for o in (find("plain", deep, "batch", "sigmoid", "he"),
                              find("residual", deep, "none", "sigmoid", "he")) if o]
        evidence = (f"{c['name']}: first/last {_fmt_ratio(c['ratio'])} at init (the monitor's vanishing "
                    f"threshold is {VANISH_RATIO:g}), monitor verdict {c['verdict']}, {_describe(c).split(': ', 1)[1]}")
        if others:
            evidence += "; " + "; ".join(f"{o['name']}: first/last {_fmt_ratio(o['ratio'])}, {o['verdict']}"
                                         for o in others)
        claims.append({"id": key, "claim": CLAIMS[key], "supported": ok, "evidence": evidence,
                       "cells": [c["name"]] + [o["name"] for o in others]})

    # 4. He beats small-normal init in deep ReLU nets: in the deepest plain net WITHOUT normalisation
    #    (with BatchNorm the weight scale is normalised away), He ranks above normal(0.01) by
    #    training_rank(by_verdict=True): outcome, then healthy gradients, then loss drop. The
    #    residual pair and the BN pair are reported alongside.
    key = "he_beats_normal"
    he, normal = (find("plain", deep, "none", "relu", init) if deep else None for init in ("he", "normal"))
    if he is None or normal is None:
        claims.append(_unmeasured(key, "needs plain none/relu/he and none/relu/normal cells"))
    else:
        ok = training_rank(he, by_verdict=True) > training_rank(normal, by_verdict=True)
        evidence = " vs ".join(f"{_describe(c)}, first-block gradient {_fmt(c['grad_first'])} at init, "
                               f"monitor {c['verdict']}" for c in (he, normal))
        names = [he["name"], normal["name"]]
        for shortcut, norm in (("residual", "none"), ("plain", "batch")):
            a, b = find(shortcut, deep, norm, "relu", "he"), find(shortcut, deep, norm, "relu", "normal")
            if a and b:
                evidence += f"; {shortcut} net, norm {norm}: he {_short(a)} vs normal {_short(b)}"
                names += [a["name"], b["name"]]
        claims.append({"id": key, "claim": CLAIMS[key], "supported": ok, "evidence": evidence, "cells": names})

    # 5. Clipping prevents the blow-up at high learning rate: the unclipped high-lr run diverges and
    #    the clipped one does not. If the unclipped run does not blow up, nothing is tested (None).
    key = "clip_prevents_blowup"
    high = [c for c in cells if c["group"] == "high_lr"]
    raw = next((c for c in high if c["clip_norm"] is None), None)
    clipped = next((c for c in high if c["clip_norm"] is not None), None)
    if raw is None or clipped is None:
        claims.append(_unmeasured(key, "needs the high learning-rate pair"))
    else:
        base = next((c["lr"] for c in cells if c["group"] == "switches"), None)
        times = f" ({raw['lr'] / base:g}x the survey's lr)" if base else ""
        evidence = (f"at lr {raw['lr']:g}{times}, without clipping {_describe(raw)}; with "
                    f"clip_norm={clipped['clip_norm']:g} {_describe(clipped)}")
        if raw["outcome"] != "diverged":
            supported = None
            evidence = "no blow-up to prevent: " + evidence + "; raise --high-lr"
        else:
            supported = clipped["outcome"] != "diverged"
        claims.append({"id": key, "claim": CLAIMS[key], "supported": supported, "evidence": evidence,
                       "cells": [raw["name"], clipped["name"]]})

    # 6. Residual nets train at least as fast as their plain twins (the degradation problem): at the
    #    deepest depth, the residual BN baseline's training_rank (outcome, then loss drop) >= the plain one's.
    key = "residual_trains_faster"
    r, p = (find(s, deep, "batch", "relu", "he") if deep else None for s in ("residual", "plain"))
    if r is None or p is None:
        claims.append(_unmeasured(key, "needs plain and residual batch/relu/he cells"))
    else:
        ok = training_rank(r) >= training_rank(p)
        claims.append({"id": key, "claim": CLAIMS[key], "supported": ok,
                       "evidence": f"{_describe(r)} vs {_describe(p)}", "cells": [r["name"], p["name"]]})
    return claims


__all__ = ["CLAIMS", "DEMO_SETTINGS", "DESIGN", "OUTCOMES", "VARIANTS", "cell_name", "judge_claims",
           "loss_summary", "measure_init_gradients", "run_survey", "training_rank"]
