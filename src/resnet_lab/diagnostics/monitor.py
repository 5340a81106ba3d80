"""``GradientMonitor``: per-layer-group gradient statistics at near-zero cost per step.

Usage in any training loop::

    monitor = GradientMonitor(model, jsonl_path="run/gradients.jsonl")
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        monitor.step(loss)            # after backward, before clipping and optimizer.step()
        optimizer.step()
    print(monitor.verdict())          # reading results synchronises, once
    monitor.close()

With a non-finite policy (``nonfinite="skip"``, ``"stop"`` or ``"rollback"``), replace
``optimizer.step()`` by ``monitor.guarded_step(optimizer, inputs=x, targets=y, loss_fn=loss_fn)``
(or, when the trainer steps the optimizer itself,
``if monitor.check_step(..., optimizer=optimizer): optimizer.step()``).

How the cost stays small: ``step()`` issues one ``torch._foreach_norm`` over all gradients
and weights, reduces the squared norms to per-group sums with one ``index_add_`` over a
precomputed group index, and concatenates everything (loss, global norms, per-group
norms, update ratios, activation statistics) into ONE small tensor on the device. That
tensor goes to the host without waiting (``readback.py``: a pinned buffer and a CUDA event);
records are turned into Python numbers only once it has arrived (checked without blocking at
the next ``step()``) or when results are read (``records()``, ``verdict()``, ``flush()``), so
the training step never waits for the GPU.
There is no ``.item()`` and no host synchronisation inside ``step()``, except
``histogram_every`` steps, which copy gradients to the host for TensorBoard histograms.

Update-to-weight ratio: measured exactly, not estimated. At each recorded step the
monitor keeps a copy of the weights; at the next recorded step it subtracts the current
weights from that copy in place and includes the difference in the same fused norm, giving
``||w_now - w_prev|| / ||w_prev||`` per group. This is right for any optimizer (momentum,
Adam, weight decay), unlike ``lr * ||g|| / ||w||``, which holds only for plain SGD. It costs
one extra copy of the parameters in memory and about three passes over them per step
(small next to a forward/backward pass); pass ``update_ratio=False`` to turn it off. With
``every=k`` the ratio covers the last k steps. The first record has no ratio (None).
"""

from __future__ import annotations

import json
import warnings
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import UserError, numpy_scalars_as_numbers, shown
from ..files import write_json
from .activations import ActivationTracker
from .choices import POLICIES
from .groups import OTHER, ExecutionOrder, LayerGroup, build_groups, trainable_groups
from .nonfinite import NonFiniteReport
from .policy import NORM_OVERFLOW, NonFinitePolicy, StepStartBuffers
from .readback import HostReadback
from .records import JsonlWriter, TensorBoardLogger, dumps
from .rollback import LastGoodState, LossSpikes, Rollback
from .verdicts import Thresholds, Verdict, VerdictJudge

# Layout of the record tensor: [loss, global grad norm, global weight norm, G grad norms,
# G weight norms, (G update ratios), (3 activation stats per tracked group)].
_HEAD = 3


@dataclass(frozen=True)
class _Meta:
    """What the record tensor of one step contains (kept on the host, no sync needed)."""

    step: int
    present: tuple[bool, ...]  # per group: did any of its parameters have a gradient?
    has_loss: bool
    has_update: bool
    act_slots: tuple[int, ...]
    groups: tuple[LayerGroup, ...]  # the groups at this step (they change when the model's parameters do)
    act_groups: tuple[LayerGroup, ...]  # the activation tracker's, which ``act_slots`` index


def _check_options(nonfinite: str, counts: list[tuple[str, int, int]]) -> None:
    """Refuse an unknown policy, and each ``(name, value, lowest)`` count that is not an integer >= lowest."""
    if nonfinite not in POLICIES:
        raise UserError(f"nonfinite={nonfinite!r} is not valid; choose one of: {', '.join(POLICIES)}")
    for name, value, low in counts:
        if not isinstance(value, int) or value < low:
            raise UserError(f"{name} must be an integer >= {low}, got {value!r}")


