"""A run's directory: what `resnet-lab train` writes there, and the rules that keep it safe.

Files (rank 0 only): ``config.json``, ``metrics.jsonl`` (one row per epoch), ``steps.jsonl`` (the
finer training curve, one row every ``--log-every`` steps, when set), ``events.json``
(non-finite steps, fp16 overflows, graph fallback), ``gradients.jsonl`` and
``nonfinite_report.json`` (the gradient monitor), ``tb/`` (TensorBoard), ``last.pt``,
``best.pt``, and ``result.json`` once the run has finished (steps, best accuracy, the
trainer's timings, the settings and hardware as run). With these the report
(``report.html``, ``resnet-lab report``) is drawn from the folder alone, never from a
checkpoint. Everything is written atomically; a checkpoint never holds NaN/Inf; after a
resume every record exists once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from ..diagnostics.records import trim_monitor_records
from ..errors import UserError, why_not_writable
from ..files import as_path, atomic_write_text, shell_arg, try_lock, write_json
from ..runtime import hardware_info, is_main_process
from .checkpoint import all_finite, load_checkpoint, save_checkpoint
from .config import RESUMABLE, TrainConfig, plain_values, recipe_defaults

# Scalars of a metrics row that go to TensorBoard, by chart group.
_TB_GROUPS = {"train_loss": "loss", "test_loss": "loss", "train_acc": "accuracy", "test_acc": "accuracy",
              "ema_test_acc": "accuracy", "tta_test_acc": "accuracy", "lr": "lr", "images_per_s": "speed"}


def prepare_run_dir(out: str | None, resuming: bool) -> Path | None:
    """Refuse to write over a run that can be continued unless resuming it; fail early if the
    folder cannot be written (before data and model are set up)."""
    if out is None:
        return None
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; give a directory")
    if not resuming:
        _check_nothing_to_lose(run_dir)
    try:
        if not run_dir.exists():
            if not is_main_process():
                # Rank 0 makes it, and removes it again if the run is refused: made first by another rank, it
                # would look to rank 0 like a folder that was there before, and outlive a refused run.
                return run_dir
            _MADE.add(run_dir.resolve())
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
        _hold_run_lock(run_dir)
        # An atomic write that a kill interrupted: cleared by the lock's holder alone. Under torchrun the other
        # ranks hold no lock, and the folder may be another run's, whose write in progress this would break.
        for leftover in run_dir.glob(".*.tmp") if is_main_process() else ():
            leftover.unlink()
    except OSError as err:
        raise UserError(f"cannot write the run directory {run_dir} ({why_not_writable(run_dir, err)}); "
                        "choose a writable --out") from None
    return run_dir


# What an attempt that never saved a checkpoint leaves, dropped when the run starts again (``_clear_records``).
_RECORDS = ("metrics.jsonl", "steps.jsonl", "gradients.jsonl", "events.json", "nonfinite_report.json",
            "timings.json", "result.json", "report.html", "report.log")
RUN_FILES = ("config.json", *_RECORDS, "last.pt", "best.pt", "tb")  # every file a run writes


def _check_nothing_to_lose(run_dir: Path) -> None:
    """A new run may start in an empty folder, or over an earlier attempt that never saved a
    checkpoint (its config.json and records, no weights); anything else it would write over is refused."""
    if (run_dir / "last.pt").exists():
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {shell_arg(run_dir)} or choose "
                        "another --out")
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    kept = [name for name in ("best.pt", "result.json") if name in present]
    if kept or (present and "config.json" not in present):
        what = f"a finished run ({', '.join(kept)})" if kept else f"files a run would replace ({', '.join(present)})"
        raise UserError(f"{run_dir} already holds {what}; choose another --out (or delete them to train there)")
    if present:
        try:  # an attempt's own settings, or another tool's config.json that the run would write over?
            read_run_config(run_dir / "config.json")
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as err:
            raise UserError(f"{run_dir} already holds a config.json that is not a run's settings ({err}); choose "
                            "another --out (or delete it to train there)") from None


def read_run_config(path: Path) -> TrainConfig:
    """The settings in a run's ``config.json``. ``ValueError`` (or ``TypeError``) when the file is not JSON, or is
    not an object naming its model: damaged, or not a run's (another tool's config.json, say), whose defaults
    would otherwise stand in for the run's settings."""
    return TrainConfig.from_dict(_read_settings(path))


def _read_settings(path: Path) -> dict:
    """config.json's values as written; ``ValueError`` when they are not an object naming its model."""
    values = json.loads(path.read_text())
    if not isinstance(values, dict):
        raise ValueError(f"a JSON {type(values).__name__}, not an object")
    if not isinstance(values.get("model"), str):
        raise ValueError("no model name in it")
    return values


