"""What the trainer adapters share: the monitor's records as logger scalars, keeping an LR
scheduler in line with a rollback, and the end-of-run report.

Nothing here knows a trainer; the adapters only decide *when* to call these.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Iterable

import torch

from ..diagnostics import GradientMonitor, gradient_table
from ..diagnostics.choices import POLICIES
from ..diagnostics.records import trim_monitor_records
from ..diagnostics.verdicts import KINDS
from ..errors import UserError, writing

JSONL_NAME, REPORT_NAME, TABLE_NAME = "gradients.jsonl", "gradient_report.json", "gradient_table.txt"
# Set by the adapters themselves: a user value would point the files away from the run directory.
_RESERVED = ("model", "jsonl_path", "report_path")


def make_monitor(model, out: Path | None, every: int, options: dict, on_record, world_size: int = 1,
                 optimizers: int = 1, first_step: int = 0, resumed: bool = False) -> GradientMonitor:
    """A monitor writing ``gradients.jsonl`` into ``out`` (None: no files, e.g. a rank other than 0);
    ``first_step``: the number its first record will have; ``resumed``: the trainer restored a checkpoint."""
    if options.get("nonfinite") == "rollback" and world_size > 1:  # as `resnet-lab train` under torchrun
        raise UserError("nonfinite='rollback' runs in one process for now (each rank would judge its own loss "
                        "and could roll back alone); with several processes use 'skip' or 'stop'")
    if options.get("nonfinite") == "rollback" and optimizers > 1:
        raise UserError(f"nonfinite='rollback' works with one optimizer for now (this model has {optimizers}: a "
                        "rollback would put one optimizer's kept state into another); use 'skip' or 'stop'")
    check_monitor_options(options)
    user_hook = options.pop("on_verdict", None)

    def on_verdict(verdict, record):
        on_record(record)
        if user_hook is not None:
            user_hook(verdict, record)

    jsonl = out / JSONL_NAME if out is not None else None
    earlier = _earlier_records(jsonl, first_step, resumed)
    with writing(jsonl, "out"):  # out= a file, or a place not writable: one line
        monitor = GradientMonitor(model, every=every, on_verdict=on_verdict, jsonl_path=jsonl,
                                  report_path=out / REPORT_NAME if out is not None else None, **options)
    monitor.continue_from(earlier)  # verdicts that depend on history go on as if the fit had not stopped
    return monitor


def check_monitor_options(options: dict) -> dict:
    """The ``GradientMonitor`` keywords a callback was given, checked when it is made rather than deep
    inside the trainer's start: a misspelt keyword or policy is one line."""
    taken = [k for k in _RESERVED if k in options]
    if taken:
        raise UserError(f"{', '.join(taken)} is set by the callback; pass out=DIRECTORY to choose where files go")
    known = [k for k in inspect.signature(GradientMonitor.__init__).parameters if k not in ("self", *_RESERVED)]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise UserError(f"{', '.join(map(repr, unknown))}: not a GradientMonitor keyword; it takes {', '.join(known)}")
    if options.get("nonfinite", "warn") not in POLICIES:
        raise UserError(f"nonfinite={options['nonfinite']!r} is not valid; choose one of: {', '.join(POLICIES)}")
    return options


def _earlier_records(jsonl: Path | None, first_step: int, resumed: bool) -> list[dict]:
    """A resumed fit's records before ``first_step`` (those of the steps it replays are dropped). A new
    fit refuses a folder holding another run's: its records would mix into them and its report replace theirs."""
    if jsonl is None or not jsonl.is_file() or not jsonl.stat().st_size:
        return []
    if not resumed:
        raise UserError(f"{jsonl.parent} already holds the {JSONL_NAME} of an earlier run, which this new one "
                        "would mix its records into (and replace its report); give another out= (or output or log "
                        "directory), or delete that run's gradient files")
    return trim_monitor_records(jsonl, first_step)


