"""One training step without a CUDA graph: forward, backward, diagnostics, clip, optimiser step.

``EagerStep(x, y, step)`` returns ``(loss, logits)`` like the graphed ``TrainStep``. Around the
optimiser step it applies the gradient monitor's non-finite policy (skip/stop check the
gradients and BatchNorm buffers every step, in one sync) and, under fp16, leaves the loss
scaler's routine overflow steps to the scaler: ``GradScaler`` raises its scale until a step
overflows, skips that step and halves the scale, by design. Such a step is recorded as a
``scaler_overflow`` event, not judged as a failure; gradients that overflow at a loss scale of 1
or less overflow without any scaling, and go to the policy like any non-finite step.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import torch
from torch import nn

from .precision import autocast


class EagerStep:
    def __init__(self, model: nn.Module, step_model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, loss_fn: Callable, precision: str, device: torch.device,
                 clip_norm: float | None, clip_value: float | None, monitor, ema, events: list[dict],
                 log: Callable[[str], None]):
        self.model, self.step_model, self.optimizer, self.scaler = model, step_model, optimizer, scaler
        self.loss_fn, self.precision, self.device = loss_fn, precision, device
        self.clip_norm, self.clip_value = clip_norm, clip_value
        self.monitor, self.ema, self.events, self.log = monitor, ema, events, log

    def __call__(self, x: torch.Tensor, y: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The step's loss and logits, or None when the policy dropped its batch (skip, rollback): the
        batch counts in no average, as a non-finite (or spiking) loss would make the epoch's one."""
        with autocast(self.device, self.precision):
            logits = self.step_model(x)
            loss = self.loss_fn(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.scaler.is_enabled() and self._routine_overflow(loss):
            self.events.append({"step": step, "kind": "scaler_overflow",
                                "detail": f"fp16 gradients overflowed at loss scale {self.scaler.get_scale():g}; "
                                          "the scaler skipped the step and lowered its scale"})
            if self.monitor is not None:
                self.monitor.discard_step()
            self.scaler.step(self.optimizer)  # finds the Inf and does not step
            self.scaler.update()
            return loss, logits
        if self.monitor is not None:  # before clipping: record the raw gradient
            with warnings_to(self.log):
                self.monitor.step(loss, step=step)
        if self.clip_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_norm)
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(self.model.parameters(), self.clip_value)
        taken = self._may_step(x, y, step)
        if taken:
            self.scaler.step(self.optimizer)
            if self.ema is not None:
                self.ema.update_()
        self.scaler.update()
        return (loss, logits) if taken else None

    def _may_step(self, x, y, step: int) -> bool:
        """The monitor's policy (warn: no sync; skip/stop: one check). A skip is logged on one line."""
        if self.monitor is None:
            return True
        rollbacks = len(self.monitor.rollbacks)
        with warnings_to(self.log):
            take = self.monitor.check_step(inputs=x, targets=y, loss_fn=self.loss_fn, optimizer=self.optimizer)
        if take:
            return True
        if len(self.monitor.rollbacks) > rollbacks:
            r = self.monitor.rollbacks[-1]
            self.events.append({"step": step, "kind": "rollback",
                                "detail": f"{r['reason']}; back to step {r['back_to']}'s state, learning rate "
                                          f"x{r['lr_scale']:g} of the schedule"})
        else:
            self.events.append({"step": step, "kind": "skipped", "detail": "non-finite values; step not applied"})
        return False

    def _routine_overflow(self, loss: torch.Tensor) -> bool:
        return routine_overflow(self.model.parameters(), loss, self.scaler)


@torch.no_grad()
def routine_overflow(params, loss: torch.Tensor | None, scaler: torch.amp.GradScaler) -> bool:
    """Did the gradients overflow while the loss is finite and the scale above 1? One sync.

    Such a step is the loss scaler's own business (it skips the step and lowers its scale), not
    a failure. ``loss=None`` (a trainer that does not hand over the loss) judges the gradients alone.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return False
    overflowed = ~torch.isfinite(torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float32))).all()
    if loss is not None:
        overflowed = overflowed & torch.isfinite(loss.detach())
    return bool(overflowed) and scaler.get_scale() > 1


@contextlib.contextmanager
def warnings_to(log: Callable[[str], None]):
    """Warnings raised inside, as one log line each (Python's own format adds a source line)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    for w in caught:
        log(f"warning: {str(w.message).removeprefix('GradientMonitor: ')}")
