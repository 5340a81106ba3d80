"""An exponential moving average (EMA) of the weights, trained beside the model and evaluated too.

Why: late in training, SGD's iterates scatter around a minimum; their running average sits
nearer its centre and often tests better, at the cost of one copy of the weights.

``decay`` is per step. Early steps use a smaller one, ``(1 + t) / (10 + t)`` at step t (as timm
does), so the average soon forgets the random initialisation. The update reads the decay from a
device tensor and uses in-place foreach ops, with no host sync, so it can run inside the
CUDA-graph step (graphed_step.py).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightEMA:
    """``ema.model``: the average of ``model``'s weights (floating buffers such as BatchNorm's
    running statistics are averaged too, counters copied). Call ``set_step(t)`` then
    ``update_()`` after each optimiser step t."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        live, average = model.state_dict(keep_vars=True), self.model.state_dict(keep_vars=True)
        floats = [k for k, v in live.items() if v.is_floating_point()]
        self._live = [live[k].detach() for k in floats]
        self._average = [average[k] for k in floats]
        self._copied = [(live[k].detach(), average[k]) for k in live if k not in set(floats)]
        self._decay_now = torch.zeros((), device=self._average[0].device if self._average else "cpu")

    def set_step(self, step: int) -> None:
        """The decay for the update after optimiser step ``step`` (0-based); no sync."""
        self._decay_now.fill_(min(self.decay, (1 + step) / (10 + step)))

    @torch.no_grad()
    def update_(self) -> None:
        """average = decay * average + (1 - decay) * live, in place."""
        if self._average:
            torch._foreach_sub_(self._average, self._live)  # a - w
            torch._foreach_mul_(self._average, self._decay_now)  # d (a - w)
            torch._foreach_add_(self._average, self._live)  # w + d (a - w) = d a + (1 - d) w
        for live, average in self._copied:
            average.copy_(live)

    def tensors(self) -> list[torch.Tensor]:
        """Everything ``update_`` changes (for the graphed step's warm-up snapshot)."""
        return self._average + [average for _, average in self._copied]
