"""The training loop: ``train(config)`` trains a zoo model and writes a run directory.

Read top to bottom: set-up (device, data, model, optimiser), resume, the epoch loop
(one step = forward, backward, diagnostics, clip, optimiser step; with ``cuda_graph`` the
same step is one ``TrainStep`` call, replayed from a CUDA graph on a GPU), evaluation, records.
The step never synchronises with the host except where a feature needs it (a progress
bar refresh every 50 steps, the paper's warm-up test, the skip/stop policies).

Run directory: ``config.json``, ``metrics.jsonl``, ``tb/`` (TensorBoard), ``last.pt``,
``best.pt``; checkpoints are written atomically.
"""

from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import UserError
from ..models import create_model
from ..runtime import hardware_info, pick_device
from ..files import atomic_write_text
from .checkpoint import all_finite, load_checkpoint, save_checkpoint
from .config import RESUMABLE, TrainConfig, validate
from .distributed import DistContext, init_distributed, restart_count, shutdown
from .eager_step import EagerStep, warnings_to
from .ema import WeightEMA
from .graphed_step import TrainStep, graph_blockers
from ..diagnostics import NonFiniteError
from ..diagnostics.records import read_jsonl, trim_jsonl
from .precision import autocast, resolve_precision
from .schedules import lr_factor


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was saved at the step boundary."""

    def __init__(self, run_dir: Path, step: int, signum: int):
        super().__init__(f"interrupted at step {step}; checkpoint saved, continue with --resume {run_dir}")
        self.run_dir, self.step, self.signum = run_dir, step, signum


class NonFiniteStop(Exception):
    """The ``stop`` policy ended the run because of NaN/Inf values."""


@dataclass
class TrainResult:
    run_dir: Path | None
    history: list[dict]
    model: nn.Module
    best_acc: float
    steps: int
    data_info: dict
    events: list[dict] = field(default_factory=list)
    step_history: list[dict] = field(default_factory=list)  # every ``log_every`` steps (this process)
    config: TrainConfig | None = None  # as run (a resumed run's own settings)
    device: str = "cpu"
    # Where this process's wall time went: setup (data, model, optimiser), training steps,
    # evaluation, bookkeeping (checkpoints, records, logs).
    timings: dict = field(default_factory=dict)
    ema_model: nn.Module | None = None  # the weight average, with ``config.ema``

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


# ----------------------------------------------------------------------------- set-up

def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def build_optimizer(model: nn.Module, c: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if c.wd_on_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": c.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if c.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=c.effective_lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0)
    cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=c.effective_lr)


def make_loaders(ds, c: TrainConfig, device: torch.device, image_size: int, rank: int = 0, world_size: int = 1):
    """(train, eval) loaders: on-device batches for in-memory data, DataLoader workers for folders."""
    from ..data import DeviceLoader, FolderDataset, make_folder_loaders

    if c.flip != "random" and not (c.augment and ds.hflip):
        raise UserError(f"--flip {c.flip} changes how training images are mirrored, but {ds.name} is trained "
                        f"{'without augmentation' if not c.augment else 'without flips'}; drop --flip")
    if isinstance(ds, FolderDataset):
        if c.flip != "random":
            raise UserError(f"--flip {c.flip} needs in-memory data (cifar10/100, npz:PATH); "
                            "image folders flip at random")
        return make_folder_loaders(ds, c.batch_size, image_size, c.workers, c.seed, rank, world_size)
    common = dict(mean=ds.mean, std=ds.std, device=device, hflip=ds.hflip, seed=c.seed,
                  channels_last=c.channels_last, rank=rank, world_size=world_size)
    train = DeviceLoader(ds.x_train, ds.y_train, c.batch_size, train=True, augment=c.augment, flip=c.flip, **common)
    test = DeviceLoader(ds.x_test, ds.y_test, c.batch_size, train=False, augment=False, **common)
    return train, test


def data_info(ds, spec: str, image_size: int) -> dict:
    """What a checkpoint must remember to feed new images the way training did."""
    return {"spec": spec, "name": ds.name, "classes": list(ds.classes), "mean": list(ds.mean),
            "std": list(ds.std), "in_channels": ds.in_channels, "image_size": image_size,
            "description": ds.description(), "eval_split": getattr(ds, "eval_split", "test")}


# ----------------------------------------------------------------------------- evaluation

def check_flip_tta(ds) -> None:
    """Flip test-time augmentation only where training flips images (not digits: mirrored, they
    are other shapes)."""
    if not getattr(ds, "hflip", True):
        raise UserError(f"--tta mirrors test images, but {ds.name} is never trained with flips; drop --tta")


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, precision: str = "fp32", ctx=None,
             flip: bool = False) -> dict:
    """Mean loss, accuracy and count over a loader (one host sync at the end).

    Under torchrun each rank sees a shard; ``ctx`` sums the results over ranks. ``flip``:
    test-time augmentation, the mean of the logits for each image and its mirror image.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x)
            if flip:
                logits = (logits.float() + model(x.flip(-1)).float()) / 2
        sums[0] += nn.functional.cross_entropy(logits.float(), y, reduction="sum").double()
        sums[1] += (logits.argmax(1) == y).sum()
        sums[2] += len(y)
    model.train(was_training)
    if ctx is not None:
        ctx.sum_(sums)
    loss_sum, correct, n = sums.tolist()
    if n == 0:
        return {"loss": float("nan"), "acc": float("nan"), "n": 0}
    return {"loss": loss_sum / n, "acc": correct / n, "n": int(n)}