_HELD_LOCKS: dict[Path, int] = {}  # run directory -> the lock this process holds on it
_MADE: set[Path] = set()  # run directories this process made (removed again if the run wrote nothing there)


def _hold_run_lock(run_dir: Path) -> None:
    """One process trains a run directory at a time (under torchrun: rank 0 holds it for the group).
    Re-entrant within a process, released by ``release_run_dir`` (or the process's end)."""
    key = run_dir.resolve()
    if not is_main_process() or key in _HELD_LOCKS:
        return
    fd = try_lock(run_dir)  # on the folder itself: a refused run leaves no file behind
    if fd is None:
        raise UserError(f"another process is training {run_dir} now; wait for it to end (then --resume it "
                        "if it stopped), or choose another --out")
    _HELD_LOCKS[key] = fd


def release_run_dir(run_dir: Path | None) -> None:
    """Unlock the folder; one that this process made and a refused run (a bad model option, say) left
    empty is removed, so the same command can be run again as it was."""
    if run_dir is None:
        return
    key = run_dir.resolve()
    fd = _HELD_LOCKS.pop(key, None)
    if fd is not None:
        os.close(fd)
    if key in _MADE:
        _MADE.discard(key)
        with contextlib.suppress(OSError):  # not empty: the run's files stay
            run_dir.rmdir()


def _resume_path(resume: str | Path) -> Path:
    return as_path(resume, "resume", give="the run directory or its checkpoint")


def run_dir_of(resume: str | Path) -> Path:
    """The run directory ``--resume`` names: the folder itself, or a checkpoint's folder."""
    path = _resume_path(resume)
    return path if path.is_dir() else path.parent


def saved_run(resume: str | Path, log=lambda _: None) -> tuple[TrainConfig, dict | None]:
    """The settings of the run in ``resume`` (a run directory or a checkpoint) and its checkpoint.

    A run directory that has ``config.json`` but no ``last.pt`` stopped before its first
    checkpoint: its own settings, and checkpoint None (it starts again from step 0).
    """
    path = _resume_path(resume)
    if path.is_dir() and not (path / "last.pt").exists() and (path / "config.json").is_file():
        try:
            return read_run_config(path / "config.json"), None
        except (UnicodeDecodeError, ValueError, TypeError) as err:
            raise UserError(f"{path / 'config.json'} is damaged ({err}); start a new run with another --out") from None
    checkpoint = load_checkpoint(resume)
    _check_same_run(path / "last.pt" if path.is_dir() else path, run_dir_of(path) / "config.json",
                    checkpoint["config"], log)
    return TrainConfig.from_dict(checkpoint["config"]), checkpoint


def load_run_config(run: str | Path) -> TrainConfig:
    """The settings of the run in ``run`` (a run directory or one of its checkpoints): from Python, change
    only those in ``RESUMABLE`` (``device``, ...) and pass it to ``train(config, resume=run)``."""
    path = Path(run)
    config = None
    if path.is_dir() and (path / "config.json").is_file():  # no need to read the weights
        try:
            config = read_run_config(path / "config.json")
        except (OSError, UnicodeDecodeError, ValueError, TypeError):
            pass  # damaged: the checkpoint holds the same settings
    config = config or saved_run(run)[0]
    config.out = str(run_dir_of(path))  # where the run is now (its folder may have moved)
    return config


def resumed_config(resume: str | Path, config: TrainConfig | None, log) -> tuple[TrainConfig, dict | None]:
    """The run's own settings and its checkpoint. Those in ``RESUMABLE`` come from ``config`` (``None``:
    their defaults, as ``train --resume`` takes them); any other setting ``config`` changes is refused."""
    saved, checkpoint = saved_run(resume, log)
    if config is None:
        config = recipe_defaults(saved.recipe)
    else:
        _check_unchanged(resume, saved, config)
    path = Path(resume)
    if checkpoint is None:
        log(f"note: {resume} stopped before its first checkpoint; starting it again from step 0")
    elif path.is_file() and path.name != "last.pt" and (path.parent / "last.pt").exists():
        log(f"note: resuming from {path.name} (step {checkpoint['step']}), not last.pt: the steps after it are "
            "trained again and last.pt is replaced")
    for name in RESUMABLE:
        setattr(saved, name, getattr(config, name))
    saved.out = str(run_dir_of(path))
    return saved, checkpoint


