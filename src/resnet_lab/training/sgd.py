"""``SGD``: the update and checkpoint layout of ``torch.optim.SGD``, without ``torch.optim``.

Why: every call into ``torch.optim.Optimizer`` (construction, ``step``, ``zero_grad``,
``state_dict``) imports ``torch._dynamo`` first, which takes about as long as importing torch
itself (over a second on a CPU): a short run pays it in full. The trainer needs only SGD's update
(weight decay, momentum, Nesterov), ``zero_grad`` and the same ``state_dict``, so checkpoints load
into ``torch.optim.SGD`` and back. No hooks, closures, sparse gradients, ``maximize`` or
dampening. The arithmetic is torch's, op for op: ``tests/test_training.py`` compares the two bit
for bit, with and without torch's foreach path.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class SGD:
    """Drop-in for ``torch.optim.SGD(groups, lr, momentum, nesterov=..., weight_decay=...)`` in the trainer."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        self.defaults = {"lr": lr, "momentum": momentum, "dampening": 0, "weight_decay": weight_decay,
                         "nesterov": nesterov, "maximize": False, "foreach": None, "differentiable": False,
                         "fused": None}
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups = [{**self.defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: defaultdict = defaultdict(dict)

    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("resnet_lab.training.sgd.SGD takes no closure")
        sgd_update_(self.param_groups, self.state)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def state_dict(self) -> dict:
        """torch.optim's layout: parameters numbered in group order, state by number."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the saved optimizer state has other parameter groups than this model's")
        params = [p for g in self.param_groups for p in g["params"]]
        self.state = defaultdict(dict)
        for i, values in state_dict["state"].items():
            p = params[int(i)]
            # A copy, cast like torch's: the optimizer must never share a tensor with the dict it loaded.
            self.state[p] = {k: v.to(p.device, p.dtype, copy=True) if torch.is_tensor(v) else v
                             for k, v in values.items()}
        for group, values in zip(self.param_groups, saved):
            group.update({k: v for k, v in values.items() if k != "params"})


@torch.no_grad()
def sgd_update_(param_groups: list[dict], state, lr: torch.Tensor | None = None) -> None:
    """SGD's update in place, torch's arithmetic: weight decay added to the gradient, momentum buffer
    ``m = mu*m + g`` (a new one starts at zero: ``0*mu + g`` is torch's first-step copy), Nesterov
    ``g + mu*m``, then ``p -= lr * step``.

    ``lr``: each group's own (a float) by default; or one tensor, read on the device with no host
    sync, so that a CUDA graph can hold the update (``graphed_step.py``). ``state``: the optimizer's
    (``torch.optim.SGD``'s or ``SGD``'s), so checkpoints are interchangeable. Gradients are left as
    they were, for the gradient monitor.
    """
    for group in param_groups:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            continue
        grads = [p.grad for p in params]
        wd, mu = group["weight_decay"], group["momentum"]
        steps = torch._foreach_add(grads, params, alpha=wd) if wd else list(grads)
        if mu:
            for p in params:
                if state[p].get("momentum_buffer") is None:
                    state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            buffers = [state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(buffers, mu)
            torch._foreach_add_(buffers, steps)
            steps = torch._foreach_add(steps, buffers, alpha=mu) if group["nesterov"] else buffers
        if lr is None:
            torch._foreach_add_(params, steps, alpha=-group["lr"])
        else:
            torch._foreach_sub_(params, torch._foreach_mul(steps, lr))
