"""Timing and memory helpers for measuring models: used by ``resnet-lab compare`` and the benchmarks.

* ``prepare_timing``: cuDNN autotuning on a GPU, at most 2 CPU threads elsewhere;
* ``time_call``: seconds per call of a function, between two device synchronisations;
* ``calls_for``: how many back-to-back calls make one timing long enough to trust;
* ``SavedTensorCounter`` / ``saved_tensor_bytes``: the bytes autograd saves for backward (the
  activation memory of a training step, on any device, CPU included);
* ``tensor_bytes``: the bytes of some tensors.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch


def prepare_timing(device: torch.device) -> None:
    """What the step benchmarks time under: on a GPU cuDNN picks its fastest kernels for the fixed
    shapes (as training does); on a CPU at most 2 threads, the cores of the machines we compare."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.set_num_threads(min(torch.get_num_threads(), 2))


def sync(device: torch.device) -> None:
    """Wait for the asynchronous work queued on ``device`` (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``iters`` back-to-back calls between two synchronisations
    (asynchronous CUDA work is finished before the clock is read)."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def calls_for(seconds_per_call: float, min_time_s: float, cap: int = 200) -> int:
    """How many back-to-back calls make one timing last at least ``min_time_s`` (fast calls, such
    as batch-1 inference on a GPU, are too short to time one by one)."""
    if min_time_s <= 0 or seconds_per_call <= 0:
        return 1
    return max(1, min(cap, math.ceil(min_time_s / seconds_per_call)))


class SavedTensorCounter:
    """Context manager counting the bytes of the tensors autograd saves for backward inside it.

    A storage saved twice is counted once (in-place ops and views share it); storages whose
    ``data_ptr`` is in ``skip`` (e.g. the parameters, counted separately) are not counted.
    Wrap only the forward pass: that is where tensors are saved.
    """

    def __init__(self, skip: set[int] | None = None):
        self.bytes, self._seen = 0, set(skip or ())
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.bytes += storage.nbytes()
        return t

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def parameter_storages(model: torch.nn.Module) -> set[int]:
    """The ``data_ptr`` of every parameter's storage (to skip them in a ``SavedTensorCounter``)."""
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def saved_tensor_bytes(model, x, *, skip_parameters: bool = False) -> int:
    """Bytes autograd saves for backward in ``model(x).sum()`` (then runs backward to free them).

    This is the activation memory of a training step on any device, CPU included; with
    ``skip_parameters`` the parameters (also saved, by every convolution) are left out.
    """
    skip = parameter_storages(model) if skip_parameters else None
    with SavedTensorCounter(skip) as counter:
        loss = model(x).sum()
    loss.backward()
    return counter.bytes


def tensor_bytes(tensors) -> int:
    """Bytes of the tensors among ``tensors`` (anything else is ignored)."""
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


__all__ = ["SavedTensorCounter", "calls_for", "parameter_storages", "prepare_timing", "saved_tensor_bytes", "sync",
           "tensor_bytes", "time_call"]