def _check_unchanged(resume: str | Path, saved: TrainConfig, given: TrainConfig) -> None:
    """A resumed run keeps its settings: a config that changes one (a different model, lr, ...) is
    refused rather than ignored."""
    if given.out is not None and Path(given.out).resolve() != run_dir_of(resume).resolve():
        raise UserError(f"resume={str(resume)!r} continues the run in {run_dir_of(resume)}, but config.out is "
                        f"{str(given.out)!r}; leave out as None (a resumed run stays in its folder)")
    given = dataclasses.replace(given)
    plain_values(given)
    own, new = as_read_back(saved.to_dict()), as_read_back(given.to_dict())
    changed = [k for k in own if k not in (*RESUMABLE, "out") and own[k] != new[k]]
    if changed:
        differences = ", ".join(f"{k} {new[k]!r} (the run has {own[k]!r})" for k in changed[:3])
        raise UserError(f"a resumed run keeps its own settings, but the config given changes {differences}"
                        f"{', ...' if len(changed) > 3 else ''}; pass config=None, or load_run_config("
                        f"{str(resume)!r}) with only {', '.join(RESUMABLE)} changed, or train a new run elsewhere")


def as_read_back(values):
    """As config.json holds them: tuples are lists."""
    return json.loads(json.dumps(values))


def _check_same_run(checkpoint_path: Path, path: Path, saved: dict, log) -> None:
    """The folder's config.json describes the checkpoint's run: a last.pt from another run would mix
    two runs' records in one folder. A missing or damaged config.json is rewritten when the run starts."""
    try:
        on_disk = _read_settings(path)
    except (OSError, UnicodeDecodeError, ValueError):
        log(f"warning: {path} is missing or damaged; it is written again from the checkpoint")
        return
    differ = [k for k, v in saved.items() if k in on_disk and k not in (*RESUMABLE, "out")
              and as_read_back(v) != on_disk[k]]
    if differ:
        k = differ[0]
        raise UserError(f"{checkpoint_path} and {path} describe different runs ({k} {saved[k]!r} vs {on_disk[k]!r}"
                        f"{', ...' if len(differ) > 1 else ''}); resume a checkpoint in its own run folder")


