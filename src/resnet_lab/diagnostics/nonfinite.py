"""Finding where a NaN or Inf came from, and keeping it out of checkpoints.

``locate_nonfinite`` re-runs one batch with hooks on every module and names the first
module that *produced* a non-finite value:

* forward: the first module (in execution order) whose output is non-finite while its
  inputs were finite. Forward hooks fire when a module *finishes*, so a NaN made by
  ``layer2.1.conv2`` is reported as ``layer2.1.conv2``, not as ``layer2``; a NaN made by
  a block's own code between its children (``out + identity``, a hook on the block) is
  reported as the block, because its children all had finite outputs.
* backward: the first module (in backward order) whose gradient with respect to its
  inputs (or its own parameters) is non-finite while the gradient arriving at its outputs
  was finite. Each module's inputs are replaced by fresh views for the re-run, so that the
  gradient seen is the one this module alone sends back (views cost no memory).

Special names: ``"<input>"`` (the batch itself is non-finite), ``"<loss>"`` (the model's
output is finite but the loss, or the loss's gradient, is not) and ``""`` (the root
module's own code). ``phase="weights"`` means the weights were already non-finite, so no
re-run is needed; ``phase="none"`` means the re-run was finite (not reproducible).

Hooks exist only during the re-run and are removed afterwards; the model's buffers (e.g.
BatchNorm running statistics), ``.grad`` fields and the RNG state are restored, so the
re-run has no side effects. The steady state pays nothing.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn


@dataclass
class NonFiniteReport:
    """Where a non-finite value first appeared.

    Attributes:
        module_name: dotted module name (``"layer2.1"``), or ``"<input>"``, ``"<loss>"``,
            ``""`` (the root module's own code); None when nothing was found.
        phase: ``"forward"``, ``"backward"``, ``"weights"`` or ``"none"``.
        step: the training step, when known.
        tensor: which tensor: ``"output"``, ``"output[1]"``, ``"grad_input[0]"``,
            ``"weight.grad"``, ``"weight"``, ...
        stats: ``{shape, numel, nan_count, inf_count, min, max, mean}`` of that tensor
            (min/max/mean over its finite elements; None if it has none).
        module_type: the module's class name, when it is a module.
    """

    module_name: str | None
    phase: str
    step: int | None = None
    tensor: str | None = None
    stats: dict = field(default_factory=dict)
    module_type: str | None = None

    @property
    def message(self) -> str:
        at = f" at step {self.step}" if self.step is not None else ""
        if self.module_name is None:
            return (f"re-running the batch{at} gave only finite values: the non-finite value is not "
                    "reproducible from this batch and these weights (non-deterministic op, or it came "
                    "from the optimizer state)")
        s = self.stats
        counts = f"{s.get('nan_count', 0)} NaN, {s.get('inf_count', 0)} Inf of {s.get('numel', '?')}"
        where = {"": "the model's own forward code"}.get(self.module_name, self.module_name)
        kind = f" ({self.module_type})" if self.module_type else ""
        what = {"forward": "produced a non-finite", "backward": "produced a non-finite gradient",
                "weights": "holds a non-finite"}.get(self.phase, "has a non-finite")
        return (f"{where}{kind} {what} {self.tensor}{at}: {counts} values, shape {s.get('shape')}, "
                f"finite min {_fmt(s.get('min'))} max {_fmt(s.get('max'))} mean {_fmt(s.get('mean'))}")

    def to_dict(self) -> dict:
        return {**asdict(self), "message": self.message}

    def __str__(self) -> str:
        return self.message


class NonFiniteError(RuntimeError):
    """Raised by the ``stop`` policy. The optimizer step was *not* applied, so the model and
    optimizer still hold the last finite state: it is safe to save a checkpoint, then exit
    with ``exit_code``."""

    exit_code = 3

    def __init__(self, message: str, *, step: int | None = None, report: NonFiniteReport | None = None):
        super().__init__(message)
        self.step = step
        self.report = report


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def tensor_stats(t: torch.Tensor) -> dict:
    """Counts of NaN/Inf and min/max/mean of the finite elements (one sync; for reports only)."""
    t = t.detach()
    x = t.double() if t.is_floating_point() else t
    finite = torch.isfinite(x)
    values = x[finite]
    out = {
        "shape": list(t.shape),
        "numel": t.numel(),
        "nan_count": int(torch.isnan(x).sum()),
        "inf_count": int(torch.isinf(x).sum()),
        "min": None, "max": None, "mean": None,
    }
    if values.numel():
        out.update(min=float(values.min()), max=float(values.max()), mean=float(values.mean()))
    return out


def _tensors(obj, label: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """(label, tensor) for every floating tensor nested in tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield label, obj
    elif isinstance(obj, (tuple, list)):
        for i, item in enumerate(obj):
            yield from _tensors(item, f"{label}[{i}]")
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _tensors(item, f"{label}[{key!r}]")


def _all_finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t.detach()).all())


