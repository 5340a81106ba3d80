"""Optional forward statistics per block: activation mean, std and the fraction of dead units.

Forward hooks compute three numbers per block on the device, in the training forward pass
only (evaluation passes would overwrite the statistics of the batch being trained). They
stay on the device until the monitor stacks them into its one record tensor, so they add
a few small reductions per block and no synchronisation.

A *dead unit* is a channel (dim 1; a feature for 2-D outputs) whose output is <= 0 for
every sample and position of the batch. The block output of a ResNet is the output of its
last ReLU, so this is the fraction of channels whose ReLU is off for the whole batch. For
non-ReLU activations it is still well defined (and usually 0 for sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from .groups import LayerGroup


def _stats(t) -> torch.Tensor | None:
    """(mean, std, dead fraction) of one output, as a float64 (3,) tensor on its device."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
        return None
    x = t.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    n = x.numel()
    # mean and the norm are two vectorised passes; torch.std_mean (Welford) is ~30x slower
    # on CPU. The E[x^2] - mean^2 cancellation is harmless at diagnostic precision.
    mean = x.mean().double()
    mean_sq = torch.linalg.vector_norm(x).double().square() / n
    std = ((mean_sq - mean.square()).clamp_min(0) * (n / max(n - 1, 1))).sqrt()
    if x.dim() >= 2:
        per_unit = x.amax(dim=tuple(d for d in range(x.dim()) if d != 1))
    else:
        per_unit = x
    dead = (per_unit <= 0).double().mean()
    return torch.stack([mean, std, dead])


class ActivationTracker:
    """Forward hooks on the modules that represent each group; ``latest()`` gives the stats.

    Groups whose ``module_name`` is set use that module's output; the stem (a group of
    several modules) uses the *input* of the first block, which is the stem's output.
    """

    def __init__(self, model: nn.Module, groups: list[LayerGroup]):
        modules = dict(model.named_modules())
        self.groups: list[LayerGroup] = []
        self._handles = []
        self._latest: dict[int, torch.Tensor] = {}
        for group in groups:
            if group.module_name is not None and group.module_name in modules:
                module, pre = modules[group.module_name], False
            elif group.input_of is not None and group.input_of in modules:
                module, pre = modules[group.input_of], True
            else:
                continue
            slot = len(self.groups)
            self.groups.append(group)
            if pre:
                hook = module.register_forward_pre_hook(self._make_hook(slot, module, pre=True))
            else:
                hook = module.register_forward_hook(self._make_hook(slot, module, pre=False))
            self._handles.append(hook)

    def _make_hook(self, slot: int, module: nn.Module, pre: bool):
        def hook(mod, args, output=None):
            if not mod.training:
                return None
            value = args[0] if pre and args else output
            if isinstance(value, (tuple, list)) and value:
                value = value[0]
            with torch.no_grad():
                stats = _stats(value)
            if stats is not None:
                self._latest[slot] = stats
            return None

        if pre:
            return lambda mod, args: hook(mod, args)
        return lambda mod, args, output: hook(mod, args, output)

    def latest(self) -> tuple[list[int], list[torch.Tensor]]:
        """(slots with statistics from the last training forward, their (3,) device tensors)."""
        slots = sorted(self._latest)
        return slots, [self._latest[s] for s in slots]

    def clear(self) -> None:
        self._latest.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._latest.clear()
