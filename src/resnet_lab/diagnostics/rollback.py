"""The rollback policy: go back to the last good state, lower the learning rate, go on.

What Keras' ``TerminateOnNaN`` and Lightning's ``detect_anomaly`` cannot do: recover. On a
non-finite loss or gradient, or a loss spike, ``GradientMonitor.check_step`` (with
``nonfinite="rollback"``) puts back the weights, BatchNorm statistics and optimiser state kept by
``LastGoodState``, multiplies the learning rate by ``Rollback.factor``, drops the offending batch
and goes on; after ``max_rollbacks`` it gives up as ``stop`` does.

A spike is a finite loss above ``spike_factor`` times the median of the last ``spike_window``
losses *and* above the median of the first ``spike_window`` (the untrained model's loss): late in
training a batch at 10x a loss of 0.01 is noise, a loss worse than the untrained model's is a
blow-up.
"""

from __future__ import annotations

import copy
import statistics
from collections import deque
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import UserError


@dataclass(frozen=True)
class Rollback:
    """Settings of the rollback policy.

    Args:
        factor: the learning rate is multiplied by this at each rollback (0 < factor < 1).
        max_rollbacks: rollbacks allowed; the next failure raises ``NonFiniteError``.
        every: keep the state at the first step and every N steps that pass the check. It is
            kept from inside ``check_step``: its weights have just given a finite, spike-free loss.
        spike_factor: a finite loss this many times the recent median counts as a blow-up too
            (None: only NaN/Inf do).
        spike_window: losses in the recent median (and in the untrained model's median).
    """

    factor: float = 0.5
    max_rollbacks: int = 3
    every: int = 10
    spike_factor: float | None = 10.0
    spike_window: int = 50

    def __post_init__(self):
        if not 0 < self.factor < 1:
            raise UserError(f"rollback factor must be between 0 and 1 (exclusive), got {self.factor}")
        for name, low in (("max_rollbacks", 0), ("every", 1), ("spike_window", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise UserError(f"rollback {name} must be an integer >= {low}, got {value!r}")
        if self.spike_factor is not None and not self.spike_factor > 1:
            raise UserError(f"rollback spike_factor must be > 1 (or None to judge NaN/Inf only), "
                            f"got {self.spike_factor}")


class LossSpikes:
    """The loss-spike test, with the history it needs (saved in checkpoints for exact resume)."""

    def __init__(self, factor: float | None, window: int):
        self.factor, self.window = factor, window
        self.recent: deque[float] = deque(maxlen=window)
        self.start: list[float] = []  # the first ``window`` losses

    def is_spike(self, loss: float) -> bool:
        if self.factor is None or len(self.recent) < min(self.window, 5):
            return False
        threshold = max(self.factor * statistics.median(self.recent), statistics.median(self.start))
        return loss > threshold

    def add(self, loss: float) -> None:
        self.recent.append(loss)
        if len(self.start) < self.window:
            self.start.append(loss)

    def state_dict(self) -> dict:
        return {"recent": list(self.recent), "start": list(self.start)}

    def load_state_dict(self, state: dict) -> None:
        self.recent = deque(state["recent"], maxlen=self.window)
        self.start = list(state["start"])


class LastGoodState:
    """An in-memory copy of a model's state (weights and buffers) and its optimiser's state.

    ``keep`` copies into the tensors of the previous copy when the layout is unchanged (no new
    memory after the first call); ``restore`` copies back, so the optimiser never shares a tensor
    with the copy. ``also``: modules whose state is kept and put back with the model's (a weight
    average updated from its steps; see ``GradientMonitor.roll_back_with``).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.also: list[nn.Module] = []
        self.step: int | None = None
        self._model: list[torch.Tensor] | None = None  # the model's tensors, then those of ``also``
        self._optimizer_leaves: list | None = None
        self._optimizer_spec = None

    def _live(self) -> list[torch.Tensor]:
        return [t.detach() for module in (self.model, *self.also) for t in module.state_dict().values()]

    @torch.no_grad()
    def keep(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        tensors = self._live()
        if self._model is None:
            self._model = [t.clone() for t in tensors]
        else:
            torch._foreach_copy_(self._model, tensors)
        leaves, spec = tree_flatten(optimizer.state_dict())
        if spec == self._optimizer_spec and all(
                isinstance(new, torch.Tensor) == isinstance(old, torch.Tensor) and
                (not isinstance(new, torch.Tensor) or new.shape == old.shape)
                for new, old in zip(leaves, self._optimizer_leaves)):
            pairs = [(old, new) for old, new in zip(self._optimizer_leaves, leaves) if isinstance(new, torch.Tensor)]
            if pairs:
                torch._foreach_copy_([old for old, _ in pairs], [new.detach() for _, new in pairs])
            self._optimizer_leaves = [old if isinstance(new, torch.Tensor) else new
                                      for old, new in zip(self._optimizer_leaves, leaves)]
        else:  # the first keep, or the optimiser created its state since (e.g. Adam's first step)
            self._optimizer_leaves = [t.detach().clone() if isinstance(t, torch.Tensor) else copy.deepcopy(t)
                                      for t in leaves]
            self._optimizer_spec = spec
        self.step = step

    @torch.no_grad()
    def restore(self, optimizer: torch.optim.Optimizer) -> None:
        if self._model is None:
            raise RuntimeError("no state kept yet")
        torch._foreach_copy_(self._live(), self._model)
        leaves = [t.clone() if isinstance(t, torch.Tensor) else copy.deepcopy(t) for t in self._optimizer_leaves]
        lrs = [group["lr"] for group in optimizer.param_groups]  # the caller sets the learning rate
        optimizer.load_state_dict(tree_unflatten(leaves, self._optimizer_spec))
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr

    def state_dict(self) -> dict | None:
        """The kept state as plain dicts of tensors (checkpoints load with ``weights_only``)."""
        if self._model is None:
            return None
        kept, parts = iter(self._model), []
        for module in (self.model, *self.also):
            parts.append({name: next(kept) for name in module.state_dict()})
        return {"step": self.step, "model": parts[0], "also": parts[1:],
                "optimizer": tree_unflatten(self._optimizer_leaves, self._optimizer_spec)}

    def load_state_dict(self, state: dict | None) -> None:
        if state is None:
            return
        saved = [state["model"], *state.get("also", [])]
        # A checkpoint of an earlier version kept the model alone: ``also`` is kept as it is now (as loaded).
        saved += [{k: v.detach() for k, v in m.state_dict().items()} for m in self.also[len(saved) - 1:]]
        self._model = [saved[i][name].to(t.device, copy=True)
                       for i, module in enumerate((self.model, *self.also))
                       for name, t in module.state_dict().items()]
        leaves, self._optimizer_spec = tree_flatten(state["optimizer"])
        self._optimizer_leaves = [t.clone() if isinstance(t, torch.Tensor) else t for t in leaves]
        self.step = state["step"]
