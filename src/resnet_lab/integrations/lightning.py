"""``GradientMonitorCallback``: resnet-lab's gradient diagnostics in a PyTorch Lightning ``Trainer``.

    from resnet_lab.integrations.lightning import GradientMonitorCallback
    trainer = L.Trainer(callbacks=[GradientMonitorCallback(nonfinite="skip")])

At fit start it puts a ``GradientMonitor`` on the LightningModule (keyword arguments go to it:
``groups``, ``nonfinite``, thresholds...). In ``on_before_optimizer_step`` (after backward, and
under AMP after the precision plugin has unscaled the gradients, before Lightning's gradient
clipping: the raw gradient) it records the step and applies the non-finite policy: a step the
policy drops has its gradients set to None, so that the optimizer step leaves weights and
optimizer state untouched. Each record (every ``every`` steps, default the trainer's
``log_every_n_steps``, or a shorter fit's first and last steps) goes to all the trainer's
loggers as scalars (see ``common.scalars``) and to ``gradients.jsonl``; at the end of fit (or on
an exception) the report of ``common.write_final_report`` is written into ``out`` (default: ``trainer.log_dir``; under
``fast_dev_run``, which suppresses logging, no files unless ``out`` is given).

fp16 (``precision="16-mixed"``): a step whose gradients overflow at a loss scale above 1 is the
scaler's routine (it skips the step and lowers the scale): it is discarded, not judged.
The loss recorded is the one handed to backward: divided by ``accumulate_grad_batches``.
A batch whose ``training_step`` returns None (Lightning skips its backward) is not judged.

The optimizer goes to ``check_step`` (the ``rollback`` policy restores weights and optimizer
state itself and lowers the lr; the schedulers' base lrs follow, see
``common.SchedulerFollower``); whenever ``check_step`` says no, the step is dropped.

DDP and other multi-process strategies: every rank runs its monitor (the policy decides on
each rank's own gradients, which DDP has already averaged, so all ranks agree); only global
rank 0 logs and writes files.

Locating a NaN: the failing batch is run again through ``forward_fn(module, batch)``, by
default ``module.training_step(batch, batch_idx)`` (its loss, also from a ``{"loss": ...}``
dict), with hooks on every submodule; the report names the first module that produced a
non-finite value, e.g. ``net.layer2.0.conv1``. Under manual optimization
(``automatic_optimization = False``) ``training_step`` steps the optimizers itself, so the
batch is re-run only through a ``forward_fn`` given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import lightning.pytorch as pl

from ..errors import UserError, check_positive_int
from ..files import as_path
from ..training.eager_step import routine_overflow
from .common import (SchedulerFollower, check_monitor_options, drop_step, make_monitor, monitor_state,
                     restore_monitor_state, scalars, unscale_loss, write_final_report)


class GradientMonitorCallback(pl.Callback):
    """Args: ``out``: directory for ``gradients.jsonl`` and the report (default: the trainer's
    ``log_dir``); ``every``: record every N optimizer steps (default: ``log_every_n_steps``);
    ``forward_fn``: ``forward_fn(module, batch) -> loss or output`` for locating a NaN;
    ``locate``: re-run the failing batch to locate it (skip/stop policies); other keyword
    arguments: ``GradientMonitor``'s."""

    def __init__(self, out: str | Path | None = None, *, every: int | None = None,
                 forward_fn: Callable[[pl.LightningModule, Any], Any] | None = None, locate: bool = True,
                 **monitor_kwargs):
        self.out = self._out = as_path(out, "out") if out is not None else None  # out: this fit's folder
        self.every = None if every is None else check_positive_int("every", every)
        self.forward_fn, self.locate, self.monitor_kwargs = forward_fn, locate, check_monitor_options(monitor_kwargs)
        self.monitor = None
        self.report_paths: list[Path] = []
        self._batch = self._loss = None
        self._follower = SchedulerFollower()
        self._restored: dict = {}  # from a checkpoint of the trainer's (load_state_dict), for the next fit

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not on_fit_start: a fit from ckpt_path= has its global step restored only after that.
        # Each fit's own: a callback used again, by another trainer, writes into that one's log_dir.
        self.out = self._out or Path(trainer.log_dir or trainer.default_root_dir)  # log_dir: call on all ranks
        if self._out is None and trainer.fast_dev_run:
            # Lightning suppresses logging and checkpoints: no files in the working directory either (a second
            # fast_dev_run there was refused as a new run in a folder holding an earlier run's records).
            self.out = None
        self._trainer, self._finished, self.report_paths = trainer, False, []
        self._follower = SchedulerFollower()  # this fit's monitor starts at lr_scale 1
        self.monitor = make_monitor(pl_module, self.out if trainer.is_global_zero else None,
                                    self.every or self._default_every(trainer), dict(self.monitor_kwargs), self._log,
                                    trainer.world_size, len(trainer.optimizers), first_step=trainer.global_step,
                                    resumed=trainer.global_step > 0)  # from ckpt_path=
        restored, self._restored = self._restored, {}
        restore_monitor_state(self.monitor, self._follower, restored)

    def _default_every(self, trainer: pl.Trainer) -> int:
        """The trainer's ``log_every_n_steps``; for a fit shorter than that, its first and last steps (numbered
        from 0, a short fit was recorded at step 0 only: the untrained model)."""
        every, total = trainer.log_every_n_steps, trainer.estimated_stepping_batches
        if every == 0 and self.monitor_kwargs.get("nonfinite", "warn") == "warn":
            raise UserError("log_every_n_steps=0 (barebones=True) leaves GradientMonitorCallback no step to record, "
                            "and nonfinite='warn' acts on records only: give GradientMonitorCallback(every=N), or a "
                            "policy checked every step (nonfinite='skip', 'stop' or 'rollback')")
        return int(total) - 1 if 1 < total <= every and total != float("inf") else every

    def state_dict(self) -> dict:
        """Kept in the trainer's checkpoints, so that a fit resumed with ``ckpt_path=`` gives up and rolls
        back where this one would have: the skip streak; under rollback, the kept state, lr scale and losses."""
        return monitor_state(self.monitor)

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = dict(state_dict)  # applied when the fit's monitor is made (on_train_start)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._batch = (batch, batch_idx)  # kept for the NaN locator; a reference, no copy
        self.monitor.step_begins()  # training_step may never call the module's forward (self.net(x))

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._loss = loss.detach()  # under fp16 the scaled loss (unscaled below)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if all(p.grad is None for p in pl_module.parameters()):
            # training_step returned None (Lightning's way to skip a batch): no backward, nothing to judge,
            # and the optimizer step Lightning still calls changes nothing.
            self.monitor.discard_step()
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        loss = unscale_loss(self._loss, scaler)
        if scaler is not None and scaler.is_enabled() and routine_overflow(pl_module.parameters(), loss, scaler):
            self.monitor.discard_step()  # the scaler skips this step itself
            return
        self.monitor.step(loss, step=trainer.global_step)
        if not self.monitor.check_step(optimizer=optimizer, **self._locator()):
            drop_step(optimizer)
        self._follower.follow(self.monitor, [c.scheduler for c in trainer.lr_scheduler_configs])

    def _locator(self) -> dict:
        if not self.locate or self._batch is None:
            return {}
        if self.forward_fn is None and not self._trainer.lightning_module.automatic_optimization:
            return {}  # a manual training_step steps the optimizers itself: re-run, it would step them again
        batch, batch_idx = self._batch

        def forward(module, inputs):
            out = (self.forward_fn(module, inputs) if self.forward_fn is not None
                   else module.training_step(inputs, batch_idx))
            return out["loss"] if isinstance(out, dict) else out
        return {"inputs": batch, "forward_fn": forward}

    def _log(self, record: dict) -> None:
        trainer = self._trainer
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(scalars(record), step=record["step"])

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._finish(trainer)  # e.g. the stop policy's NonFiniteError: the report says where

    def _finish(self, trainer: pl.Trainer) -> None:
        if self.monitor is None or self._finished:
            return
        self._finished = True
        self.monitor.close()
        if trainer.is_global_zero and self.out is not None:
            self.report_paths = write_final_report(self.monitor, self.out)
        self._batch = self._loss = None
