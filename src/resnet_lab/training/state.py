"""Where a run is, and what its checkpoint holds: the one place that defines a checkpoint's layout.

``RunState`` carries the counters and records; ``state_dict`` adds the tensors of the run's
parts (model, optimiser, loss scaler, weight average, RNG) and ``load_state_dict`` puts every
one of them back, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch


@dataclass
class RunState:
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    warmup_done: bool = True  # the paper's warm-up (lr 0.01 until training error < 80%) is over
    best_acc: float = -1.0
    history: list = field(default_factory=list)  # one metrics row per epoch
    step_history: list = field(default_factory=list)  # every log_every steps: a resumed run keeps the earlier rows
    events: list = field(default_factory=list)  # non-finite steps, fp16 overflows, graph fallback
    epoch_sums: list | None = None  # loss sum, correct, seen of an epoch interrupted mid-way
    sums: torch.Tensor | None = field(default=None, repr=False)  # the same, live on the device during an epoch
    # The run's time is summed over the processes that trained it, each counted up to its last
    # checkpoint (steps redone after a kill count once). None: resumed from a checkpoint that kept none.
    run_time_before_s: float | None = 0.0
    processes: int = 1  # this one included
    process_start: float = field(default_factory=time.perf_counter, repr=False)  # when this process's setup began

    def run_time_s(self) -> float | None:
        """The run's time so far: the earlier processes' and this one's since its setup began."""
        if self.run_time_before_s is None:
            return None
        return self.run_time_before_s + time.perf_counter() - self.process_start

    def state_dict(self, parts, config, device: torch.device, ctx) -> dict:
        """The checkpoint. Called on every rank at the same step: the running sums are reduced."""
        return {"model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
                "scaler": parts.scaler.state_dict(),
                "ema": parts.ema.model.state_dict() if parts.ema is not None else None,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []},
                "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "warmup_done": self.warmup_done, "best_acc": self.best_acc, "history": self.history,
                "step_history": self.step_history,
                "events": self.events,
                "epoch_sums": ctx.sum_(self.sums.clone()).tolist() if self.sums is not None else None,
                "run_time_s": self.run_time_s(), "processes": self.processes,
                "config": config.to_dict(), "data_info": parts.info, "total_steps": parts.total_steps}

    def load_state_dict(self, checkpoint: dict, parts, device: torch.device, is_main: bool) -> None:
        parts.model.load_state_dict(checkpoint["model"])
        parts.optimizer.load_state_dict(checkpoint["optimizer"])
        parts.scaler.load_state_dict(checkpoint["scaler"])
        if parts.ema is not None:
            parts.ema.model.load_state_dict(checkpoint["ema"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        self.step, self.epoch, self.batch_in_epoch = (checkpoint["step"], checkpoint["epoch"],
                                                      checkpoint["batch_in_epoch"])
        self.warmup_done, self.best_acc = checkpoint["warmup_done"], checkpoint["best_acc"]
        self.history, self.events = checkpoint["history"], checkpoint.get("events", [])
        self.step_history = checkpoint.get("step_history", [])  # absent from checkpoints of earlier versions
        self.run_time_before_s = checkpoint.get("run_time_s")  # as is the run's time so far: None, unknown
        self.processes = checkpoint.get("processes", 1) + 1
        # The saved sums are global (reduced over ranks): count them once, on rank 0.
        self.epoch_sums = checkpoint["epoch_sums"] if is_main else None
