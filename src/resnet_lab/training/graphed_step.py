"""The whole training step (forward, loss, backward, clipping, SGD update) as one CUDA graph.

Why: a CIFAR ResNet step at batch 512 is several hundred small kernels. Launched one by one
from Python, the GPU spends much of the step waiting for the host. Captured once and replayed,
the step is one launch and the GPU runs the kernels back to back (measured on an H200: ResNet-20
8.2 -> 4.4 ms per step, ResNet-56 20.0 -> 12.0 ms; benchmarks/bench_fast_step.py).

What a graph needs, and how this module provides it:
- fixed addresses: each batch is copied into static input buffers before a replay;
- no host synchronisation inside: the SGD update (``sgd_update_``) takes the learning rate
  from a device tensor that is ``fill_``-ed before each replay, not from a Python float;
- a warm-up before capture (cuDNN chooses its algorithms, gradients and momentum buffers get
  allocated): it runs on a snapshot of the model and optimiser state that is restored
  afterwards, so the graphed run computes what an eager run would;
- the NaN/Inf policy decided on the host: ``stop`` is checked by the trainer on the epoch's loss
  sum, which it reads at each epoch's end anyway (``_Run.end_epoch``); ``skip`` and ``rollback``
  decide at every step, which the graph cannot.
Without CUDA (or with ``use_graph=False``) the same step runs eagerly; the tests use that to
check the update against ``torch.optim.SGD``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import first_line
from .ema import WeightEMA
from .precision import autocast
from .sgd import sgd_update_

#: Settings a CUDA-graph step cannot replay (each needs the host in the middle of the step), each
#: with how a user reads it: (blocks, why).
GRAPH_BLOCKERS = [
    (lambda c: c.optimizer != "sgd", lambda c: f"--optimizer {c.optimizer} (the graph's update is SGD's)"),
    (lambda c: c.precision == "fp16", lambda c: "--precision fp16 (its loss scaler checks for Inf on the host)"),
    (lambda c: c.on_nonfinite in ("skip", "rollback"),
     lambda c: f"--on-nonfinite {c.on_nonfinite} (decided on the host at every step; with the graph, stop is "
               "checked at each epoch's end)"),
    (lambda c: c.warmup_lr > 0, lambda c: "the paper's warm-up, --warmup-lr (a host-side error check)"),
]


def graph_blockers(config, distributed: bool) -> list[str]:
    """Why ``config`` cannot use a CUDA-graph step (empty: it can; on a CPU the same fused step runs
    without a graph)."""
    reasons = [why(config) for blocks, why in GRAPH_BLOCKERS if blocks(config)]
    return reasons + (["torchrun/DDP"] if distributed else [])


class TrainStep:
    """``step(x, y, lr) -> (loss, logits)``: one SGD step (and the weight average's update, with
    ``ema``), replayed from a CUDA graph when possible.

    ``loss`` and ``logits`` are the step's outputs (static buffers under a graph: read or
    copy them before the next step). The first call captures the graph; batches must keep
    the first batch's shape (training loaders drop the last partial batch).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.SGD, loss_fn: Callable,
                 precision: str = "fp32", clip_norm: float | None = None, clip_value: float | None = None,
                 use_graph: bool = True, warmup_steps: int = 3, log: Callable[[str], None] = print,
                 ema: WeightEMA | None = None):
        self.model, self.optimizer, self.loss_fn, self.ema = model, optimizer, loss_fn, ema
        self.precision, self.clip_norm, self.clip_value = precision, clip_norm, clip_value
        self.device = next(model.parameters()).device
        self.use_graph = use_graph and self.device.type == "cuda"
        self.warmup_steps, self.log = warmup_steps, log
        self.lr = torch.zeros((), device=self.device)
        self.graph = None
        self._static: tuple | None = None  # x, y, loss, logits
        self.capture_error: str | None = None  # why the step runs eagerly after all

    def _autocast(self):
        return autocast(self.device, self.precision, cache_enabled=not self.use_graph)

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
        loss.backward()
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.clip_norm is not None:
            nn.utils.clip_grad_norm_(params, self.clip_norm, foreach=True)
        if self.clip_value is not None:
            nn.utils.clip_grad_value_(params, self.clip_value, foreach=True)
        sgd_update_(self.optimizer.param_groups, self.optimizer.state, self.lr)
        if self.ema is not None:  # its decay tensor is set by the caller before each step
            self.ema.update_()
        return loss.detach(), logits.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        self.lr.fill_(lr)
        if not self.use_graph:
            return self._body(x, y)
        if self.graph is None:
            try:
                self._capture(x, y)
            except RuntimeError as err:  # an op that cannot be captured: stay correct, lose the speed
                self.use_graph, self.graph, self.capture_error = False, None, first_line(err)
                torch.cuda.synchronize(self.device)
                self.log(f"warning: CUDA graph capture failed ({self.capture_error}); running the step eagerly")
                return self._body(x, y)
        static_x, static_y, loss, logits = self._static
        if x.shape != static_x.shape:
            raise ValueError(f"a graphed step needs batches of shape {tuple(static_x.shape)}, got {tuple(x.shape)}")
        static_x.copy_(x)
        static_y.copy_(y)
        self.graph.replay()
        return loss, logits

    @torch.no_grad()  # a clone that autograd recorded would keep grad nodes of the wrong stream alive
    def snapshot(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(state tensors, copies of them): what a step changes, and its value now."""
        tensors = self._state_tensors()
        return tensors, [t.clone() for t in tensors]

    def _state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: weights, buffers (BatchNorm statistics), momentum, the average."""
        for group in self.optimizer.param_groups:  # zero momentum = torch's "no buffer yet"
            if group["momentum"]:
                for p in group["params"]:
                    if self.optimizer.state[p].get("momentum_buffer") is None:
                        self.optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p)
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        tensors += self.ema.tensors() if self.ema is not None else []
        return tensors + [s["momentum_buffer"] for s in self.optimizer.state.values() if "momentum_buffer" in s]

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        static_x, static_y = x.clone(), y.clone()
        tensors, saved = self.snapshot()
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            # Warm up on a side stream (never the default one, which capture forbids touching), and
            # capture on that same stream, so that per-stream state such as cuBLAS's workspace exists.
            with torch.cuda.stream(side):
                for _ in range(self.warmup_steps):
                    self._body(static_x, static_y)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated inside the graph
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=side):
                loss, logits = self._body(static_x, static_y)
        finally:  # as if the warm-up never ran (capturing itself computes nothing)
            with torch.no_grad():
                for t, s in zip(tensors, saved):
                    t.copy_(s)
        self.graph, self._static = graph, (static_x, static_y, loss, logits)
