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

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import UserError
from ..models import create_model
from ..runtime import hardware_info, pick_device
from .checkpoint import all_finite, atomic_write_text, load_checkpoint, save_checkpoint
from .config import TrainConfig, validate
from .distributed import DistContext, init_distributed, restart_count, shutdown
from .ema import WeightEMA
from .graphed_step import TrainStep, graph_blockers
from ..diagnostics import NonFiniteError
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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the device computes it natively (a recent GPU), else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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
    """Refuse to write over a finished or running run unless resuming it."""
    if out is None:
        return None
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} is a file; give a directory")
    if not resuming and any((run_dir / n).exists() for n in ("config.json", "last.pt", "metrics.jsonl")):
        raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    return run_dir


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
        checkpoint = load_checkpoint(resume)
        saved = TrainConfig.from_dict(checkpoint["config"])
        # A resumed run keeps its settings; only where it runs and how it reports may change.
        for name in ("device", "progress", "tensorboard", "workers", "dist_timeout"):
            setattr(saved, name, getattr(config, name))
        saved.out = str(Path(resume) if Path(resume).is_dir() else Path(resume).parent)
        config = saved
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
        run_dir.mkdir(parents=True, exist_ok=True)
        record = {**c.to_dict(), "resolved": {"effective_lr": c.effective_lr, "total_steps": total_steps,
                                              "steps_per_epoch": steps_per_epoch, "epochs": num_epochs,
                                              "params": sum(p.numel() for p in model.parameters())},
                  "data_info": info, "hardware": hardware_info(device), "world_size": ctx.world_size}
        if checkpoint is None:
            atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2) + "\n")
        if c.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(run_dir / "tb"), purge_step=step if checkpoint is not None else None)
    monitor = _make_monitor(model, c, run_dir, writer, ctx.is_main)

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

    def save(name: str) -> None:
        """Called on every rank at the same step (the sums are reduced); rank 0 writes."""
        if run_dir is None:
            return
        state = checkpoint_state()
        if not ctx.is_main:
            return
        if not all_finite(state["model"]):  # never leave NaN/Inf weights in a checkpoint
            events.append({"step": step, "kind": "not_saved", "detail": f"{name}: non-finite weights"})
            log(f"warning: weights are not finite at step {step}; {name}.pt was not overwritten")
            return
        save_checkpoint(run_dir / f"{name}.pt", state)

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
    sums = None
    run_start = time.perf_counter()
    timings = {"setup_s": run_start - started, "train_s": 0.0, "eval_s": 0.0}
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
                    if monitor is not None:  # the gradients of this step, the update already applied
                        monitor.step(loss, step=step)
                else:
                    with autocast(device, precision):
                        logits = step_fn_model(x)
                        loss = loss_fn(logits, y)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    if monitor is not None:  # before clipping: record the raw gradient
                        monitor.step(loss, step=step)
                    if c.clip_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), c.clip_norm)
                    if c.clip_value is not None:
                        nn.utils.clip_grad_value_(model.parameters(), c.clip_value)
                    try:  # warn: no sync; skip/stop: one finiteness check, and the batch re-run on failure
                        take_step = monitor is None or monitor.check_step(inputs=x, targets=y, loss_fn=loss_fn)
                    except NonFiniteError as err:
                        events.append({"step": step, "kind": "nonfinite", "detail": str(err)})
                        save("last")  # the weights are still the last finite ones
                        raise
                    if take_step:
                        scaler.step(optimizer)
                        if ema is not None:
                            ema.update_()
                    else:
                        events.append({"step": step, "kind": "skipped", "detail": "non-finite values"})
                    scaler.update()

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
            if monitor is not None:
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
    if writer is not None:
        writer.close()
    if monitor is not None:
        monitor.close()
    timings["bookkeeping_s"] = time.perf_counter() - run_start - timings["train_s"] - timings["eval_s"]
    return TrainResult(run_dir, history, model, best_acc, step, info, events, step_history, c, str(device), timings,
                       ema.model if ema is not None else None)


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
    """Per-layer gradient norms every ``monitor_every`` steps, and the NaN/Inf policy every step."""
    if not c.monitor:
        return None
    from ..diagnostics import GradientMonitor

    files = run_dir is not None and is_main
    return GradientMonitor(model, every=c.monitor_every, nonfinite=c.on_nonfinite, tb_writer=writer,
                           jsonl_path=run_dir / "gradients.jsonl" if files else None,
                           report_path=run_dir / "nonfinite_report.json" if files else None)


def _loss_fn(c: TrainConfig):
    return lambda logits, y: nn.functional.cross_entropy(logits.float(), y, label_smoothing=c.label_smoothing)