def scalars(record: dict, prefix: str = "gradients/") -> dict[str, float]:
    """One monitor record as flat scalars for a logger (TensorBoard, CSV, W&B...).

    The verdict is a number, its index in ``KINDS`` (0 healthy, 1 vanishing, 2 exploding,
    3 nonfinite), since loggers take numbers only; the JSONL file has it in words.
    """
    out = {f"{prefix}global_grad_norm": record["global_grad_norm"],
           f"{prefix}global_weight_norm": record["global_weight_norm"],
           f"{prefix}verdict": float(KINDS.index(record["verdict"]))}
    for g in record["groups"]:
        name = f"{g['depth_index']:02d}.{g['name']}"
        for quantity in ("grad_norm", "update_ratio"):
            if g[quantity] is not None:
                out[f"{prefix}{quantity}/{name}"] = g[quantity]
    return out


class SchedulerFollower:
    """Keeps LR schedulers in line with the monitor's rollbacks.

    A rollback multiplies each param group's lr by a factor (``monitor.lr_scale`` is the product
    so far); a scheduler that recomputes the lr from its base values (LambdaLR, OneCycleLR, the
    Hugging Face linear schedule) would undo that at its next step, so its base values are
    scaled by the same factor.
    """

    def __init__(self):
        self.applied = 1.0

    def follow(self, monitor: GradientMonitor, schedulers: Iterable) -> None:
        scale = getattr(monitor, "lr_scale", 1.0)
        if scale == self.applied:
            return
        factor, self.applied = scale / self.applied, scale
        for scheduler in schedulers:
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [lr * factor for lr in scheduler.base_lrs]
            for group in getattr(getattr(scheduler, "optimizer", None), "param_groups", []):
                for key in ("initial_lr", "max_lr", "min_lr"):  # OneCycleLR's own base values
                    if isinstance(group.get(key), float):
                        group[key] *= factor


def monitor_state(monitor: GradientMonitor | None, kept: bool = True) -> dict:
    """What a resumed fit needs from a trainer's checkpoint to give up and roll back where this one would
    have: the skip streak; under rollback, the lr scale, the rollbacks so far, the recent losses and
    (``kept``) the kept state's tensors."""
    if monitor is None:
        return {}
    state = {"skip_streak": monitor.skip_streak}
    if monitor.policy == "rollback":
        state["rollback"] = monitor.rollback_state_dict()
        if not kept:
            state["rollback"]["kept"] = None
    return state


def restore_monitor_state(monitor: GradientMonitor, follower: SchedulerFollower, state: dict) -> None:
    """Put back what ``monitor_state`` kept, into the monitor of a fit just resumed."""
    monitor.skip_streak = state.get("skip_streak", 0)
    # A fit resumed under another policy has no rollback state to take.
    if "rollback" in state and monitor.policy == "rollback":
        monitor.load_rollback_state_dict(state["rollback"])
        follower.applied = monitor.lr_scale  # the restored schedulers have it already


def drop_step(optimizer) -> None:
    """Make the coming ``optimizer.step()`` a no-op: torch optimizers leave a parameter whose
    ``.grad`` is None untouched (no weight decay, no momentum or Adam moment update, no step count)."""
    optimizer.zero_grad(set_to_none=True)


def write_final_report(monitor: GradientMonitor, out: Path) -> list[Path]:
    """The end-of-run report of the Lightning and Hugging Face callbacks: the JSON diagnostic report,
    the per-group table, and the gradient-flow, heat-map and loss plots (PNG)."""
    out.mkdir(parents=True, exist_ok=True)
    records = monitor.records()
    paths = [monitor.write_report(out / REPORT_NAME)]
    if not records:
        return paths
    (out / TABLE_NAME).write_text(gradient_table(records) + "\n", encoding="utf-8")
    paths.append(out / TABLE_NAME)
    from ..diagnostics import plots  # matplotlib: only when a report is written

    paths += plots.plot_gradient_flow({"mean over recorded steps": records}, out / "gradient_flow.png")
    paths += plots.plot_heatmap(records, out / "gradient_heatmap.png")
    paths += plots.plot_loss(records, monitor.events(), out / "gradient_loss.png")
    return paths


def unscale_loss(loss: torch.Tensor | None, scaler) -> torch.Tensor | None:
    """The loss as the model computed it, from the scaled loss a fp16 loss scaler backpropagates."""
    if loss is None or scaler is None or not scaler.is_enabled():
        return loss
    return loss.detach() / scaler.get_scale()