class RunFiles:
    """The files of one run; with no run directory (a library call) it writes nothing."""

    def __init__(self, run_dir: Path | None, c: TrainConfig, parts, state, ctx, device, checkpoint: dict | None,
                 log):
        resumed = checkpoint is not None
        self.run_dir, self.c, self.parts, self.state, self.ctx, self.device, self.log = \
            run_dir, c, parts, state, ctx, device, log
        self.saved_step = state.step if resumed else None  # the step last.pt holds
        self._saved_at = time.perf_counter()
        self.writer = None
        writes = run_dir is not None and ctx.is_main
        earlier = []  # the gradient records before the checkpoint: the monitor judges them again
        if writes:
            if not resumed:
                _clear_records(run_dir)
            write_json(run_dir / "config.json", self._config_record())  # a resumed run's too: restored if lost
            # Exactly once: the steps replayed since the checkpoint are recorded again.
            earlier = trim_monitor_records(run_dir / "gradients.jsonl", state.step)
            if c.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                # Events logged after the checkpoint are hidden. A checkpoint at an epoch's end comes after
                # that epoch's row, logged at the same step: the purge starts one step later, or the row is lost.
                after = state.step + (1 if resumed and not state.batch_in_epoch else 0)
                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=after)
        self.monitor = _make_monitor(parts.model, c, run_dir if writes else None, self.writer)
        if c.on_nonfinite == "rollback" and parts.ema is not None:  # the average goes back with the weights
            self.monitor.roll_back_with(parts.ema.model)
        if self.monitor is not None and resumed and earlier:
            self.monitor.continue_from(earlier)
        if c.on_nonfinite == "rollback" and checkpoint is not None:
            self.monitor.load_rollback_state_dict(checkpoint["rollback"])
        if c.on_nonfinite == "skip" and checkpoint is not None:
            self.monitor.skip_streak = checkpoint.get("skip_streak", 0)

    def _config_record(self) -> dict:
        p = self.parts
        return {**self.c.to_dict(), "resolved": {"effective_lr": self.c.effective_lr, "total_steps": p.total_steps,
                                                 "steps_per_epoch": p.steps_per_epoch, "epochs": p.num_epochs,
                                                 "params": p.params},
                "data_info": p.info, "hardware": hardware_info(self.device), "world_size": self.ctx.world_size}

    def save(self, name: str) -> bool:
        """Write ``name``.pt. Called on every rank at the same step; rank 0 writes. False when the
        state is not finite: a checkpoint never holds NaN/Inf (BatchNorm buffers included)."""
        if self.run_dir is None:
            return False
        state = self.state.state_dict(self.parts, self.c, self.device, self.ctx)
        if self.c.on_nonfinite == "rollback":  # the state to go back to travels with the run
            state["rollback"] = self.monitor.rollback_state_dict()
        if self.c.on_nonfinite == "skip":
            state["skip_streak"] = self.monitor.skip_streak
        if not all_finite(state["model"]) or (state["ema"] is not None and not all_finite(state["ema"])):
            self.state.events.append({"step": self.state.step, "kind": "not_saved",
                                      "detail": f"{name}: non-finite weights"})
            self.log(f"warning: weights are not finite at step {self.state.step}; {name}.pt was not overwritten")
            return False
        if self.ctx.is_main:
            if self.monitor is not None:
                self.monitor.flush()  # every record before this step is on disk before the checkpoint
            self.write_events()
            save_checkpoint(self.run_dir / f"{name}.pt", state)
        if name == "last":
            self.saved_step, self._saved_at = self.state.step, time.perf_counter()
        return True

    def seconds_since_save(self) -> float:
        """Since ``last.pt`` was last written by this process (or since the run started)."""
        return time.perf_counter() - self._saved_at

    def write_epoch(self, row: dict) -> None:
        """The epoch's metrics row: metrics.jsonl (rewritten whole, atomically: never half a line),
        steps.jsonl (the finer curve so far, with ``--log-every``) and TensorBoard scalars. With
        result.json, these hold all a finished run's results: its weights can go (a sweep's
        ``read_status`` and the experiments read them, not the checkpoint)."""
        if not self.ctx.is_main:
            return
        if self.run_dir is not None:
            atomic_write_text(self.run_dir / "metrics.jsonl", _jsonl(self.state.history))
            if self.state.step_history:
                atomic_write_text(self.run_dir / "steps.jsonl", _jsonl(self.state.step_history))
        if self.writer is not None:
            for key, group in _TB_GROUPS.items():
                if row.get(key) is not None:  # not on an epoch without evaluation, --ema or --tta
                    self.writer.add_scalar(f"{group}/{key}", row[key], row["step"])
            self.writer.flush()

    def write_result(self, timings: dict, run_time_s: float | None) -> None:
        """``result.json``: what a finished run ended with and the report needs besides the records.
        Its ``config`` is the run's as run: a resumed run's ``RESUMABLE`` settings may differ from
        config.json's; its ``hardware`` and ``timings`` are this process's (a resumed run may have
        moved); ``run_time_s`` is the run's over its ``processes`` (one after another); ``world_size``: the
        ranks that trained side by side under torchrun at the end (1 without torchrun)."""
        if self.run_dir is None or not self.ctx.is_main:
            return
        s = self.state
        write_json(self.run_dir / "result.json",
                   {"steps": s.step, "best_acc": s.best_acc if s.best_acc >= 0 else None, "timings": timings,
                    "run_time_s": run_time_s, "processes": s.processes, "world_size": self.ctx.world_size,
                    "config": self.c.to_dict(), "hardware": hardware_info(self.device)})

    def write_events(self) -> None:
        """events.json as the run's state holds them (none: no file), so that a file left by anything
        else (another run's, a damaged one) never outlives a checkpoint or a stop."""
        if self.run_dir is None or not self.ctx.is_main:
            return
        if self.state.events:
            write_json(self.run_dir / "events.json", self.state.events)
        else:
            (self.run_dir / "events.json").unlink(missing_ok=True)

    def checkpoint_note(self, kept: bool, unsaved: str = "the state was no longer finite") -> str:
        """What the run directory holds after a non-finite stop: said plainly, never assumed.
        ``unsaved``: why the current state was not kept."""
        last = self.run_dir / "last.pt" if self.run_dir is not None else None
        if last is None:
            return "nothing was saved (no run directory)"
        if kept:
            return f"{last} holds the last finite state (step {self.state.step})"
        if self.saved_step is not None:
            return f"{unsaved}; {last} keeps step {self.saved_step}"
        return f"{unsaved}, and none was saved before it: no checkpoint was written"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.monitor is not None:
            self.monitor.close()


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _clear_records(run_dir: Path) -> None:
    """A new run in a folder whose earlier attempt died before its first checkpoint: drop that
    attempt's records, so nothing of it is mistaken for this run's."""
    for name in _RECORDS:
        (run_dir / name).unlink(missing_ok=True)


def _make_monitor(model, c: TrainConfig, run_dir: Path | None, writer):
    """Per-layer gradient norms every ``monitor_every`` steps, and the NaN/Inf policy every step.

    ``--no-monitor`` drops the records, never the policy: skip/stop still check every step.
    """
    if not c.monitor and c.on_nonfinite == "warn":
        return None
    from ..diagnostics import GradientMonitor, Rollback

    records = run_dir is not None and c.monitor
    # The state to roll back to is kept every 10 steps and saved in each checkpoint (exact resume).
    rollback = (Rollback(c.rollback_factor, c.max_rollbacks, spike_factor=c.spike_factor or None)
                if c.on_nonfinite == "rollback" else None)
    return GradientMonitor(model, every=c.monitor_every if c.monitor else 0, nonfinite=c.on_nonfinite,
                           rollback=rollback,
                           tb_writer=writer if c.monitor else None,
                           jsonl_path=run_dir / "gradients.jsonl" if records else None,
                           report_path=run_dir / "nonfinite_report.json" if run_dir is not None else None)
