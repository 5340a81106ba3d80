"""The training loop: ``train(config)`` trains a zoo model and writes a run directory.

Read ``_train`` top to bottom: set up the run (``setup.py``) and restore it when resuming
(``state.py``), then each epoch runs its steps (``train_epoch``: forward, backward, diagnostics,
clip, optimiser step; with ``cuda_graph`` the whole step is one ``TrainStep`` call replayed from a
CUDA graph) and ends (``end_epoch``: evaluate, record, checkpoint). The step never synchronises
with the host except where a feature needs it (a progress bar refresh every 50 steps, the paper's
warm-up test, the skip/stop policies, fp16). What the run directory holds: ``run_files.py``.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..diagnostics import NonFiniteError
from ..errors import UserError
from ..files import shell_arg
from ..runtime import pick_device
from ..signals import StopSignals
from ..text import counted
from .config import TrainConfig, validate
from .distributed import init_distributed, launched_by_torchrun, lost_ranks, restart_count, shutdown
from .eager_step import EagerStep, warnings_to
from .evaluation import evaluate, evaluate_epoch
from .graphed_step import TrainStep, graph_blockers
from .run_files import RunFiles, prepare_run_dir, release_run_dir, resumed_config
from .schedules import lr_factor
from .setup import build_parts, callers_settings_kept, check_same_data, seed_everything, steep_warmup
from .state import RunState

__all__ = ["ReportInterrupted", "TrainResult", "TrainingInterrupted", "evaluate", "train"]


class OutputsNotFinite(NonFiniteError):
    """Finite weights whose evaluation loss is NaN/Inf (they overflow in the forward pass): a state
    that cannot classify, so it is not saved; last.pt keeps the one before."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved at the step boundary (``saved``), unless the run has no
    directory or its weights were not finite (``unsaved``: what its directory holds instead)."""

    def __init__(self, run_dir: Path | None, step: int, signum: int, unsaved: str | None = None):
        self.saved = run_dir is not None and unsaved is None
        self.note = ("checkpoint saved" if self.saved else unsaved or "no run directory, nothing saved")
        resume = f", continue with --resume {shell_arg(run_dir)}" if self.saved else ""
        super().__init__(f"interrupted at step {step}; {self.note}{resume}")
        self.run_dir, self.step, self.signum = run_dir, step, signum


class ReportInterrupted(TrainingInterrupted):
    """SIGINT/SIGTERM arrived while report.html was being drawn: every other file of the run is saved."""

    def __init__(self, run_dir: Path, signum: int):
        Exception.__init__(self, f"interrupted while drawing report.html; the run's files are saved in {run_dir} "
                                 f"('resnet-lab report {shell_arg(run_dir)}' draws the report; --resume continues "
                                 "a run that had not finished)")
        self.run_dir, self.step, self.signum = run_dir, None, signum
        self.saved, self.note = True, "the run's files are saved"


@dataclass
class TrainResult:
    run_dir: Path | None
    history: list[dict]
    model: nn.Module
    best_acc: float
    steps: int
    data_info: dict
    events: list[dict] = field(default_factory=list)
    step_history: list[dict] = field(default_factory=list)  # every ``log_every`` steps (kept across a resume)
    config: TrainConfig | None = None  # as run (a resumed run's own settings)
    device: str = "cpu"
    # Where this process's wall time went: setup (data, model, optimiser), training steps,
    # evaluation, bookkeeping (checkpoints, records, logs); then drawing the report (``report_s``,
    # after result.json, which leaves it out).
    timings: dict = field(default_factory=dict)
    # The whole run's time, over every process that trained it (each counted up to its last
    # checkpoint); None when a checkpoint of an earlier version kept none.
    run_time_s: float | None = None
    processes: int = 1
    ema_model: nn.Module | None = None  # the weight average, with ``config.ema``

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


class _SignalFlag(StopSignals):
    """SIGINT/SIGTERM as a flag the loop checks at each step boundary; a second one stops at once."""

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt
        super()._handle(signum, frame)


class _SignalStops(StopSignals):
    """SIGINT/SIGTERM stop at once (while drawing the report: nothing left to save)."""

    def _handle(self, signum, frame):
        super()._handle(signum, frame)
        raise KeyboardInterrupt


def train(config: TrainConfig | None, resume: str | Path | None = None, log: Callable[[str], None] | None = print,
          dataset=None) -> TrainResult:
    """Train ``config.model`` on ``config.data``; with ``resume`` (a run directory or checkpoint)
    continue that run exactly where it stopped, with the run's own settings: ``config`` None, or one that
    changes only those in ``RESUMABLE`` (``load_run_config(resume)`` gives the run's).

    ``dataset`` lets a caller that trains several models on the same data load it once.
    ``log``: progress lines (``None``: silent, as for the experiments).
    Under torchrun it trains with DistributedDataParallel; after torchrun restarts a failed
    group, the run resumes from its own ``last.pt``.
    """
    started = time.perf_counter()
    log = log or (lambda *_: None)
    if config is None and resume is None:
        raise UserError("train needs a TrainConfig (resolve_config(recipe, model=..., data=...)), or resume=RUN_DIR "
                        "to continue a run")
    if config is not None and not isinstance(config, TrainConfig):
        raise UserError(f"train takes a TrainConfig, got {type(config).__name__}: build one with "
                        "resolve_config(recipe, model=..., data=..., ...)")
    elastic_restart = restart_count() > 0 and config is not None and config.out is not None
    if resume is None and elastic_restart and (Path(config.out) / "last.pt").exists():
        resume = config.out
    checkpoint = None
    if resume is not None:
        config, checkpoint = resumed_config(resume, config, log)
    validate(config)
    c = config
    device = pick_device(c.device)
    if c.on_nonfinite == "rollback" and launched_by_torchrun():
        raise UserError("--on-nonfinite rollback runs in one process for now (each rank would judge its own "
                        "loss); under torchrun use skip or stop")
    if c.sync_bn and device.type == "cpu":
        raise UserError("--sync-bn needs GPUs (SyncBatchNorm has no CPU kernel); on CPUs use --norm group or none")
    # From here every refusal goes through release_run_dir, which removes the folder if this run made it.
    run_dir = prepare_run_dir(c.out, resuming=checkpoint is not None or elastic_restart)
    finished = _finished(checkpoint, run_dir)  # before the run: it writes result.json
    try:
        ctx, device = init_distributed(device, c.dist_timeout)
        log = log if ctx.is_main else (lambda *_: None)
        try:
            with callers_settings_kept(device):
                result = _train_then_shut_down(c, checkpoint, run_dir, device, ctx, log, dataset, started)
        except (TrainingInterrupted, NonFiniteError):
            _report(c.report, run_dir, ctx.is_main, log)  # a stopped run's too: its records so far, and why
            raise
        report_s = None if finished else _report(c.report, run_dir, ctx.is_main, log)  # it has one
        if report_s is not None:
            result.timings["report_s"] = report_s
        return result
    finally:
        release_run_dir(run_dir)


def _train_then_shut_down(c: TrainConfig, checkpoint, run_dir, device, ctx, log, dataset, started: float):
    """``_train``, then the process group (if any) shut down: cleanly when every rank stopped together."""
    clean = False
    try:
        result = _train(c, checkpoint, run_dir, device, ctx, log, dataset, started)
        clean = True
        return result
    except TrainingInterrupted:
        clean = True  # every rank stopped at the same agreed step
        raise
    except RuntimeError as exc:  # a lost rank: one line, not the backend's traceback on every survivor
        lost = lost_ranks(exc, ctx, c.dist_timeout)
        if lost is None:
            raise
        raise lost from None
    finally:
        shutdown(ctx, clean)


def _trained(checkpoint: dict | None) -> bool:
    """A checkpoint at its run's last step, its last epoch ended. One saved by SIGINT/SIGTERM in the last
    step has taken every step but has not ended that epoch (``batch_in_epoch`` > 0: not evaluated, no
    metrics row, no result.json)."""
    return checkpoint is not None and checkpoint["step"] >= checkpoint["total_steps"] \
        and not checkpoint["batch_in_epoch"]


def _finished(checkpoint: dict | None, run_dir: Path | None) -> bool:
    """Trained, and its ``result.json`` written: e.g. train(None, resume=...) again from a notebook. A run
    killed between its final ``last.pt`` and ``result.json`` is not: resuming it writes them (and the report)."""
    return _trained(checkpoint) and run_dir is not None and (run_dir / "result.json").exists()


def _report(mode: str, run_dir: Path | None, is_main: bool, log) -> float | None:
    """report.html as ``mode`` asks, by the main process of a run with a directory; the seconds it
    took (None: none drawn, or ``none``). After ``result.json``, which leaves them out."""
    if run_dir is None or not is_main or not (run_dir / "config.json").exists():
        return None
    from ..report.render import render_run_report

    if mode == "none":  # nothing drawn (sweep runs, an experiment's networks): one line
        log(render_run_report(run_dir, mode, log))
        return None
    start = time.perf_counter()
    with _SignalStops() as stop:
        try:
            log(render_run_report(run_dir, mode, log))
        except KeyboardInterrupt:
            raise ReportInterrupted(run_dir, stop.signum or signal.SIGINT) from None
    return time.perf_counter() - start


def _train(c: TrainConfig, checkpoint, run_dir, device, ctx, log, dataset, started: float) -> TrainResult:
    run = _Run(c, checkpoint, run_dir, device, ctx, log, dataset, started)
    try:
        with _SignalFlag() as interrupt:
            # An epoch whose steps are all taken but which was not ended (stopped in its last step) ends now.
            while run.state.step < run.parts.total_steps or run.state.batch_in_epoch:
                epoch = run.train_epoch(interrupt)
                run.end_epoch(epoch)
    except NonFiniteError as err:  # stop, or skip giving up: keep the last finite state
        raise run.nonfinite_stop(err) from None
    finally:
        run.files.close()
    return run.result()


class _Run:
    """One run: set up and, when resuming, restored; ``train_epoch`` and ``end_epoch`` are the
    two halves of the loop."""

    def __init__(self, c: TrainConfig, checkpoint, run_dir, device, ctx, log, dataset, started: float):
        seed_everything(c.seed, c.deterministic)
        self.c, self.device, self.ctx, self.log = c, device, ctx, log
        self.parts = p = build_parts(c, device, ctx, dataset, log)
        self.state = RunState(warmup_done=c.warmup_lr <= 0, process_start=started)
        self.run_dir, finished, trained = run_dir, _finished(checkpoint, run_dir), _trained(checkpoint)
        if checkpoint is not None:
            check_same_data(checkpoint["data_info"], p.info, c.data)
            self.state.load_state_dict(checkpoint, p, device, ctx.is_main)
            log(_resumed_line(run_dir, self.state, p.total_steps, finished, trained))
        # A finished run's folder is left as it is: no records, TensorBoard files or result rewritten.
        self.files = RunFiles(None if finished else run_dir, c, p, self.state, ctx, device, checkpoint, log)
        warning = None if trained else steep_warmup(c, p.total_steps)  # after the folder checks: a refusal is 1 line
        if warning:
            log(f"warning: {warning}")
        ranks = f" x {ctx.world_size} ranks" if ctx.enabled else ""
        if not trained:  # a trained run trains nothing: no line after its "nothing to train" says it does
            log(f"training {c.model} ({p.params:,} params) on {p.info['description']}, {device.type}{ranks}, "
                f"{counted(p.total_steps, 'step')} ({counted(p.num_epochs, 'epoch')} x {p.steps_per_epoch}), "
                f"batch {c.batch_size}, lr {c.effective_lr:g}, {p.precision}")
        p.model.train()
        self.train_step = self._step_function()
        self.run_start = time.perf_counter()
        self.timings = {"setup_s": self.run_start - started, "train_s": 0.0, "eval_s": 0.0}

    def _step_function(self) -> Callable:
        """``(x, y, lr, step) -> (loss, logits)``: one CUDA-graph replay where the settings allow
        (see graphed_step.py), else the eager step with the non-finite policy (eager_step.py), which
        returns None for a batch the policy dropped."""
        c, p, monitor, events, log = self.c, self.parts, self.files.monitor, self.state.events, self.log
        loss_fn = _loss_fn(c)
        blockers = graph_blockers(c, self.ctx.enabled) if c.cuda_graph else []
        if blockers:
            log(f"note: no CUDA-graph step because of {', '.join(blockers)}; running the step eagerly")
        # The fused step's NaN/Inf check: the epoch's loss sum, read at its end (end_epoch).
        self.stops_at_epoch_end = bool(c.cuda_graph and not blockers and c.on_nonfinite == "stop")
        if not c.cuda_graph or blockers:
            eager = EagerStep(p.model, p.step_model, p.optimizer, p.scaler, loss_fn, p.precision, self.device,
                              c.clip_norm, c.clip_value, monitor, p.ema, events, log)
            return lambda x, y, lr, step: eager(x, y, step)
        # With --compile the compiled model runs inside the graph (compiled during the warm-up).
        fused = TrainStep(p.step_model, p.optimizer, loss_fn, p.precision, c.clip_norm, c.clip_value, log=log,
                          ema=p.ema)

        def graphed(x, y, lr, step):
            loss, logits = fused(x, y, lr)
            if fused.capture_error and not any(e["kind"] == "cuda_graph_fallback" for e in events):
                events.append({"step": step, "kind": "cuda_graph_fallback", "detail": fused.capture_error})
            if monitor is not None:  # the gradients of this step, the update already applied
                with warnings_to(log):
                    monitor.step(loss, step=step)
            return loss, logits
        return graphed

    def train_epoch(self, interrupt) -> dict:
        """The steps of one epoch, from where a resumed run stopped. Loss sum, correct and seen
        stay on the device (``state.sums``), read once per epoch."""
        c, p, s = self.c, self.parts, self.state
        p.train_loader.set_epoch(s.epoch)
        s.sums = torch.tensor(s.epoch_sums or [0.0, 0.0, 0.0], device=self.device, dtype=torch.float64)
        s.epoch_sums = None
        # A resumed epoch's images per second counts only the new images. Its lr: that of its last step,
        # which the restored optimizer holds when a run stopped in that step resumes with none left to take.
        epoch = {"start": time.perf_counter(), "sums_at_start": s.sums.clone(),
                 "lr": float(p.optimizer.param_groups[0]["lr"])}
        self._interval_start = s.sums.clone()
        bar = _progress(c, s.epoch, p.num_epochs, p.steps_per_epoch, s.batch_in_epoch)
        # No batch left to take when a run stopped in its last step resumes: its epoch only ends.
        batches = _batches(p.train_loader, s.batch_in_epoch) if s.step < p.total_steps else ()
        try:
            for x, y in batches:
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                epoch["lr"] = lr = self._set_lr()
                taken = self.train_step(x, y, lr, s.step)
                if taken is not None:  # a dropped batch (skip, rollback) is in no average: its loss is NaN or a spike
                    loss, logits = taken
                    with torch.no_grad():  # no host-to-device copy here: that would synchronise every step
                        s.sums[:2] += torch.stack([loss.double() * len(y), (logits.argmax(1) == y).sum().double()])
                        s.sums[2] += len(y)
                s.step += 1
                s.batch_in_epoch += 1
                self._after_step(lr, bar, interrupt)
                if s.step >= p.total_steps:
                    break
        finally:
            if bar is not None:
                bar.close()
        return epoch

    def _set_lr(self) -> float:
        c, s = self.c, self.state
        lr = c.effective_lr * lr_factor(c.schedule, s.step, self.parts.total_steps, c.warmup, c.milestones)
        if not s.warmup_done:
            lr = c.warmup_lr * c.effective_lr / c.lr
        if self.files.monitor is not None:
            lr *= self.files.monitor.lr_scale  # lowered by each rollback
        for group in self.parts.optimizer.param_groups:
            group["lr"] = lr
        if self.parts.ema is not None:
            self.parts.ema.set_step(s.step)
        return lr

    def _after_step(self, lr: float, bar, interrupt) -> None:
        """Finer curves, the paper's warm-up test, the progress bar, interruption, checkpoints."""
        c, s, sums = self.c, self.state, self.state.sums
        if c.log_every and s.step % c.log_every == 0:  # a finer training curve: one sync per interval
            loss_i, correct_i, seen_i = (sums - self._interval_start).tolist()
            s.step_history.append({"step": s.step, "epoch": s.epoch + s.batch_in_epoch / self.parts.steps_per_epoch,
                                      "train_loss": loss_i / max(seen_i, 1),
                                      "train_error": 1 - correct_i / max(seen_i, 1), "lr": lr,
                                      "time": time.time()})  # wall clock: the jobs probe lines workers up
            self._interval_start = sums.clone()
        if not s.warmup_done and s.step % 20 == 0:
            s.warmup_done = 1 - sums[1].item() / max(1.0, sums[2].item()) < c.warmup_until_error
            if s.warmup_done:
                self.log(f"paper warm-up done at step {s.step}: training error below {c.warmup_until_error:.0%}")
        if bar is not None:
            bar.update(1)
            if s.step % 50 == 0:  # reading the loss waits for the GPU: rarely
                bar.set_postfix(loss=f"{sums[0].item() / max(1.0, sums[2].item()):.3f}", lr=f"{lr:.3g}")
        # Ranks agree on stopping every 10 steps (a tiny all-reduce); alone, at every step.
        if (not self.ctx.enabled or s.step % 10 == 0) and self.ctx.any_rank(bool(interrupt.signum)):
            signum = interrupt.signum or signal.SIGTERM
            s.events.append({"step": s.step, "kind": "interrupted",  # kept: a resumed run shows the break
                             "detail": f"{signal.Signals(signum).name}, checkpoint saved"})  # on disk only if so
            saved = self.files.save("last")
            unsaved = None if saved or self.files.run_dir is None else \
                self.files.checkpoint_note(False, "the weights were not finite")
            raise TrainingInterrupted(self.files.run_dir, s.step, signum, unsaved)
        if c.checkpoint_every and s.step % c.checkpoint_every == 0 and s.batch_in_epoch < self.parts.steps_per_epoch:
            self.files.save("last")

    def end_epoch(self, epoch: dict) -> None:
        """Evaluate, record the metrics row, checkpoint, print the epoch's line."""
        c, p, s = self.c, self.parts, self.state
        loss_sum, correct, seen, *_, seen_at_start = self.ctx.sum_(torch.cat([s.sums, epoch["sums_at_start"]])).tolist()
        train_time = time.perf_counter() - epoch["start"]  # after the read: the GPU has finished the epoch
        since = s.history[-1]["step"] if s.history else 0
        if self.stops_at_epoch_end and not math.isfinite(loss_sum):
            raise NonFiniteError(f"the training loss of epoch {s.epoch + 1} (steps {since}-{s.step - 1}) is "
                                 f"{loss_sum / max(seen, 1)}: exploding; lower the learning rate or clip the gradients "
                                 "(the fused step checks once an epoch, at its end, and does not locate the first "
                                 "non-finite step: --no-cuda-graph checks every step)", step=s.step)
        evaluated = s.step >= p.total_steps or (c.eval_every > 0 and (s.epoch + 1) % c.eval_every == 0)
        eval_start = time.perf_counter()
        evaluation = evaluate_epoch(p, c, self.ctx, self.device, evaluated)
        self.timings["train_s"] += train_time
        self.timings["eval_s"] += time.perf_counter() - eval_start
        row = {"epoch": s.epoch + 1, "step": s.step, "train_loss": loss_sum / max(seen, 1),
               "train_acc": correct / max(seen, 1), **evaluation, "lr": epoch["lr"],
               "images_per_s": (seen - seen_at_start) / max(train_time, 1e-9),
               "time_s": time.perf_counter() - epoch["start"], "elapsed_s": time.perf_counter() - self.run_start,
               "run_time_s": s.run_time_s()}
        if any(e["kind"] == "rollback" for e in s.events if e["step"] >= since):  # in metrics.jsonl too
            row["events"] = [e for e in s.events if e["step"] >= since]
        s.history.append(row)
        s.epoch, s.batch_in_epoch, s.sums = s.epoch + 1, 0, None
        usable = evaluated and math.isfinite(row["test_loss"])
        is_best = usable and row["test_acc"] > s.best_acc
        s.best_acc = max(s.best_acc, row["test_acc"]) if usable else s.best_acc
        if self.files.monitor is not None and c.monitor:
            row["gradients"] = _gradient_summary(self.files.monitor, since)
        self.files.write_epoch(row)
        if evaluated and not usable and c.on_nonfinite != "warn":
            raise OutputsNotFinite(f"evaluation at step {s.step}: the {p.info['eval_split']} loss is "
                                   f"{row['test_loss']} (the weights are finite but overflow in the forward pass: "
                                   "exploding; lower the learning rate or clip the gradients)", step=s.step)
        if s.step >= p.total_steps or not c.checkpoint_min_s or \
                self.ctx.any_rank(self.files.seconds_since_save() >= c.checkpoint_min_s):  # ranks agree on time
            self.files.save("last")
        if is_best:
            self.files.save("best")
        self.log(_epoch_line(row, p.num_epochs, p.info["eval_split"], evaluated))

    def nonfinite_stop(self, err: NonFiniteError) -> NonFiniteError:
        """The stop (or skip giving up): save the last finite state and say what was kept."""
        self.state.events.append({"step": self.state.step, "kind": "nonfinite", "detail": str(err)})
        if isinstance(err, OutputsNotFinite):
            note = self.files.checkpoint_note(False, "the state was not saved (it cannot classify)")
        else:
            note = self.files.checkpoint_note(self.files.save("last"))
        self.files.write_events()  # the stop on record, also when no checkpoint took it
        return NonFiniteError(f"{err}; {note}", step=err.step, report=err.report)

    def _ended_nonfinite(self, err: NonFiniteError) -> NonFiniteError:
        """A run the policy let end non-finite: the end on record, so that its report says why (it has no
        result.json, and would read as stopped or still training)."""
        self.state.events.append({"step": self.state.step, "kind": "nonfinite", "detail": str(err)})
        self.files.write_events()
        return err

    def result(self) -> TrainResult:
        s, files = self.state, self.files
        if files.run_dir is not None and files.saved_step != s.step:  # the policy let the run end with NaN/Inf
            raise self._ended_nonfinite(NonFiniteError(
                f"training ended at step {s.step} with non-finite weights (--on-nonfinite {self.c.on_nonfinite}); "
                f"{files.checkpoint_note(False)}", step=s.step))
        final = s.history[-1] if s.history else {}
        if final.get("test_loss") is not None and not math.isfinite(final["test_loss"]):  # warn let it go on
            raise self._ended_nonfinite(OutputsNotFinite(
                f"training ended at step {s.step} with a {final['test_loss']} {self.parts.info['eval_split']} loss "
                f"(--on-nonfinite warn): the weights in {files.run_dir} are finite but overflow in the forward pass",
                step=s.step))
        t = self.timings
        t["bookkeeping_s"] = time.perf_counter() - self.run_start - t["train_s"] - t["eval_s"]
        run_time_s = s.run_time_s()
        files.write_result(dict(t), run_time_s)
        p = self.parts
        return TrainResult(self.run_dir, s.history, p.model, s.best_acc, s.step, p.info, s.events, s.step_history,
                           self.c, str(self.device), t, run_time_s, s.processes,
                           p.ema.model if p.ema is not None else None)


def _resumed_line(run_dir: Path, state: RunState, total_steps: int, finished: bool, trained: bool) -> str:
    if finished:
        return f"{run_dir} already finished ({counted(total_steps, 'step')}); nothing to train"
    if trained:
        return (f"{run_dir} took all {counted(total_steps, 'step')} but stopped before writing result.json; "
                "nothing to train, writing it now")
    return f"resuming {run_dir} at epoch {state.epoch + 1}, step {state.step}/{total_steps}"


def _epoch_line(row: dict, num_epochs: int, eval_split: str, evaluated: bool) -> str:
    evaluation = f"{eval_split} loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  " if evaluated else ""
    if evaluated and "ema_test_acc" in row:
        evaluation += f"average acc {row['ema_test_acc']:.4f}  "
    if evaluated and "tta_test_acc" in row:
        evaluation += f"flip-TTA acc {row['tta_test_acc']:.4f}  "
    return (f"epoch {row['epoch']:>3}/{num_epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
            f"{evaluation}lr {row['lr']:.4g}  {row['images_per_s']:,.0f} img/s  {row['time_s']:.1f}s")


def _batches(loader, k: int):
    """The epoch's batches from the k-th on (mid-epoch resume)."""
    if hasattr(loader, "iter_from"):
        return loader.iter_from(k)
    import itertools

    return itertools.islice(iter(loader), k, None)


def _progress(c: TrainConfig, epoch: int, num_epochs: int, total: int, initial: int):
    if not c.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{num_epochs}", leave=False,
                unit="step", dynamic_ncols=True)


def _gradient_summary(monitor, since: int) -> dict:
    """The monitor's verdict at the end of an epoch and the per-group gradient norms of its last record
    taken in this epoch (step >= ``since``, as gradients.jsonl counts steps); none when it took no record
    in this epoch (an epoch shorter than ``monitor_every``), never an earlier epoch's. One read."""
    verdict = monitor.verdict()
    records = monitor.records()
    last = records[-1] if records and records[-1]["step"] >= since else None
    return {"verdict": verdict.kind, "reason": verdict.reason, "step": last["step"] if last else None,
            "global_grad_norm": last["global_grad_norm"] if last else None,
            "groups": [{"name": g["name"], "depth_index": g["depth_index"], "grad_norm": g["grad_norm"]}
                       for g in last["groups"]] if last else []}


def _loss_fn(c: TrainConfig):
    return lambda logits, y: nn.functional.cross_entropy(logits.float(), y, label_smoothing=c.label_smoothing)
