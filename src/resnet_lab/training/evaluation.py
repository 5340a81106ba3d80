"""Evaluation: loss and accuracy over a loader, and the evaluations that end an epoch."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .precision import autocast

_NOT_EVALUATED = {"loss": None, "acc": None}


def check_flip_tta(ds) -> None:
    """Flip test-time augmentation only where training flips images (not digits: mirrored, they
    are other shapes)."""
    if not getattr(ds, "hflip", True):
        raise UserError(f"--tta mirrors test images, but {ds.name} is never trained with flips; drop --tta")


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, precision: str = "fp32", ctx=None,
             flip: bool = False) -> dict:
    """Mean loss, accuracy and count over a loader (one host sync at the end).

    Under torchrun each rank sees a shard; ``ctx`` sums the results over ranks. ``flip``:
    test-time augmentation, the mean of the logits for each image and its mirror image.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x)
            if flip:
                logits = (logits.float() + model(x.flip(-1)).float()) / 2
        sums[0] += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
    model.train(was_training)
    if ctx is not None:
        ctx.sum_(sums)
    loss_sum, correct, n = sums.tolist()
    if n == 0:
        return {"loss": float("nan"), "acc": float("nan"), "n": 0}
    return {"loss": loss_sum / n, "acc": correct / n, "n": int(n)}


def evaluate_epoch(parts, c, ctx, device: torch.device, evaluated: bool) -> dict:
    """The metrics row's evaluation fields: the model, its weight average (``ema``) and flip TTA."""
    def run(model, flip=False):
        return evaluate(model, parts.test_loader, device, parts.precision, ctx, flip=flip) if evaluated \
            else _NOT_EVALUATED

    test = run(parts.model)
    row = {"test_loss": test["loss"], "test_acc": test["acc"]}
    if parts.ema is not None:
        average = run(parts.ema.model)
        row.update(ema_test_loss=average["loss"], ema_test_acc=average["acc"])
    if c.tta:
        mirrored = run(parts.model, flip=True)
        row.update(tta_test_loss=mirrored["loss"], tta_test_acc=mirrored["acc"])
    return row