def nonfinite_state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[str]:
    """Names of parameters, floating buffers and optimizer-state tensors that hold NaN/Inf.

    Call it before writing a checkpoint (one synchronisation): an empty list means the state
    is safe to save. Optimizer state entries are named ``optimizer.<param name>.<key>``.
    """
    named: list[tuple[str, torch.Tensor]] = list(model.named_parameters())
    named += [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]
    if optimizer is not None:
        names = {id(p): n for n, p in model.named_parameters()}
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    named.append((f"optimizer.{names.get(id(param), '?')}.{key}", value))
    if not named:
        return []
    flags = torch.stack([torch.isfinite(t.detach()).all().to(named[0][1].device) for _, t in named])
    return [n for (n, _), ok in zip(named, flags.tolist()) if not ok]


def _call(model: nn.Module, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


class _Tracer:
    """The hooks of one re-run: forward origin, and per-call gradient events for backward."""

    def __init__(self, model: nn.Module):
        self.modules = dict(model.named_modules())
        self.names = {id(m): n for n, m in self.modules.items()}
        self.forward_origin: tuple[str, str, torch.Tensor] | None = None
        self.calls: list[dict] = []           # one per module call, in forward order
        self.param_events: list[tuple[int, str, torch.Tensor]] = []
        self._seq = itertools.count()
        self._open: dict[int, list[dict]] = {}  # module id -> stack of unfinished calls
        self._handles = []
        for module in self.modules.values():
            self._handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._post, with_kwargs=True))
        for name, p in model.named_parameters():
            if p.requires_grad:
                self._handles.append(p.register_hook(self._param_hook(name)))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, module, args, kwargs):
        call = {"name": self.names[id(module)], "module": module, "grad_in": None, "grad_out": [],
                "in_finite": all(_all_finite(t) for _, t in _tensors((args, kwargs)))}
        self.calls.append(call)
        self._open.setdefault(id(module), []).append(call)
        if not torch.is_grad_enabled():
            return None

        def wrap(obj, label):
            # A fresh view per input gets its own autograd node, so its gradient is what
            # *this* module sends back (not the sum over every consumer of the tensor), at
            # no memory cost. Autograd forbids in-place ops on some views (of leaves, of
            # custom Function outputs), so leaves and tensors that are views get a clone.
            if isinstance(obj, torch.Tensor) and obj.requires_grad and obj.is_floating_point():
                alias = obj.clone() if obj.is_leaf or obj._is_view() else obj.view_as(obj)
                alias.register_hook(self._grad_in_hook(call, f"grad_input{label}"))
                return alias
            if isinstance(obj, tuple):
                return tuple(wrap(o, f"{label}[{i}]") for i, o in enumerate(obj))
            if isinstance(obj, list):
                return [wrap(o, f"{label}[{i}]") for i, o in enumerate(obj)]
            return obj

        new_args = tuple(wrap(a, f"[{i}]") for i, a in enumerate(args))
        new_kwargs = {k: wrap(v, f"[{k!r}]") for k, v in kwargs.items()}
        return new_args, new_kwargs

    def _post(self, module, args, kwargs, output):
        call = self._open[id(module)].pop()
        outputs = list(_tensors(output))
        if self.forward_origin is None and call["in_finite"]:
            # Its own buffers too: BatchNorm running statistics overflow before any output does.
            own = [(n, b) for n, b in module.named_buffers(recurse=False) if b.is_floating_point()]
            for label, t in [(f"output{label}", t) for label, t in outputs] + own:
                if not _all_finite(t):
                    self.forward_origin = (call["name"], label, t.detach().clone())
                    break
        for _, t in outputs:
            if t.requires_grad:
                t.register_hook(self._grad_out_hook(call))
        return None

    def _grad_in_hook(self, call, label):
        def hook(grad):
            if grad is not None and call["grad_in"] is None and not _all_finite(grad):
                call["grad_in"] = (next(self._seq), label, grad.detach().clone())
        return hook

    def _grad_out_hook(self, call):
        def hook(grad):
            if grad is not None:
                ok = _all_finite(grad)
                call["grad_out"].append(ok)
                if not ok and "bad_grad_out" not in call:
                    call["bad_grad_out"] = grad.detach().clone()
        return hook

    def _param_hook(self, name):
        def hook(grad):
            if grad is not None and not _all_finite(grad):
                self.param_events.append((next(self._seq), name, grad.detach().clone()))
        return hook

    def backward_origin(self) -> tuple[str, str, torch.Tensor] | None:
        """(module name, tensor label, tensor) of the earliest module in backward order whose
        outgoing gradient is non-finite while the gradient it received was finite."""
        candidates: list[tuple[int, str, str, torch.Tensor]] = []
        clean_out: dict[str, bool] = {}
        for call in self.calls:
            ok = all(call["grad_out"])
            clean_out[call["name"]] = clean_out.get(call["name"], True) and ok
            if call["grad_in"] is not None and ok:
                seq, label, t = call["grad_in"]
                candidates.append((seq, call["name"], label, t))
        for seq, pname, t in self.param_events:
            owner, _, leaf = pname.rpartition(".")
            if clean_out.get(owner, True):
                candidates.append((seq, owner, f"{leaf}.grad", t))
        if not candidates:
            return None
        _, name, label, t = min(candidates, key=lambda c: c[0])
        return name, label, t