# Dtypes whose norms one fused float32 ``_foreach_norm`` takes; float64 and complex tensors are refused by it.
_FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _norms_of(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The 2-norms of ``tensors`` as one 1-D tensor of ``dtype``, in their order: one fused float32 norm when all
    are dense float32/bf16/fp16 (the usual case). A float64 or complex tensor (a ``model.double()``, complex
    weights) is measured in its own precision, and a sparse gradient (``nn.Embedding(sparse=True)``) over its
    coalesced values (an uncoalesced one repeats indices: the norm of its values is not the gradient's);
    ``_foreach_norm(dtype=float32)`` refuses all three with a RuntimeError (raised before any kernel runs), which
    sends them here: no per-tensor test on the usual path."""
    try:
        return torch.stack(torch._foreach_norm(tensors, 2, dtype=torch.float32)).to(dtype)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError:
        if all(t.dtype in _FUSED_DTYPES and not t.is_sparse for t in tensors):
            raise  # not a dtype or layout the fused norm refuses
    dense = [t.coalesce().values() if t.is_sparse else t for t in tensors]
    fused = [i for i, t in enumerate(dense) if t.dtype in _FUSED_DTYPES]
    own = [i for i, t in enumerate(dense) if t.dtype not in _FUSED_DTYPES]
    out = torch.empty(len(dense), dtype=dtype, device=dense[0].device)
    for positions, kwargs in ((fused, {"dtype": torch.float32}), (own, {})):
        if positions:
            norms = torch._foreach_norm([dense[i] for i in positions], 2, **kwargs)
            out[positions] = torch.stack([n.to(dtype) for n in norms])
    return out


class _Registrations:
    """How many parameters and modules have been registered in any module of this process (two global
    registration hooks, installed by the first monitor): a monitor looks at its model's parameters again only
    when this count has moved, so that the check costs one comparison per step."""

    count = 0
    _handles: tuple | None = None

    @classmethod
    def install(cls) -> None:
        if cls._handles is None:
            registration = nn.modules.module
            cls._handles = (registration.register_module_parameter_registration_hook(cls._note),
                            registration.register_module_module_registration_hook(cls._note))

    @classmethod
    def _note(cls, module, name, value) -> None:
        cls.count += 1


def _names(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _device_of(model: nn.Module) -> torch.device:
    devices = {p.device for p in model.parameters() if p.requires_grad}
    if len(devices) != 1:
        raise UserError(f"GradientMonitor needs all trainable parameters on one device, found "
                        f"{', '.join(sorted(map(str, devices)))}; monitor each part separately")
    device = devices.pop()
    if device.type == "meta":  # shapes without data: the first record read back was a NotImplementedError
        raise UserError("the model's parameters are on the meta device (shapes, no values): there is nothing to "
                        "measure; materialise it first (model.to_empty(device=...) and initialise or load its "
                        "weights), then create the GradientMonitor")
    return device


def _histogram_values(grad: torch.Tensor) -> torch.Tensor:
    """A gradient's values for a histogram: a sparse one's stored values, a complex one's magnitudes."""
    values = (grad.coalesce().values() if grad.is_sparse else grad).detach().flatten()
    return (values.abs() if values.is_complex() else values).float()


class GradientMonitor(NonFinitePolicy):
    """Records per-layer-group gradient norms, weight norms and update ratios each step,
    judges the run (healthy / vanishing / exploding / nonfinite) and writes JSONL/TensorBoard.

    Args:
        model: any ``nn.Module`` (all trainable parameters on one device).
        groups: ``"block"``/``"auto"`` (default: stem, each residual block, head; any other
            model opened level by level to 8-64 groups, ordered by execution in the first
            training forward: ``group_order`` says which order is in use), a nesting depth, a
            list of module names, a ``{regex: group}`` mapping over parameter names,
            ``"parameter"`` or ``"module_type"``; see ``build_groups``.
        every: record every ``every``-th step (``step % every == 0``); 1 records each step;
            0 records nothing and only applies the non-finite policy (skip, stop or rollback: with
            ``warn``, which acts on records, it is refused).
        track_activations: also record per-block activation mean/std and the fraction of
            dead units (forward hooks; a few reductions per block per training forward).
        update_ratio: measure ``||w_t - w_prev|| / ||w_prev||`` per group (costs one copy of
            the parameters in memory).
        vanish_ratio, vanish_floor, vanish_patience, explode_norm, explode_factor,
        explode_window, explode_loss: verdict thresholds; see ``verdicts`` for defaults
            and why.
        nonfinite: policy of ``guarded_step`` when loss, gradients or weights are NaN/Inf:
            ``"warn"`` (steps anyway, warns when the record is read; no sync per step),
            ``"skip"`` (drops that optimizer step: weights, buffers and optimizer state are
            left exactly as before the step; after ``max_skips`` consecutive skipped steps it
            gives up as ``stop`` does, since a run that cannot take a step is not training) or
            ``"stop"`` (writes ``report_path`` if set and raises ``NonFiniteError`` before the
            optimizer step, so the weights to checkpoint are the last finite ones).
            ``"rollback"`` (puts back the last good weights, buffers and optimizer state, lowers
            the learning rate and drops the batch; see ``rollback.py`` and ``rollback=``).
            ``skip``, ``stop`` and ``rollback`` check gradients and floating buffers every step
            (BatchNorm running statistics overflow before any gradient does), loss and weights
            on recorded steps; ``rollback`` reads the loss every step (the spike test).
        rollback: the ``Rollback`` settings of the rollback policy (default ``Rollback()``); refused with
            another policy, which would ignore them.
        max_skips: consecutive skipped steps after which ``skip`` raises ``NonFiniteError``.
        on_verdict: ``callback(verdict, record)`` called for each recorded step once its
            record is read back (immediately on CPU, usually a step later on CUDA).
        histogram_every: write gradient histograms per group to TensorBoard every N steps
            (0 = never). Each one copies the gradients to the host (a sync).
        tb_writer: a ``SummaryWriter`` or a log directory for TensorBoard scalars.
        jsonl_path: file to append one JSON record per recorded step to.
        report_path: where the ``stop`` policy writes its diagnostic report (JSON).
        keep_records: how many records ``records()`` keeps in memory (the JSONL file has all).
        max_pending: records allowed in flight before the oldest is read back with a sync.
    """

    # A notebook's computed counts are often numpy integers (every=np.int64(2)): taken as the ints they hold,
    # where they were refused with "every must be an integer >= 0, got np.int64(2)".
    @numpy_scalars_as_numbers
    def __init__(
        self,
        model: nn.Module,
        *,
        groups: str | int | list | dict = "block",
        every: int = 1,
        track_activations: bool = False,
        update_ratio: bool = True,
        vanish_ratio: float = 1e-3,
        vanish_floor: float = 1e-8,
        vanish_patience: int = 3,
        explode_norm: float | None = 1e3,
        explode_factor: float | None = 10.0,
        explode_window: int = 20,
        explode_loss: float | None = None,
        nonfinite: str = "warn",
        max_skips: int = 10,
        rollback: Rollback | None = None,
        on_verdict: Callable[[Verdict, dict], Any] | None = None,
        histogram_every: int = 0,
        tb_writer=None,
        jsonl_path: str | Path | None = None,
        report_path: str | Path | None = None,
        keep_records: int = 50_000,
        max_pending: int = 64,
    ):
        _check_options(nonfinite, [("every", every, 0), ("histogram_every", histogram_every, 0),
                                   ("max_skips", max_skips, 1), ("keep_records", keep_records, 1),
                                   ("max_pending", max_pending, 1)])
        if every == 0 and nonfinite == "warn":  # warn acts on records only: this monitor would do nothing at all
            raise UserError("every=0 records nothing, and nonfinite='warn' warns only from records: the monitor would "
                            "do nothing; give every >= 1, or a policy checked every step (nonfinite='skip', 'stop' "
                            "or 'rollback')")
        if histogram_every and tb_writer is None:
            raise UserError("histogram_every needs tb_writer (a SummaryWriter or a log directory)")
        if rollback is not None and nonfinite != "rollback":  # settings that would be ignored
            raise UserError(f"rollback= sets the rollback policy, but nonfinite={nonfinite!r}; pass "
                            "nonfinite='rollback' or leave rollback= out")

        self.model = model
        # The whole network's groups, frozen layers included, so that a layer unfrozen later joins the records
        # under the name and depth it has now; ``groups`` are the trainable ones among them.
        self._grouping = groups
        self._layout: list[LayerGroup] = build_groups(model, groups, frozen=True)
        self.groups: list[LayerGroup] = trainable_groups(self._layout, model)
        self.every, self.policy, self.histogram_every = every, nonfinite, histogram_every
        self.max_skips = max_skips
        self.on_verdict = on_verdict
        self.report_path = Path(report_path) if report_path is not None else None
        self.thresholds = Thresholds(vanish_ratio, vanish_floor, vanish_patience, explode_norm,
                                     explode_factor, explode_window, explode_loss)
        self._depth_ordered = groups != "module_type"
        self.device = _device_of(model)
        # float64 so that squaring large norms cannot overflow; MPS has no float64.
        self._acc = torch.float32 if self.device.type == "mps" else torch.float64
        self._track_activations = track_activations
        self._tracker = None
        self._index_groups()
        _Registrations.install()
        self._note_parameters()
        # Groups of an opened model are re-ordered by when their modules first run (see groups.py).
        self.group_order = "registration"
        self._execution_order = ExecutionOrder(model, self._layout)
        # A step that skip, stop or rollback does not take must also undo its forward's effect on the buffers.
        self._step_start = StepStartBuffers(model, keep=nonfinite != "warn")
        self._track_update = update_ratio
        self._snapshot: list[torch.Tensor] | None = None
        self._snapshot_norms: torch.Tensor | None = None

        self._jsonl = JsonlWriter(jsonl_path) if jsonl_path is not None else None
        self._tb = TensorBoardLogger(tb_writer) if tb_writer is not None else None

        self._next_step = 0
        self._current_step: int | None = None
        self._last_vec: torch.Tensor | None = None
        self._last_vec_step: int | None = None
        self._readback = HostReadback(self.device, self._acc, max_pending)
        self._rows: deque = deque(maxlen=keep_records)
        self._earlier: deque = deque(maxlen=keep_records)  # records of the run before a resume
        self._last_verdict: Verdict | None = None
        self._events: list[Verdict] = []
        self.last_report: NonFiniteReport | None = None
        self.skipped_steps: list[int] = []
        # Consecutive skipped steps so far: kept with a checkpoint, so that a resumed run gives up where
        # the first would have (reset, a resume once let a run skip past ``max_skips`` and exit 0).
        self.skip_streak = 0
        self.rollback = rollback or Rollback()
        self.rollbacks: list[dict] = []  # one entry per rollback: step, back_to, reason, lr_scale
        self.lr_scale = 1.0  # the product of the rollbacks' learning-rate factors
        self._spikes = LossSpikes(self.rollback.spike_factor, self.rollback.spike_window)
        self._good = LastGoodState(model) if nonfinite == "rollback" else None
        self._step_loss: torch.Tensor | None = None
        self._closed = False
        self._warned_order = False  # step numbers went back or repeated (warned once)

    # -- the per-step path (no host synchronisation) ------------------------------------

    @torch.no_grad()
    def step(self, loss: torch.Tensor | None = None, *, step: int | None = None) -> None:
        """Record the current gradients. Call after ``loss.backward()``, before ``optimizer.step()``.

        ``loss`` (the scalar loss tensor, optional) is recorded and judged too. ``step`` sets
        the step number (default: one more than the previous call, starting at 0). Gradients
        are recorded as they are now: call it after ``scaler.unscale_(optimizer)`` with AMP,
        and before clipping to see the raw gradient.
        """
        self._refuse_if_closed("step()")
        self._follow_parameters()
        s = self._next_step if step is None else self._step_number(step)
        self._next_step, self._current_step = s + 1, s
        self._step_loss = loss.detach() if self._good is not None and isinstance(loss, torch.Tensor) else None
        if self._execution_order.watching:
            self._apply_execution_order()
        self._drain(block=False)
        if not self.every or s % self.every:
            return
        if loss is not None and (not isinstance(loss, torch.Tensor) or loss.numel() != 1):
            raise UserError("monitor.step(loss) needs the scalar loss tensor (or no loss at all)")

        grads = [p.grad for p in self._params]
        present = tuple(g is not None for g in grads)
        if not any(present):
            raise UserError("monitor.step() found no gradients: call it after loss.backward() "
                            "and before optimizer.zero_grad()")
        has_update = self._track_update and self._snapshot is not None
        index, group_present = self._index(present, has_update)
        parts = self._norms(loss, grads, index, has_update)
        act_slots: tuple[int, ...] = ()
        if self._tracker is not None:
            slots, stats = self._tracker.latest()
            if stats:
                act_slots = tuple(slots)
                parts.append(torch.cat(stats).to(self.device, self._acc))
            self._tracker.clear()

        vec = torch.cat(parts)
        self._last_vec, self._last_vec_step = vec, s
        self._readback.push(_Meta(s, group_present, loss is not None, has_update, act_slots, self._group_tuple,
                                  self._act_groups), vec)
        if self.histogram_every and s % self.histogram_every == 0:
            self._write_histograms(s)
        self._drain(block=False)

    def _step_number(self, step) -> int:
        """``step=`` as the int it holds (a numpy or 0-d tensor integer, a float such as 3.0, too); one line for
        anything else (was a ValueError for a string; 2.7 became 2, -1 a record of step -1), and one warning the
        first time the numbers go back or repeat (step=batch_idx restarting each epoch, step() twice)."""
        try:
            number = int(step) if float(step).is_integer() and not isinstance(step, (bool, str)) else None
        except (TypeError, ValueError, RuntimeError):  # not a number, or a tensor of several values
            number = None
        if number is None or number < 0:
            raise UserError(f"monitor.step(step=...) takes the step number, an integer >= 0, got {shown(step)}")
        if self._current_step is not None and number <= self._current_step and not self._warned_order:
            self._warned_order = True
            warnings.warn(f"GradientMonitor: step={number} follows step {self._current_step}: records of different "
                          "steps now share numbers (a batch index that restarts each epoch, or step() called twice "
                          "for one step?); pass a number that grows, or leave step= out", RuntimeWarning, stacklevel=3)
        return number

    def _norms(self, loss: torch.Tensor | None, grads: list, index: torch.Tensor, has_update: bool) -> list:
        """The record tensor's parts up to the activations: loss, global norms, group norms, (ratios).

        ONE fused norm over the gradients, the weights and (for the update ratio) the change of
        the weights since the last record; then per-group sums of squares with one index_add_.
        About 15 small kernels in all, whatever the parameter count.
        """
        G = len(self.groups)
        tensors = [g for g in grads if g is not None] + self._params
        if has_update:
            torch._foreach_sub_(self._snapshot, self._params)  # snapshot := w_prev - w_now
            tensors += self._snapshot
        squares = _norms_of(tensors, self._acc).square()
        sums = torch.zeros((3 if has_update else 2) * G, dtype=self._acc, device=self.device)
        sums.index_add_(0, index, squares)
        loss_value = (loss.detach().reshape(1).to(self.device, self._acc) if loss is not None
                      else sums.new_zeros(1))
        roots = sums.sqrt()
        parts = [loss_value, sums[:2 * G].view(2, G).sum(1).sqrt(), roots[:2 * G]]
        if has_update:
            # A group whose weights were all zero (a zero-initialised bias) has no ratio: -1, read as None.
            prev = self._snapshot_norms
            parts.append(torch.where(prev > 0, roots[2 * G:] / prev.clamp_min(1e-30), -1.0))
        if self._track_update:
            self._take_snapshot(roots[G:2 * G])
        return parts

    def _index_groups(self) -> None:
        """Everything derived from ``self.groups``: parameter order, group ids, verdict judge."""
        named = dict(self.model.named_parameters())
        self._group_tuple = tuple(self.groups)
        self._judge = VerdictJudge(self.thresholds, [g.name for g in self.groups], depth_ordered=self._depth_ordered)
        self._param_names = [n for g in self.groups for n in g.param_names]
        self._params = [named[n] for n in self._param_names]
        self._group_ids = [i for i, g in enumerate(self.groups) for _ in g.param_names]
        self._weight_index = torch.tensor(self._group_ids, dtype=torch.long, device=self.device) + len(self.groups)
        self._index_cache: dict[tuple, tuple[torch.Tensor, tuple[bool, ...]]] = {}
        if self._tracker is not None:  # re-ordered: the same hooks and statistics, new depth indices
            by_name = {g.name: g for g in self.groups}
            self._tracker.groups = [by_name[g.name] for g in self._tracker.groups]
        elif self._track_activations:
            self._tracker = ActivationTracker(self.model, self.groups)
        self._act_groups = tuple(self._tracker.groups) if self._tracker is not None else ()

    def _note_parameters(self) -> None:
        """Remember what ``_follow_parameters`` compares with: the registration count now, and the model's
        parameters that are not monitored (frozen ones, which ``requires_grad_()`` may unfreeze)."""
        monitored = {id(p) for p in self._params}
        self._unmonitored = [p for p in self.model.parameters() if id(p) not in monitored]
        self._registrations_seen = _Registrations.count

    def _follow_parameters(self) -> None:
        """Take in a change of the model's parameters since the last step. A frozen layer unfrozen (a fine-tuning
        schedule) joins the records and the non-finite checks under its group's name and depth; a layer frozen
        stays, with no gradient. A layer added or removed, or a parameter re-assigned, builds the groups again,
        with a warning, once, since an optimizer made before may not hold the new tensors. The records before the
        change keep their groups. One comparison per step while nothing was registered or unfrozen."""
        if self._registrations_seen == _Registrations.count and not any(p.requires_grad for p in self._unmonitored):
            return
        named = dict(self.model.named_parameters())
        laid_out = {n for g in self._layout for n in g.param_names}
        changed = ([n for n in named if n not in laid_out] +  # added
                   [n for n, p in zip(self._param_names, self._params) if n in named and named[n] is not p])
        gone = [n for g in self._layout for n in g.param_names if n not in named]
        unfrozen = [p for p in self._unmonitored if p.requires_grad]
        if not (changed or gone or unfrozen):
            self._note_parameters()  # registered elsewhere: the groups stand
            return
        self._drain(block=True)  # the records so far are judged and decoded with the groups they were made with
        if changed or gone:
            self._rebuild_layout(changed, gone)
        self.groups = trainable_groups(self._layout, self.model)
        self._snapshot = None  # the update ratio's previous weights had the old layout
        if self._tracker is not None:
            self._tracker.remove()
            self._tracker = None
        self._index_groups()
        self._note_parameters()

    def _rebuild_layout(self, changed: list[str], gone: list[str]) -> None:
        """Group the model anew after a layer was added or a parameter re-assigned (in the noted execution order
        when the groups were in it), and say so once."""
        parts = ([f"added or re-assigned: {_names(changed)}"] if changed else []) + (
            [f"no longer in the model: {_names(gone)}"] if gone else [])
        outcome = "its groups are built again from here on"
        try:
            layout = build_groups(self.model, self._grouping, frozen=True)
        except UserError as exc:  # a grouping that no longer fits (a regex whose layer went): train on, say so
            named = dict(self.model.named_parameters())
            layout = [replace(g, param_names=tuple(n for n in g.param_names if n in named)) for g in self._layout]
            placed = {n for g in layout for n in g.param_names}
            other = next((g for g in layout if g.name == OTHER), LayerGroup(OTHER, len(layout), ()))
            other = replace(other, param_names=other.param_names + tuple(n for n in named if n not in placed))
            layout = [g for g in layout if g.name != OTHER] + [other]
            outcome = f"its groups could not be built again ({exc}), so new parameters go to {OTHER!r}"
        ordered = self._execution_order.reorder(layout) if self.group_order == "execution" else None
        self._layout = ordered or layout
        optimizer = (" An optimizer made before the change does not hold the new tensors: make it again, or add "
                     "them with optimizer.add_param_group." if changed else "")
        # stacklevel: the caller of step(), past this method, _follow_parameters, step and no_grad's wrapper.
        warnings.warn(f"GradientMonitor: the model's parameters changed at step {self._next_step} "
                      f"({'; '.join(parts)}); {outcome}.{optimizer}", RuntimeWarning, stacklevel=5)

    def _apply_execution_order(self) -> None:
        """Re-order the groups by the first training forward pass, once, before any record."""
        ordered = self._execution_order.reorder(self._layout)
        if ordered is not None:
            self._layout, self.group_order = ordered, "execution"
            self.groups = trainable_groups(ordered, self.model)
            self._index_groups()

    def _index(self, present: tuple[bool, ...], has_update: bool):
        """Group index for [present grads..., weights..., (weight changes...)], cached.

        Gradients of group g go to slot g, weights to G + g, weight changes to 2G + g.
        """
        key = (present, has_update)
        cached = self._index_cache.get(key)
        if cached is None:
            grad_ids = [g for g, ok in zip(self._group_ids, present) if ok]
            parts = [torch.tensor(grad_ids, dtype=torch.long, device=self.device), self._weight_index]
            if has_update:
                parts.append(self._weight_index + len(self.groups))
            group_present = tuple(any(ok for g, ok in zip(self._group_ids, present) if g == i)
                                  for i in range(len(self.groups)))
            cached = self._index_cache[key] = (torch.cat(parts), group_present)
        return cached

    def _take_snapshot(self, weight_norms: torch.Tensor) -> None:
        if self._snapshot is None:
            self._snapshot = [p.detach().clone() for p in self._params]
        else:
            torch._foreach_copy_(self._snapshot, [p.detach() for p in self._params])
        self._snapshot_norms = weight_norms

    def step_begins(self) -> None:
        """Keep the buffers as they are before this step's forward pass, as the model's forward pre-hook
        does: for a loop that runs the model's submodules without calling the model itself (a
        LightningModule whose ``training_step`` calls ``self.net``), so that a dropped step still
        puts back what its forward did to the BatchNorm statistics."""
        self._step_start.save_now(self.model)

    def _write_histograms(self, s: int) -> None:
        named = dict(zip(self._param_names, self._params))
        values = []
        for g in self.groups:
            grads = [_histogram_values(named[n].grad) for n in g.param_names if named[n].grad is not None]
            if grads:
                values.append((f"grad_hist/{g.depth_index:02d}.{g.name}", torch.cat(grads).cpu()))
        self._tb.histograms(s, values)

    # -- reading back (may synchronise) -------------------------------------------------

    def _drain(self, block: bool) -> None:
        """Turn arrived records into rows; with ``block`` wait for all of them."""
        for meta, values in self._readback.ready(block):
            self._materialise(meta, values)

    def _materialise(self, meta: _Meta, v: np.ndarray) -> None:
        G = len(meta.groups)
        grad_norms = [float(v[_HEAD + i]) if meta.present[i] else None for i in range(G)]
        weight_norms = [float(x) for x in v[_HEAD + G:_HEAD + 2 * G]]
        verdict = self._judge.judge(meta.step, float(v[0]) if meta.has_loss else None, float(v[1]),
                                    float(v[2]), grad_norms, weight_norms)
        self._rows.append((meta, v, verdict))
        if self._note_verdict(verdict) and verdict.kind == "nonfinite" and self.policy == "warn":
            warnings.warn(f"GradientMonitor: {verdict}", RuntimeWarning, stacklevel=3)
        if self._jsonl is not None or self._tb is not None or self.on_verdict is not None:
            record = self._record(meta, v, verdict)
            if self._jsonl is not None:
                self._jsonl.write(record)
            if self._tb is not None:
                self._tb.write(record)
            if self.on_verdict is not None:
                self.on_verdict(verdict, record)

    def _record(self, meta: _Meta, v: np.ndarray, verdict: Verdict) -> dict:
        G = len(meta.groups)
        vals = v.tolist()
        grads, weights = vals[_HEAD:_HEAD + G], vals[_HEAD + G:_HEAD + 2 * G]
        offset = _HEAD + 2 * G
        ratios = [r if r >= 0 else None for r in vals[offset:offset + G]] if meta.has_update else [None] * G
        offset += G if meta.has_update else 0
        record = {
            "step": meta.step,
            "loss": vals[0] if meta.has_loss else None,
            "global_grad_norm": vals[1],
            "global_weight_norm": vals[2],
            "groups": [{"name": g.name, "depth_index": g.depth_index,
                        "grad_norm": grads[i] if meta.present[i] else None,
                        "weight_norm": weights[i], "update_ratio": ratios[i]}
                       for i, g in enumerate(meta.groups)],
        }
        if self._track_activations:
            acts = []
            for k, slot in enumerate(meta.act_slots):
                g = meta.act_groups[slot]
                mean, std, dead = vals[offset + 3 * k:offset + 3 * k + 3]
                acts.append({"name": g.name, "depth_index": g.depth_index, "mean": mean, "std": std,
                             "dead_fraction": dead})
            record["activations"] = acts
        record["verdict"], record["reason"] = verdict.kind, verdict.reason
        return record

    def records(self) -> list[dict]:
        """All kept records, oldest first (waits for pending ones: one sync)."""
        self._drain(block=True)
        rows = [self._record(meta, v, verdict) for meta, v, verdict in self._rows]
        return (list(self._earlier) + rows)[-self._rows.maxlen:]

    def _note_verdict(self, verdict: Verdict) -> bool:
        """Make ``verdict`` the latest; an event when it is not healthy and differs in kind from the
        one before (True then)."""
        previous, self._last_verdict = self._last_verdict, verdict
        new = verdict.kind != "healthy" and (previous is None or previous.kind != verdict.kind)
        if new:
            self._events.append(verdict)
        return new

    def continue_from(self, records: list[dict]) -> None:
        """Pick up a resumed run: judge its earlier records (from its JSONL file) again, so that
        verdicts that depend on history (the running median of the gradient norm, the vanishing
        streak) come out as if the run had never stopped. Call before the first ``step()``."""
        for r in records:
            groups = r["groups"]
            verdict = self._judge.judge(r["step"], r.get("loss"), r["global_grad_norm"], r["global_weight_norm"],
                                        [g["grad_norm"] for g in groups], [g["weight_norm"] for g in groups])
            self._note_verdict(verdict)
            self._earlier.append(r)
            self._next_step = r["step"] + 1

    def verdict(self) -> Verdict:
        """The verdict of the latest recorded step (waits for pending records)."""
        self._drain(block=True)
        if self._last_verdict is None:
            return Verdict("healthy", "no step recorded yet", -1)
        return self._last_verdict

    def events(self) -> list[Verdict]:
        """Each change into a non-healthy verdict, in order (e.g. exploding, then nonfinite)."""
        self._drain(block=True)
        return list(self._events)

    def flush(self) -> None:
        """Read back all pending records and flush the JSONL file and TensorBoard writer."""
        self._drain(block=True)
        if self._closed:  # the files are flushed and closed already
            return
        if self._jsonl is not None:
            self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush, remove the activation hooks and close the files this monitor opened. Its records, verdict and
        report stay readable; a second ``close()`` does nothing, and ``step()`` or ``check_step()`` after it is
        refused (its files and hooks are gone)."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._tracker is not None:
            self._tracker.remove()
        self._execution_order.remove()
        self._step_start.remove()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        self._snapshot = None

    def _refuse_if_closed(self, call: str) -> None:
        if self._closed:
            raise UserError(f"monitor.{call} after monitor.close(): its records file and hooks are closed; create a "
                            "new GradientMonitor(model, ...) to monitor more steps (a JSONL file is appended to)")

    def __enter__(self) -> "GradientMonitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- non-finite handling -------------------------------------------------------------

    def grads_finite(self) -> bool:
        """Are the gradients and floating buffers (and, on a recorded step, loss and weights) finite?

        One synchronisation. Uses the tensor ``step()`` already built; on a step that ``every``
        skipped it runs one fused norm over the gradients (weights that overflowed in the last
        update show up there as NaN). Buffers are checked because BatchNorm running statistics
        can overflow while loss and gradients are finite.
        """
        return self._check()[0]

    @torch.no_grad()
    def _check(self) -> tuple[bool, float | None]:
        """``grads_finite``, and under ``rollback`` the step's loss, in the same one sync."""
        if self._last_vec is not None and self._last_vec_step == self._current_step:
            norms = [self._last_vec[:_HEAD]]
        else:
            grads = [p.grad for p in self._params if p.grad is not None]
            norms = [_norms_of(grads, self._acc)] if grads else []
        if self._step_start.floating:
            norms.append(_norms_of(self._step_start.floating, self._acc))
        if self._step_loss is not None:
            norms.append(self._step_loss.reshape(1))
        if not norms:
            return True, None
        values = torch.cat([n.to(self.device, self._acc) for n in norms])
        finite = torch.isfinite(values).all()
        if self._step_loss is None:
            return bool(finite), None
        finite_flag, loss = torch.stack([finite.to(self._acc), values[-1]]).tolist()  # still one sync
        return bool(finite_flag), loss

    def _nonfinite_parts(self) -> str:
        """Which of gradients, weights and buffers hold NaN/Inf (the failure path only)."""
        def finite(tensors) -> bool:
            return all(bool(torch.isfinite(t.coalesce().values() if t.is_sparse else t).all()) for t in tensors)

        parts = [name for name, tensors in (
            ("gradients", [p.grad for p in self._params if p.grad is not None]),
            ("weights", self._params), ("buffers (BatchNorm running statistics)", self._step_start.floating))
            if not finite(tensors)]
        if parts:
            return f"non-finite {' and '.join(parts)}"
        recorded = self._last_vec is not None and self._last_vec_step == self._current_step
        loss = self._last_vec[0] if recorded else self._step_loss
        if loss is not None and not torch.isfinite(loss).all():
            return "non-finite loss"
        # Every element finite, yet a norm overflowed: float32 norms end at 3.4e38.
        return NORM_OVERFLOW

    def write_report(self, path: str | Path, last: int = 20) -> Path:
        """Write a JSON diagnostic report: verdict, events, non-finite location, recent records."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        verdict = self.verdict()
        report = {
            "step": self._current_step,
            "verdict": verdict.to_dict(),
            "events": [e.to_dict() for e in self._events],
            "skipped_steps": self.skipped_steps,
            "rollbacks": self.rollbacks,
            "nonfinite_location": self.last_report.to_dict() if self.last_report is not None else None,
            "thresholds": asdict(self.thresholds),
            "groups": [{"name": g.name, "depth_index": g.depth_index, "params": len(g.param_names)}
                       for g in self.groups],
            "group_order": self.group_order,
            "recent_records": [json.loads(dumps(r)) for r in self.records()[-last:]],
        }
        write_json(path, report)
        return path
