"""``GradientMonitorCallback``: resnet-lab's gradient diagnostics in a Hugging Face ``Trainer``.

    from resnet_lab.integrations.huggingface import GradientMonitorCallback
    trainer = Trainer(model, args, train_dataset=data)
    GradientMonitorCallback.attach(trainer, nonfinite="skip")
    trainer.train()

At ``on_train_begin`` it puts a ``GradientMonitor`` on the model (keyword arguments go to it). In
``on_pre_optimizer_step`` it records the step and applies the non-finite policy; a step the
policy drops has its gradients set to None, so the optimizer step leaves weights and state alone.

When it reads the gradients: the Trainer calls ``on_pre_optimizer_step`` after backward AND
after its gradient clipping (``max_grad_norm``, 1.0 by default), and offers no callback event in
between. The per-group norms are therefore those the optimizer applies: clipping scales every
group alike, so the flow over depth is kept, but a clipped global norm cannot exceed
``max_grad_norm``, so ``exploding`` is judged on the loss (or use ``max_grad_norm=0``); NaN/Inf
survive clipping. The Trainer's own ``grad_norm`` log is the norm before clipping. Under fp16
without clipping the gradients are unscaled here first (the scaler would otherwise do it in
its step), and the scaler's routine overflow steps are discarded, not judged.

The loss (``output.loss`` of the model's training forward, when the model computes it; under
``return_dict=False`` the first element of its tuple, as the Trainer takes it) and the batch (the
keyword arguments of that forward, for locating a NaN) are taken by hooks on the model. Records
(every ``every`` steps, default the Trainer's ``logging_steps``, or the run's last step when it is
shorter, numbered like the Trainer's own logs) are added to the Trainer's logs:
``trainer_state.json``'s ``log_history`` and every ``report_to`` integration, which needs this
callback to run before them: ``attach`` puts it first (passed in ``callbacks=[...]`` it comes
after them and reaches ``log_history`` only). Files go to ``args.output_dir`` (or ``out``):
``gradients.jsonl`` and, at the end, the report. Only the world process zero writes; every process
runs its monitor. The optimizer goes to ``check_step`` (the ``rollback`` policy restores its
state) and the Trainer's scheduler follows a lowered lr. A ``stop`` raised in the step ends the
callback as the end of training does (its hooks leave the model, the report is written) before the
error reaches the caller; after any other exception, ``finish()`` does the same.

A loss the Trainer computes outside the model (a ``compute_loss`` of its own, ``label_smoothing_factor``)
is not seen: the records have none, and a warning says so once when rollback's loss-spike test or
``explode_loss`` would judge it.

Resuming: the callback is an ``ExportableState``, so each checkpoint's ``trainer_state.json`` keeps its
state (``stateful_callbacks``): the skip streak; under rollback the lr scale, the rollbacks so far and the
recent losses. A run resumed with ``resume_from_checkpoint=`` takes it back at its start, and so gives up
where this one would have. The rollback's kept weights and optimizer state are tensors, which that JSON
file does not hold: a resumed run keeps them again at its first good step (as a new run does).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from ..errors import UserError, check_positive_int
from ..files import as_path
from ..training.eager_step import routine_overflow
from .common import (SchedulerFollower, check_monitor_options, drop_step, make_monitor, monitor_state,
                     restore_monitor_state, scalars, write_final_report)


def _model_loss(output) -> torch.Tensor | None:
    """The loss in a model's output, where the Trainer takes it: ``output["loss"]`` (a ``ModelOutput`` or a
    dict), or the first element of a tuple (``return_dict=False``) when that is a scalar (logits never are)."""
    if isinstance(output, dict):
        return output.get("loss")
    if isinstance(output, (tuple, list)):
        first = output[0] if output else None
        return first if isinstance(first, torch.Tensor) and first.ndim == 0 else None
    return getattr(output, "loss", None)


class GradientMonitorCallback(TrainerCallback, ExportableState):
    """Args: ``out``: directory for ``gradients.jsonl`` and the report (default ``args.output_dir``);
    ``every``: record every N optimizer steps (default ``logging_steps``); ``locate``: re-run a
    failing batch to locate the NaN (skip/stop policies); other keyword arguments: ``GradientMonitor``'s."""

    def __init__(self, out: str | Path | None = None, *, every: int | None = None, locate: bool = True,
                 **monitor_kwargs):
        self.out = self._out = as_path(out, "out") if out is not None else None  # out: this run's folder
        self.every = None if every is None else check_positive_int("every", every)
        self.locate, self.monitor_kwargs = locate, check_monitor_options(monitor_kwargs)
        self.monitor = None
        self.report_paths: list[Path] = []
        self._pending: dict[str, float] = {}
        self._inputs = self._loss = None
        self._follower = SchedulerFollower()
        # Set only on a copy that the Trainer makes from a checkpoint (restore_callback_states_from_checkpoint):
        # made with no arguments, the copy has lost this callback's options.
        self.checkpointed = None

    def state(self) -> dict:
        """``ExportableState``: what each checkpoint's ``trainer_state.json`` keeps (``stateful_callbacks``)
        for ``on_train_begin`` of a resumed run. No ``args``: the options need not be JSON (``rollback=``)."""
        return {"args": {}, "attributes": {"checkpointed": monitor_state(self.monitor, kept=False)}}

    @classmethod
    def attach(cls, trainer, **kwargs) -> "GradientMonitorCallback":
        """Create the callback and put it first, so that its scalars reach every ``report_to`` logger."""
        callback = cls(**kwargs)
        trainer.callback_handler.callbacks.insert(0, callback)
        return callback

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.checkpointed is not None:
            raise UserError("restore_callback_states_from_checkpoint=True replaced the GradientMonitorCallback by "
                            "a copy without its options; leave it False: the callback takes its state back from "
                            "the checkpoint itself")
        self.out = self._out or Path(args.output_dir)  # a callback used again by another Trainer: its output_dir
        every = self.every or max(1, int(state.logging_steps or args.logging_steps))
        if self.every is None and 0 < state.max_steps < every:
            # Steps are numbered from 1: a run shorter than logging_steps (500 by default) recorded no step at
            # all, and its report said "healthy: no step recorded yet". Its last step is recorded instead.
            every = state.max_steps
        self.monitor = make_monitor(model, self.out if state.is_world_process_zero else None, every,
                                    dict(self.monitor_kwargs), self._collect, args.world_size,
                                    first_step=state.global_step + 1,  # numbered as in on_pre_optimizer_step
                                    resumed=state.global_step > 0)  # from resume_from_checkpoint=: its step restored
        self._hooks = [model.register_forward_pre_hook(self._keep_inputs, with_kwargs=True),
                       model.register_forward_hook(self._keep_loss)]
        self._world_zero, self._finished = state.is_world_process_zero, False
        self._follower = SchedulerFollower()  # this run's monitor starts at lr_scale 1
        name = type(self).__name__
        saved = state.stateful_callbacks.get(name)  # resumed: the checkpoint's trainer_state.json
        if state.global_step > 0 and isinstance(saved, dict):
            restore_monitor_state(self.monitor, self._follower, saved["attributes"]["checkpointed"])
        # A checkpoint made without this callback has no entry, which the Trainer's next save looks up (KeyError).
        state.stateful_callbacks.setdefault(name, self.state())
        self._micro_batches, self._loss = args.gradient_accumulation_steps, None
        self._told_no_loss = False

    def _keep_inputs(self, module, args, kwargs):
        if module.training:
            self._inputs = (args, kwargs)  # references, no copy: the batch lives until the step ends

    def _keep_loss(self, module, args, output):
        loss = _model_loss(output)
        if module.training and loss is not None:
            # The step's loss as the Trainer logs it: the sum of its micro-batches' shares. Given the step's
            # num_items_in_batch the model divides by it itself; else the Trainer divides by the micro-batches.
            scaled = self._inputs is not None and self._inputs[1].get("num_items_in_batch") is not None
            share = loss.detach() if scaled else loss.detach() / self._micro_batches
            self._loss = share if self._loss is None else self._loss + share

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, lr_scheduler=None, model=None, **kwargs):
        try:
            self._judge_step(state, optimizer, lr_scheduler, model)
        except BaseException:  # the stop policy: the Trainer has no exception event, so end here as at its end
            self.finish()  # hooks off the model, the report written
            raise
        finally:
            self._loss = None  # the next step's micro-batches start a new sum

    def _judge_step(self, state, optimizer, lr_scheduler, model) -> None:
        scaler = getattr(optimizer, "scaler", None)  # accelerate's AcceleratedOptimizer under fp16
        if scaler is not None and scaler.is_enabled():
            try:
                scaler.unscale_(optimizer.optimizer)
            except RuntimeError:
                pass  # already unscaled, by the Trainer's clipping
            if routine_overflow(model.parameters(), self._loss, scaler):
                self.monitor.discard_step()
                return
        if self._loss is None and not self._told_no_loss:
            self._tell_no_loss()
        # Numbered like the Trainer's logs: global_step counts this step once it is taken.
        self.monitor.step(self._loss, step=state.global_step + 1)
        if not self.monitor.check_step(optimizer=optimizer, **self._locator()):
            drop_step(optimizer)
        self._follower.follow(self.monitor, [lr_scheduler] if lr_scheduler is not None else [])

    def _tell_no_loss(self) -> None:
        """Once a run: what judges the loss sees none, since the model's forward returned none (the Trainer
        computes it outside the model: a ``compute_loss`` of its own, ``label_smoothing_factor``)."""
        self._told_no_loss = True
        judged = [what for what, on in (("rollback's loss-spike test", self.monitor.policy == "rollback"),
                                        ("explode_loss", self.monitor.thresholds.explode_loss is not None)) if on]
        if judged:
            warnings.warn(f"GradientMonitorCallback: the model's forward returned no loss (the Trainer computes it "
                          f"outside the model), so {' and '.join(judged)} judge nothing in this run; have the "
                          "forward return the loss (output.loss) to have it judged", RuntimeWarning, stacklevel=2)

    def _locator(self) -> dict:
        if not self.locate or self._inputs is None:
            return {}
        positional, keywords = self._inputs

        def forward(model, _):
            out = model(*positional, **keywords)
            loss = _model_loss(out)
            return loss if loss is not None else out
        return {"inputs": keywords or positional, "forward_fn": forward}

    def _collect(self, record: dict) -> None:
        self._pending.update(scalars(record))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.monitor is None or logs is None or any(k.startswith("eval_") for k in logs):
            return
        self.monitor.flush()  # the Trainer has just synchronised for its own logs
        if self._pending and self._world_zero:
            logs.update(self._pending)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1].update(self._pending)  # the Trainer stored a copy of logs already
        self._pending = {}

    def on_train_end(self, args, state, control, **kwargs):
        self.finish()

    def finish(self) -> None:
        """Take the hooks off the model and write the report of the records so far; the end of training
        and a stop call it. Any other exception out of ``trainer.train()`` has no callback event: call
        it in an ``except`` or ``finally`` to keep the report of a crashed run. Calling again does nothing."""
        if self.monitor is None or self._finished:
            return
        self._finished = True
        for hook in self._hooks:
            hook.remove()
        self.monitor.close()
        if self._world_zero:
            self.report_paths = write_final_report(self.monitor, self.out)
        self._inputs = self._loss = None