def locate_nonfinite(
    model: nn.Module,
    inputs: Any,
    targets: Any = None,
    loss_fn: Callable | None = None,
    *,
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    step: int | None = None,
) -> NonFiniteReport:
    """Re-run one batch with hooks and name the module where a NaN/Inf first appeared.

    Args:
        model: the model, in the mode (train/eval) of the failing step.
        inputs: the batch given to the model (a tensor; a tuple/list is unpacked as
            positional arguments, a dict as keyword arguments).
        targets, loss_fn: ``loss = loss_fn(output, targets)``. Without ``loss_fn`` the output
            must be the scalar loss; without a loss only the forward pass is checked.
        forward_fn: ``forward_fn(model, inputs) -> output`` for models called differently.
        step: the step number to put in the report.

    Returns a ``NonFiniteReport`` (``phase="none"`` if the re-run was finite). The model's
    buffers, gradients and the RNG state are restored afterwards.
    """
    found = _nonfinite_weight(model, step) or _nonfinite_input(inputs, step)
    if found is not None:
        return found
    with _side_effect_free(model):
        tracer = _Tracer(model)
        try:
            return _rerun(tracer, model, inputs, targets, loss_fn, forward_fn, step)
        finally:
            tracer.remove()


def _nonfinite_weight(model: nn.Module, step: int | None) -> NonFiniteReport | None:
    """The first non-finite parameter, found without running anything."""
    params = dict(model.named_parameters())
    for name in nonfinite_state(model):
        if name in params:
            owner, _, leaf = name.rpartition(".")
            return NonFiniteReport(owner, "weights", step, leaf, tensor_stats(params[name]),
                                   type(model.get_submodule(owner)).__name__)
    return None


def _nonfinite_input(inputs: Any, step: int | None) -> NonFiniteReport | None:
    for label, t in _tensors(inputs):
        if not _all_finite(t):
            return NonFiniteReport("<input>", "forward", step, f"inputs{label}", tensor_stats(t))
    return None


@contextmanager
def _side_effect_free(model: nn.Module) -> Iterator[None]:
    """Grad mode on, ``.grad`` fields cleared; afterwards the buffers, ``.grad`` fields and RNG state
    are as they were, whatever the re-run did."""
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    grads = {p: p.grad for p in model.parameters()}
    devices = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"})
    try:
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            for p in grads:
                p.grad = None
            yield
    finally:
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        for p, g in grads.items():
            p.grad = g


def _rerun(tracer: _Tracer, model: nn.Module, inputs, targets, loss_fn, forward_fn, step) -> NonFiniteReport:
    """Forward (and, with a scalar loss, backward) under ``tracer``'s hooks: the first origin found."""
    output = forward_fn(model, inputs) if forward_fn is not None else _call(model, inputs)
    if tracer.forward_origin is not None:
        name, label, t = tracer.forward_origin
        return NonFiniteReport(name, "forward", step, label, tensor_stats(t), _type(tracer, name))
    loss = loss_fn(output, targets) if loss_fn is not None else output
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        return NonFiniteReport(None, "none", step)  # forward finite; nothing to differentiate
    if not _all_finite(loss):
        return NonFiniteReport("<loss>", "forward", step, "loss", tensor_stats(loss))
    if not loss.requires_grad:
        return NonFiniteReport(None, "none", step)
    loss.backward()
    root = next((c for c in tracer.calls if c["name"] == ""), None)
    if root is not None and not all(root["grad_out"]):
        return NonFiniteReport("<loss>", "backward", step, "gradient of the model output",
                               tensor_stats(root["bad_grad_out"]))
    origin = tracer.backward_origin()
    if origin is not None:
        name, label, t = origin
        return NonFiniteReport(name, "backward", step, label, tensor_stats(t), _type(tracer, name))
    return NonFiniteReport(None, "none", step)


def _type(tracer: _Tracer, name: str) -> str | None:
    module = tracer.modules.get(name)
    return type(module).__name__ if module is not None else None