# ----------------------------------------------------------------------------- the run

def prepare_run_dir(out: str | None, resuming: bool) -> Path | None:
    """Refuse to write over a run that can be continued unless resuming it; fail early if the
    folder cannot be written (before data and model are set up)."""
    if out is None:
        return None
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; give a directory")
    if not resuming and (run_dir / "last.pt").exists():
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()
        for leftover in run_dir.glob(".*.tmp"):  # an atomic write that a kill interrupted
            leftover.unlink()
    except OSError as err:
        raise UserError(f"cannot write the run directory {run_dir} ({err.strerror or err}); "
                        "choose a writable --out") from None
    return run_dir


def _resumed_config(resume: str | Path, config: TrainConfig, log) -> tuple[TrainConfig, dict | None]:
    """The run's own settings (only those in ``RESUMABLE`` come from ``config``) and its checkpoint.

    A run directory that has ``config.json`` but no ``last.pt`` stopped before its first
    checkpoint: it starts again from step 0 with its own settings (checkpoint None).
    """
    path = Path(resume)
    if path.is_dir() and not (path / "last.pt").exists() and (path / "config.json").is_file():
        try:
            saved, checkpoint = TrainConfig.from_dict(json.loads((path / "config.json").read_text())), None
        except (ValueError, TypeError) as err:
            raise UserError(f"{path / 'config.json'} is damaged ({err}); start a new run with another --out") from None
        log(f"note: {path} stopped before its first checkpoint; starting it again from step 0")
    else:
        checkpoint = load_checkpoint(resume)
        saved = TrainConfig.from_dict(checkpoint["config"])
    for name in RESUMABLE:
        setattr(saved, name, getattr(config, name))
    saved.out = str(path if path.is_dir() else path.parent)
    return saved, checkpoint


class _SignalFlag:
    """Turn SIGINT/SIGTERM into a flag the loop checks at each step boundary."""

    def __init__(self):
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(config: TrainConfig, resume: str | Path | None = None, log: Callable[[str], None] = print,
          dataset=None) -> TrainResult:
    """Train ``config.model`` on ``config.data``; with ``resume`` (a run directory or checkpoint)
    continue that run exactly where it stopped, using the run's own config.

    ``dataset`` lets a caller that trains several models on the same data load it once.
    Under torchrun it trains with DistributedDataParallel; after torchrun restarts a failed
    group, the run resumes from its own ``last.pt``.
    """
    started = time.perf_counter()
    elastic_restart = restart_count() > 0 and config.out is not None
    if resume is None and elastic_restart and (Path(config.out) / "last.pt").exists():
        resume = config.out
    checkpoint = None
    if resume is not None:
        config, checkpoint = _resumed_config(resume, config, log)
    validate(config)
    c = config
    run_dir = prepare_run_dir(c.out, resuming=checkpoint is not None or elastic_restart)
    device = pick_device(c.device)
    if c.sync_bn and device.type == "cpu":
        raise UserError("--sync-bn needs GPUs (SyncBatchNorm has no CPU kernel); on CPUs use --norm group or none")
    ctx, device = init_distributed(device, c.dist_timeout)
    clean = False
    try:
        result = _train(c, checkpoint, run_dir, device, ctx, log if ctx.is_main else (lambda *_: None), dataset,
                        started)
        clean = True
        return result
    except TrainingInterrupted:
        clean = True  # every rank stopped at the same agreed step
        raise
    finally:
        shutdown(ctx, clean)


