"""One model on the device with its optimizer and fixed random inputs, and the three timed calls."""

from __future__ import annotations

import contextlib

import torch
from torch.nn import functional as F

from ...measure import SavedTensorCounter, parameter_storages, sync, tensor_bytes
from ...models import create_model
from ...training.precision import autocast

KINDS = ("train", "infer", "latency")


class ModelRunner:
    """A model built on ``device`` with SGD and fixed random inputs; ``call(kind)`` runs one timed
    call (``train``: a full step; ``infer``: a batched eval forward; ``latency``: one image)."""

    def __init__(self, name: str, device: torch.device, batch_size: int, image_size: int | None,
                 precision: str, channels_last: bool, options: dict):
        self.name, self.device, self.batch_size = name, device, batch_size
        # CUDA memory already held (earlier models) is subtracted from this model's peak.
        self.base_bytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        torch.manual_seed(0)
        self.model = create_model(name, **options).to(device)
        self.spec, cfg = self.model.spec, self.model.config
        self.size = image_size or self.spec.input_size
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # The paper's SGD with momentum 0.9; a small lr keeps random-label training finite.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, cfg["in_channels"], self.size, self.size, generator=g)
        self.x = x.to(device).contiguous(memory_format=fmt)
        self.x1 = x[:1].to(device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, cfg["num_classes"], (batch_size,), generator=g).to(device)
        self.precision = precision
        self.iters = dict.fromkeys(KINDS, 1)
        self.samples = {k: [] for k in KINDS}  # seconds per call, one per timed round

    def autocast(self):
        return autocast(self.device, self.precision)

    def train_step(self, forward_hooks=None) -> None:
        """One SGD step; ``forward_hooks`` (a context) wraps only the forward pass."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with forward_hooks or contextlib.nullcontext(), self.autocast():
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()

    def forward_eval(self, x) -> None:
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            self.model(x)

    def call(self, kind: str) -> None:
        if kind == "train":
            self.train_step()
        else:
            self.forward_eval(self.x if kind == "infer" else self.x1)

    def peak_train_memory(self) -> tuple[int, str]:
        """Peak bytes of one training step; the step(s) also warm the model up."""
        dev = self.device
        if dev.type == "cuda":
            self.train_step()  # gradients and momentum buffers exist from now on, as in training
            self.optimizer.zero_grad(set_to_none=True)
            sync(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            self.train_step()
            sync(dev)
            return torch.cuda.max_memory_allocated(dev) - self.base_bytes, "cuda_max_allocated"
        counter = SavedTensorCounter(parameter_storages(self.model))  # parameters are counted below
        self.train_step(forward_hooks=counter)
        state = [t for s in self.optimizer.state.values() for t in s.values()]
        # parameters + gradients (same size) + optimizer state (momentum) + saved activations
        return 2 * tensor_bytes(self.model.parameters()) + tensor_bytes(state) + counter.bytes, "saved_tensors_estimate"
