"""``HostReadback``: small device tensors brought to the host without making the training step wait.

On CUDA each tensor is copied into a pinned host buffer with ``non_blocking=True`` and a CUDA
event marks its arrival; it is read (turned into a NumPy array) only once that event has
completed, checked without blocking, or when the caller asks to wait. Host buffers are reused by
size. On a CPU a tensor is ready at once; on other devices (MPS) it is read when asked to wait.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterator

import numpy as np
import torch


class HostReadback:
    """A queue of ``(tag, tensor)`` on their way to the host, read back in the order pushed.

    ``max_pending``: tensors allowed in flight before the oldest is waited for (a sync).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, max_pending: int):
        self.device, self.dtype, self.max_pending = device, dtype, max_pending
        self._pending: deque = deque()
        self._free: dict[int, list[torch.Tensor]] = {}  # pinned host buffers by size, for reuse

    def push(self, tag: Any, values: torch.Tensor) -> None:
        """Start bringing the 1-D tensor ``values`` (of ``dtype``) to the host; no sync."""
        if self.device.type != "cuda":
            self._pending.append((tag, values, None))
            return
        host = self._host_buffer(values.numel())
        host.copy_(values, non_blocking=True)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(self.device))
        self._pending.append((tag, host, event))

    def ready(self, block: bool) -> Iterator[tuple[Any, np.ndarray]]:
        """``(tag, values)`` of each arrived tensor, oldest first; with ``block`` of all of them."""
        while self._pending:
            tag, host, event = self._pending[0]
            arrived = event.query() if event is not None else host.device.type == "cpu"
            if not (arrived or block or len(self._pending) > self.max_pending):
                break
            self._pending.popleft()
            if event is not None:
                event.synchronize()
                values = host.numpy().copy()
                self._free.setdefault(host.numel(), []).append(host)
            else:
                values = host.cpu().numpy().astype(np.float64)
            yield tag, values

    def _host_buffer(self, n: int) -> torch.Tensor:
        free = self._free.get(n)
        if free:
            return free.pop()
        return torch.empty(n, dtype=self.dtype, pin_memory=True)