def _train(c: TrainConfig, checkpoint, run_dir, device, ctx: DistContext, log, dataset, started: float) -> TrainResult:
    seed_everything(c.seed, c.deterministic)
    precision = resolve_precision(c.precision, device)

    # data
    from ..data import FolderDataset, load_data

    ds = dataset if dataset is not None else load_data(c.data, c.data_dir, val_split=c.val_split, seed=c.seed)
    if c.tta:
        check_flip_tta(ds)
    for warning in getattr(ds, "warnings", []):
        log(f"warning: {warning}")

    # model (seeded, so the same config gives the same initial weights)
    torch.manual_seed(c.seed)
    model = create_model(c.model, num_classes=ds.num_classes, in_channels=ds.in_channels, **c.model_options)
    image_size = (c.image_size or model.spec.input_size) if isinstance(ds, FolderDataset) else ds.image_size
    info = data_info(ds, c.data, image_size)
    model.to(device)
    if c.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, c)
    ema = WeightEMA(model, c.ema) if c.ema else None
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    train_loader, test_loader = make_loaders(ds, c, device, image_size, ctx.rank, ctx.world_size)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise UserError(f"batch size {c.batch_size} leaves no full batch in {info['description']}; lower --batch-size")
    total_steps = c.steps or c.epochs * steps_per_epoch
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    step_fn_model = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        if c.sync_bn:
            step_fn_model = nn.SyncBatchNorm.convert_sync_batchnorm(step_fn_model)
        step_fn_model = DistributedDataParallel(step_fn_model, device_ids=[device.index] if device.type == "cuda" else None)
    if c.compile:
        step_fn_model = torch.compile(step_fn_model)

    # state that a checkpoint carries
    step, epoch, batch_in_epoch = 0, 0, 0
    warmup_done = c.warmup_lr <= 0
    best_acc, history, events, step_history = -1.0, [], [], []
    acc_state = None  # running sums of the interrupted epoch
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scaler.load_state_dict(checkpoint["scaler"])
        if ema is not None:
            ema.model.load_state_dict(checkpoint["ema"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        if device.type == "cuda" and checkpoint["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(checkpoint["rng"]["cuda"])
        step, epoch, batch_in_epoch = checkpoint["step"], checkpoint["epoch"], checkpoint["batch_in_epoch"]
        warmup_done, best_acc = checkpoint["warmup_done"], checkpoint["best_acc"]
        history, events = checkpoint["history"], checkpoint.get("events", [])
        acc_state = checkpoint["epoch_sums"] if ctx.is_main else None  # saved sums are global: count them once
        log(f"resuming {run_dir} at epoch {epoch + 1}, step {step}/{total_steps}")

    writer = None
    if run_dir is not None and ctx.is_main:
        record = {**c.to_dict(), "resolved": {"effective_lr": c.effective_lr, "total_steps": total_steps,
                                              "steps_per_epoch": steps_per_epoch, "epochs": num_epochs,
                                              "params": sum(p.numel() for p in model.parameters())},
                  "data_info": info, "hardware": hardware_info(device), "world_size": ctx.world_size}
        if checkpoint is None:
            _clear_records(run_dir)
            atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2) + "\n")
        # Exactly-once records: the steps replayed since the checkpoint are written again.
        trim_jsonl(run_dir / "gradients.jsonl", lambda r: r.get("step", 0) < step)
        if c.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=step)
    monitor = _make_monitor(model, c, run_dir, writer, ctx.is_main)
    if monitor is not None and checkpoint is not None and run_dir is not None and (run_dir / "gradients.jsonl").exists():
        monitor.continue_from(read_jsonl(run_dir / "gradients.jsonl"))
    saved_step = checkpoint["step"] if checkpoint is not None else None  # the step last.pt holds

    def checkpoint_state() -> dict:
        weights = model.state_dict()
        return {"model": weights, "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "ema": ema.model.state_dict() if ema is not None else None,
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []},
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "warmup_done": warmup_done,
                "best_acc": best_acc, "history": history, "events": events,
                "epoch_sums": ctx.sum_(sums.clone()).tolist() if sums is not None else None,
                "config": c.to_dict(), "data_info": info, "total_steps": total_steps}

    def save(name: str) -> bool:
        """Called on every rank at the same step (the sums are reduced); rank 0 writes.

        False when the state is not finite: a checkpoint never holds NaN/Inf (buffers included).
        """
        nonlocal saved_step
        if run_dir is None:
            return False
        state = checkpoint_state()
        if not all_finite(state["model"]) or (ema is not None and not all_finite(state["ema"])):
            events.append({"step": step, "kind": "not_saved", "detail": f"{name}: non-finite weights"})
            log(f"warning: weights are not finite at step {step}; {name}.pt was not overwritten")
            return False
        if ctx.is_main:
            if monitor is not None:
                monitor.flush()  # every record before this step is on disk before the checkpoint
            if events:
                atomic_write_text(run_dir / "events.json", json.dumps(events, indent=2) + "\n")
            save_checkpoint(run_dir / f"{name}.pt", state)
        if name == "last":
            saved_step = step
        return True

    log(f"training {c.model} ({sum(p.numel() for p in model.parameters()):,} params) on {info['description']}, "
        f"{device.type}, {total_steps} steps ({num_epochs} epochs x {steps_per_epoch}), batch {c.batch_size}, "
        f"lr {c.effective_lr:g}, {precision}")

    model.train()
    loss_fn = _loss_fn(c)
    fused_step = None  # the whole step as one callable (a CUDA graph on GPUs): see graphed_step.py
    if c.cuda_graph:
        blockers = graph_blockers(c, ctx.enabled)
        if blockers:
            log(f"note: no CUDA-graph step because of {', '.join(blockers)}; running the step eagerly")
        else:
            # With --compile the compiled model runs inside the graph (compiled during the warm-up).
            fused_step = TrainStep(step_fn_model, optimizer, loss_fn, precision, c.clip_norm, c.clip_value, log=log,
                                   ema=ema)
    eager_step = EagerStep(model, step_fn_model, optimizer, scaler, loss_fn, precision, device, c.clip_norm,
                           c.clip_value, monitor, ema, events, log)
    sums = None
    run_start = time.perf_counter()
    timings = {"setup_s": run_start - started, "train_s": 0.0, "eval_s": 0.0}
    try:
        with _SignalFlag() as interrupt:
            while step < total_steps:
                train_loader.set_epoch(epoch)
                # loss sum, correct, seen: kept on the device, read once per epoch
                sums = torch.tensor(acc_state or [0.0, 0.0, 0.0], device=device, dtype=torch.float64)
                acc_state = None
                epoch_start = time.perf_counter()
                sums_at_start = sums.clone()  # a resumed epoch's images per second counts only new images
                interval_start = sums.clone()
                batches = (train_loader.iter_from(batch_in_epoch) if hasattr(train_loader, "iter_from")
                           else _skip(train_loader, batch_in_epoch))
                bar = _progress(c, epoch, num_epochs, steps_per_epoch, batch_in_epoch)
                for x, y in batches:
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    lr = c.effective_lr * lr_factor(c.schedule, step, total_steps, c.warmup, c.milestones)
                    if not warmup_done:
                        lr = c.warmup_lr * c.effective_lr / c.lr
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    if ema is not None:
                        ema.set_step(step)

                    if fused_step is not None:
                        loss, logits = fused_step(x, y, lr)
                        if fused_step.capture_error and not any(e["kind"] == "cuda_graph_fallback" for e in events):
                            events.append({"step": step, "kind": "cuda_graph_fallback", "detail": fused_step.capture_error})
                        if monitor is not None:  # the gradients of this step, the update already applied
                            with warnings_to(log):
                                monitor.step(loss, step=step)
                    else:
                        loss, logits = eager_step(x, y, step)

                    with torch.no_grad():  # no host-to-device copy here: that would synchronise every step
                        sums[:2] += torch.stack([loss.double() * len(y), (logits.argmax(1) == y).sum().double()])
                        sums[2] += len(y)
                    step += 1
                    batch_in_epoch += 1
                    if c.log_every and step % c.log_every == 0:  # a finer training curve: one sync per interval
                        loss_i, correct_i, seen_i = (sums - interval_start).tolist()
                        step_history.append({"step": step, "epoch": epoch + batch_in_epoch / steps_per_epoch,
                                             "train_loss": loss_i / max(seen_i, 1),
                                             "train_error": 1 - correct_i / max(seen_i, 1), "lr": lr})
                        interval_start = sums.clone()
                    if not warmup_done and step % 20 == 0:
                        warmup_done = 1 - sums[1].item() / max(1.0, sums[2].item()) < c.warmup_until_error
                        if warmup_done:
                            log(f"paper warm-up done at step {step}: training error below {c.warmup_until_error:.0%}")
                    if bar is not None:
                        bar.update(1)
                        if step % 50 == 0:  # reading the loss waits for the GPU: rarely
                            bar.set_postfix(loss=f"{sums[0].item() / max(1.0, sums[2].item()):.3f}", lr=f"{lr:.3g}")
                    # Ranks agree on stopping every 10 steps (a tiny all-reduce); alone, at every step.
                    if (not ctx.enabled or step % 10 == 0) and ctx.any_rank(bool(interrupt.signum)):
                        save("last")
                        if bar is not None:
                            bar.close()
                        raise TrainingInterrupted(run_dir, step, interrupt.signum or signal.SIGTERM)
                    if c.checkpoint_every and step % c.checkpoint_every == 0 and batch_in_epoch < steps_per_epoch:
                        save("last")
                    if step >= total_steps:
                        break
                if bar is not None:
                    bar.close()

                # end of epoch: evaluate, record, checkpoint
                loss_sum, correct, seen, *_, seen_at_start = ctx.sum_(torch.cat([sums, sums_at_start])).tolist()
                train_time = time.perf_counter() - epoch_start  # after the read: the GPU has finished the epoch
                last_epoch = step >= total_steps
                evaluated = last_epoch or (c.eval_every > 0 and (epoch + 1) % c.eval_every == 0)
                eval_start = time.perf_counter()
                test = evaluate(model, test_loader, device, precision, ctx) if evaluated else {"loss": None, "acc": None}
                ema_test = (evaluate(ema.model, test_loader, device, precision, ctx) if evaluated and ema is not None
                            else {"loss": None, "acc": None})
                flip_test = (evaluate(model, test_loader, device, precision, ctx, flip=True) if evaluated and c.tta
                             else {"loss": None, "acc": None})
                timings["train_s"] += train_time
                timings["eval_s"] += time.perf_counter() - eval_start
                row = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / max(seen, 1),
                       "train_acc": correct / max(seen, 1), "test_loss": test["loss"], "test_acc": test["acc"],
                       **({"ema_test_loss": ema_test["loss"], "ema_test_acc": ema_test["acc"]} if ema is not None else {}),
                       **({"tta_test_loss": flip_test["loss"], "tta_test_acc": flip_test["acc"]} if c.tta else {}),
                       "lr": lr, "images_per_s": (seen - seen_at_start) / max(train_time, 1e-9),
                       "time_s": time.perf_counter() - epoch_start, "elapsed_s": time.perf_counter() - run_start}
                history.append(row)
                epoch += 1
                batch_in_epoch = 0
                sums = None
                is_best = evaluated and test["acc"] > best_acc
                best_acc = max(best_acc, test["acc"]) if evaluated else best_acc
                if monitor is not None and c.monitor:
                    row["gradients"] = _gradient_summary(monitor)
                if ctx.is_main:
                    _write_records(run_dir, writer, history, row)
                save("last")
                if is_best:
                    save("best")
                evaluation = (f"{info['eval_split']} loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  " if evaluated
                              else "")
                if evaluated and ema is not None:
                    evaluation += f"average acc {row['ema_test_acc']:.4f}  "
                if evaluated and c.tta:
                    evaluation += f"flip-TTA acc {row['tta_test_acc']:.4f}  "
                log(f"epoch {row['epoch']:>3}/{num_epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                    f"{evaluation}"
                    f"lr {lr:.4g}  {row['images_per_s']:,.0f} img/s  {row['time_s']:.1f}s")
    except NonFiniteError as err:  # stop, or skip giving up: keep the last finite state
        events.append({"step": step, "kind": "nonfinite", "detail": str(err)})
        kept = save("last")
        raise NonFiniteError(f"{err}; {_checkpoint_note(run_dir, kept, saved_step, step)}", step=err.step,
                             report=err.report) from None
    finally:
        if writer is not None:
            writer.close()
        if monitor is not None:
            monitor.close()
    if run_dir is not None and saved_step != step:  # the policy let the run end with NaN/Inf weights
        raise NonFiniteError(f"training ended at step {step} with non-finite weights (--on-nonfinite "
                             f"{c.on_nonfinite}); {_checkpoint_note(run_dir, False, saved_step, step)}", step=step)
    timings["bookkeeping_s"] = time.perf_counter() - run_start - timings["train_s"] - timings["eval_s"]
    return TrainResult(run_dir, history, model, best_acc, step, info, events, step_history, c, str(device), timings,
                       ema.model if ema is not None else None)


