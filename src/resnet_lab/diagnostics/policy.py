"""The NaN/Inf policy of ``GradientMonitor``: after each step's check, skip it, stop, roll back
to the last good state, or only warn; and find where a NaN/Inf first appeared.

A mixin: ``GradientMonitor`` (``monitor.py``) holds the state it reads (the policy, the skip
streak, the buffers at the step's start, the kept good state and the loss history of the rollback
policy) and measures the step (``_check``, ``_nonfinite_parts``); this module decides what to do
about it.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UserError
from .nonfinite import NonFiniteError, NonFiniteReport, locate_nonfinite
from .verdicts import Verdict

NORM_OVERFLOW = ("every value is finite, but the gradients or buffers are too large to measure (a norm over "
                 "3.4e38, float32's largest): exploding; lower the learning rate or clip the gradients")


class NonFinitePolicy:
    """``guarded_step`` / ``check_step`` and the rollback policy, for ``GradientMonitor``."""

    def guarded_step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor | None = None, *,
                     inputs: Any = None, targets: Any = None, loss_fn: Callable | None = None,
                     forward_fn: Callable | None = None) -> bool:
        """``optimizer.step()`` under the monitor's non-finite policy; True if it stepped.

        Pass ``loss`` to have it call ``step(loss)`` first (otherwise call ``step`` yourself).
        The decision is ``check_step``'s (see there); a step not taken also zeroes the
        gradients, so that they cannot leak into the next step.
        """
        if loss is not None:
            self.step(loss)
        if self.check_step(inputs=inputs, targets=targets, loss_fn=loss_fn, forward_fn=forward_fn,
                           optimizer=optimizer):
            optimizer.step()
            return True
        optimizer.zero_grad(set_to_none=True)
        return False

    def check_step(self, *, inputs: Any = None, targets: Any = None, loss_fn: Callable | None = None,
                   forward_fn: Callable | None = None, optimizer: torch.optim.Optimizer | None = None) -> bool:
        """May the optimizer step now? Applies the non-finite policy; call after ``step()``.

        For trainers that step the optimizer themselves (e.g. through an AMP ``GradScaler``):
        ``if monitor.check_step(inputs=x, targets=y, loss_fn=f, optimizer=opt): scaler.step(opt)``.

        ``warn``: True, no sync. ``skip``/``stop``/``rollback``: one sync to check the finiteness of
        the gradients and floating buffers (loss and weights too on recorded steps). On a
        non-finite step the buffers (BatchNorm running statistics) are restored to their value
        before this step's forward pass, so with the optimizer step dropped the model state is
        exactly the previous step's; if ``inputs`` (and ``targets``/``loss_fn``) are given, the
        batch is re-run to locate the first non-finite module (``self.last_report``), once per
        streak of failing steps. ``skip`` then warns and returns False (after ``max_skips`` in a
        row it stops instead); ``stop`` writes ``report_path`` (if set) and raises
        ``NonFiniteError``: the state is the previous step's, safe to checkpoint before exiting
        with ``error.exit_code``. ``rollback`` (needs ``optimizer``) also treats a loss spike as a
        failure, puts back the last good state, scales the learning rate and returns False.
        """
        self._refuse_if_closed("check_step()")
        if self.policy == "warn":
            return True
        if self._good is not None and optimizer is None:
            raise UserError("the rollback policy needs the optimizer: call check_step(..., optimizer=optimizer)")
        finite, loss = self._check()
        spike = finite and loss is not None and self._spikes.is_spike(loss)
        if finite and not spike:
            self._step_start.next_step()
            self.skip_streak = 0
            if self._good is not None:
                self._note_good_step(optimizer, loss)
            return True

        s = self._current_step
        reason = self._spike_reason(loss) if spike else self._nonfinite_parts()
        self._step_start.restore()  # undo the failing forward's effect on BatchNorm statistics
        self._step_start.next_step()
        self._judge_failure(s, reason, "exploding" if spike else "nonfinite")
        first_of_streak = not self.skip_streak
        # One re-run per streak, not per step; none when every value is finite (nothing to locate).
        if inputs is not None and first_of_streak and not spike and reason != NORM_OVERFLOW:
            self.locate(inputs, targets, loss_fn, forward_fn=forward_fn)
        where = f"; first non-finite: {self.last_report}" if self.last_report is not None and not spike else ""
        if self.policy == "rollback":
            return self._roll_back(optimizer, s, reason, where)
        if self.policy == "skip" and self.skip_streak < self.max_skips:
            self.skip_streak += 1
            self.skipped_steps.append(s)
            warnings.warn(f"GradientMonitor: skipped the optimizer step at step {s}: {reason}"
                          f"{where if first_of_streak else ''}", RuntimeWarning, stacklevel=3)
            return False
        if self.policy == "skip":
            reason = f"{reason}, the {self.max_skips + 1}th consecutive non-finite step (skip gives up)"
        raise self._give_up(s, reason, where)

    def _give_up(self, step: int, reason: str, where: str) -> NonFiniteError:
        if self.report_path is not None:
            self.write_report(self.report_path)
        saved = f" (report: {self.report_path})" if self.report_path is not None else ""
        what = ("" if reason.startswith("loss spike") else "overflow " if reason == NORM_OVERFLOW
                else "non-finite values ")
        return NonFiniteError(f"{what}at step {step}: "
                              f"{reason}{where}; the optimizer step was not applied{saved}", step=step,
                              report=self.last_report)

    # -- the rollback policy (see rollback.py) ------------------------------------------

    def _note_good_step(self, optimizer: torch.optim.Optimizer, loss: float | None) -> None:
        if loss is not None:
            self._spikes.add(loss)
        s = self._current_step
        if self._good.step is None or s % self.rollback.every == 0:
            self._good.keep(optimizer, s)

    def _spike_reason(self, loss: float) -> str:
        return (f"loss spike: {loss:.4g} is over {self.rollback.spike_factor:g}x the median of the last "
                f"{len(self._spikes.recent)} losses and above the untrained model's")

    def _roll_back(self, optimizer: torch.optim.Optimizer, step: int, reason: str, where: str) -> bool:
        if self._good.step is None:
            raise self._give_up(step, f"{reason} (rollback: no good state kept yet)", where)
        self._good.restore(optimizer)  # giving up too: the state to keep is the last good one
        if len(self.rollbacks) >= self.rollback.max_rollbacks:
            raise self._give_up(step, f"{reason}, after {len(self.rollbacks)} rollbacks (rollback gives up; the "
                                      f"state is step {self._good.step}'s again)", where)
        self.lr_scale *= self.rollback.factor
        for group in optimizer.param_groups:
            group["lr"] *= self.rollback.factor
        self.rollbacks.append({"step": step, "back_to": self._good.step, "reason": reason + where,
                               "lr_scale": self.lr_scale})
        warnings.warn(f"GradientMonitor: rolled back at step {step} to the state of step {self._good.step}: "
                      f"{reason}{where}; learning rate x{self.rollback.factor:g} (now x{self.lr_scale:g} of the "
                      f"schedule)", RuntimeWarning, stacklevel=3)
        return False

    def roll_back_with(self, module: nn.Module) -> None:
        """Keep ``module``'s state with the model's and put it back at each rollback: a weight average
        updated after the model's steps (``train --ema``) would otherwise go on averaging the steps rolled
        back. Call before the first step."""
        if self._good is None or self._good.step is not None:
            raise UserError("roll_back_with() needs nonfinite='rollback', before the first step")
        self._good.also.append(module)

    def rollback_state_dict(self) -> dict:
        """What a resumed run needs to roll back exactly as the first would have, the kept state included."""
        return {"lr_scale": self.lr_scale, "rollbacks": self.rollbacks, "spikes": self._spikes.state_dict(),
                "kept": self._good.state_dict()}

    def load_rollback_state_dict(self, state: dict) -> None:
        self.lr_scale, self.rollbacks = state["lr_scale"], list(state["rollbacks"])
        self._spikes.load_state_dict(state["spikes"])
        self._good.load_state_dict(state["kept"])

    def _judge_failure(self, step: int, reason: str, kind: str) -> None:
        """Make the failing step the latest verdict, recorded or not (the report shows it)."""
        self._drain(block=True)  # the sync is paid already: judge this step now
        if self._last_verdict is None or self._last_verdict.step != step or self._last_verdict.kind != kind:
            self._last_verdict = Verdict(kind, reason, step)
            self._events.append(self._last_verdict)

    def discard_step(self) -> None:
        """Forget the current step without judging it: a loss scaler skipped it (fp16 overflow)."""
        self._step_start.next_step()

    def locate(self, inputs: Any, targets: Any = None, loss_fn: Callable | None = None, *,
               forward_fn: Callable | None = None) -> NonFiniteReport:
        """Re-run the current step's batch with hooks to find the first non-finite module.

        Call it after a non-finite ``step()`` and *before* ``optimizer.step()`` (so that the
        weights are the ones that produced the NaN). See ``locate_nonfinite``.
        """
        self.last_report = locate_nonfinite(self.model, inputs, targets, loss_fn,
                                            forward_fn=forward_fn, step=self._current_step)
        return self.last_report


class StepStartBuffers:
    """The model's buffers as they were before the current step's first training forward, to put
    back when the step is not taken: a NaN batch poisons BatchNorm running statistics. One foreach
    copy of the buffers per step (tiny next to the weights), taken by a forward pre-hook."""

    def __init__(self, model: nn.Module, keep: bool):
        self.buffers = list(model.buffers()) if keep else []
        self.floating = [b for b in self.buffers if b.is_floating_point()]
        self._copy: list[torch.Tensor] | None = None
        self._saved = False  # this step's copy is taken
        self._hook = model.register_forward_pre_hook(self._save) if self.buffers else None

    @torch.no_grad()
    def _save(self, module: nn.Module, args) -> None:
        if not self.buffers or not module.training or self._saved:  # no buffers: nothing to put back
            return
        if self._copy is None:
            self._copy = [b.detach().clone() for b in self.buffers]
        else:
            torch._foreach_copy_(self._copy, [b.detach() for b in self.buffers])
        self._saved = True

    def save_now(self, model: nn.Module) -> None:
        """Take this step's copy now, if not taken yet (a loop that never calls the model itself)."""
        self._save(model, ())

    @torch.no_grad()
    def restore(self) -> None:
        if self._copy is not None and self._saved:
            torch._foreach_copy_([b.detach() for b in self.buffers], self._copy)

    def next_step(self) -> None:
        """The next training forward starts a new step: copy the buffers again then."""
        self._saved = False

    def remove(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