def _checkpoint_note(run_dir: Path | None, kept: bool, saved_step: int | None, step: int) -> str:
    """What the run directory holds after a non-finite stop: said plainly, never assumed."""
    if run_dir is None:
        return "nothing was saved (no run directory)"
    if kept:
        return f"{run_dir / 'last.pt'} holds the last finite state (step {step})"
    if saved_step is not None:
        return f"the state was no longer finite; {run_dir / 'last.pt'} keeps step {saved_step}"
    return "the state was never finite at a checkpoint: no checkpoint was written"


def _clear_records(run_dir: Path) -> None:
    """A new run in a folder whose earlier attempt died before its first checkpoint: drop that
    attempt's records, so nothing of it is mistaken for this run's."""
    for name in ("metrics.jsonl", "gradients.jsonl", "events.json", "nonfinite_report.json", "timings.json"):
        (run_dir / name).unlink(missing_ok=True)


def _skip(loader, k: int):
    """Mid-epoch resume for DataLoader-based data: drop the first k batches."""
    import itertools

    return itertools.islice(iter(loader), k, None)


def _progress(c: TrainConfig, epoch: int, num_epochs: int, total: int, initial: int):
    if not c.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}/{num_epochs}", leave=False,
                unit="step", dynamic_ncols=True)


def _gradient_summary(monitor) -> dict:
    """The monitor's verdict and per-group gradient norms at the end of an epoch (one read)."""
    verdict = monitor.verdict()
    records = monitor.records()
    last = records[-1] if records else None
    return {"verdict": verdict.kind, "reason": verdict.reason,
            "global_grad_norm": last["global_grad_norm"] if last else None,
            "groups": [{"name": g["name"], "depth_index": g["depth_index"], "grad_norm": g["grad_norm"]}
                       for g in last["groups"]] if last else []}


def _write_records(run_dir, writer, history, row) -> None:
    if run_dir is not None:
        # Rewritten whole (and atomically) each epoch: a crash never leaves half a line.
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    if writer is not None:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "ema_test_acc", "tta_test_acc", "lr",
                    "images_per_s"):
            if row.get(key) is None:  # an epoch without evaluation, or without --ema / --tta
                continue
            group = "loss" if "loss" in key else "accuracy" if "acc" in key else "speed" if "images" in key else "lr"
            writer.add_scalar(f"{group}/{key}", row[key], row["step"])
        writer.flush()


# ----------------------------------------------------------------------------- diagnostics

def _make_monitor(model, c: TrainConfig, run_dir, writer, is_main: bool):
    """Per-layer gradient norms every ``monitor_every`` steps, and the NaN/Inf policy every step.

    ``--no-monitor`` drops the records, never the policy: skip/stop still check every step.
    """
    if not c.monitor and c.on_nonfinite == "warn":
        return None
    from ..diagnostics import GradientMonitor

    files = run_dir is not None and is_main
    return GradientMonitor(model, every=c.monitor_every if c.monitor else 0, nonfinite=c.on_nonfinite,
                           tb_writer=writer if c.monitor else None,
                           jsonl_path=run_dir / "gradients.jsonl" if files and c.monitor else None,
                           report_path=run_dir / "nonfinite_report.json" if files else None)


def _loss_fn(c: TrainConfig):
    return lambda logits, y: nn.functional.cross_entropy(logits.float(), y, label_smoothing=c.label_smoothing)
