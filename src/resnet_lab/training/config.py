"""Every training setting in one object, and the recipes that fill it in.

A recipe is a set of defaults; anything given explicitly (CLI flag or keyword) wins.
``resolve_config(recipe, **overrides)`` returns the final ``TrainConfig``, validated.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field

from ..data.choices import FLIP_MODES, PAD_MODES
from ..diagnostics.choices import MAX_OPTIMIZER_SCALAR, OPTIMIZERS, POLICIES
from ..errors import UserError, as_python_numbers, is_bool
from ..models.choices import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

REFERENCE_BATCH = 128  # learning rates below are for this batch size; they scale linearly with it


@dataclass
class TrainConfig:
    # what to train, on what
    model: str = "resnet20"
    model_options: dict = field(default_factory=dict)  # create_model keywords: norm, activation, ...
    data: str = "digits"
    data_dir: str | None = None
    val_split: int = 0  # >0: hold out this many training images for evaluation (paper: 5000)
    val_seed: int | None = None  # which images are held out (default: seed); fix it to compare seeds on one split
    augment: bool = True
    flip: str = "random"  # random | alternate: every image flipped in every other epoch | none (with augment)
    translate: int = 4  # with augment: a random crop of the image padded by this many pixels (0: none)
    pad_mode: str = "zeros"  # zeros (black before normalisation, torchvision's RandomCrop) | reflect
    # optimisation
    epochs: int | None = 15  # length in epochs, or ...
    steps: int | None = None  # ... in iterations (the paper counts iterations); steps wins if set
    batch_size: int = 128
    lr: float = 0.1  # at REFERENCE_BATCH; scaled by batch_size / 128 unless lr_scaling is False
    lr_scaling: bool = True
    optimizer: str = "sgd"  # one of OPTIMIZERS
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    wd_on_norm_and_bias: bool = True
    schedule: str = "linear"  # step | cosine | linear (with warm-up: one-cycle) | constant
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the run, for "step"
    warmup: float = 0.0  # fraction of the run with a linear warm-up (cosine / linear: then one-cycle)
    warmup_lr: float = 0.0  # paper: 0.01 until training error < warmup_until_error (ResNet-110+)
    warmup_until_error: float = 0.8
    label_smoothing: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    ema: float = 0.0  # >0: also keep and evaluate an exponential moving average of the weights (decay per step)
    tta: bool = False  # also evaluate with flip test-time augmentation, reported apart (tta_test_acc)
    # execution
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16 | auto (bf16 on a GPU that has it, else fp32)
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False  # replay the whole step as one CUDA graph (SGD, no fp16, no DDP)
    seed: int = 0
    deterministic: bool = False
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over the global batch
    dist_timeout: float = 300.0  # seconds before a collective waiting for a lost rank fails
    workers: int | None = None  # folder data only; None: up to 4, one per CPU core this process has
    image_size: int | None = None  # training resolution; folder data default: the model's native size
    # diagnostics
    monitor: bool = True
    monitor_every: int = 10  # record gradient norms every N steps (NaN/Inf policy: every step)
    on_nonfinite: str = "stop"  # one of POLICIES: what a step with a NaN/Inf does
    rollback_factor: float = 0.5  # rollback: the learning rate is multiplied by this at each rollback
    max_rollbacks: int = 3  # rollback: the next failure stops the run (exit 3)
    spike_factor: float = 10.0  # rollback: a loss over this x its recent median is a blow-up (0: NaN/Inf only)
    # output
    out: str | None = None
    eval_every: int = 1  # evaluate every N epochs and after the last (0: after the last only)
    log_every: int = 0  # also record the running training loss/error every N steps (0: per epoch only)
    checkpoint_every: int = 0  # also save `last` every N steps (0: at epoch ends only)
    # At an epoch end, save `last` only once this many seconds have passed since it was last saved (0: at
    # every epoch end). The last step, an interruption and a non-finite stop always save.
    checkpoint_min_s: float = 0.0
    tensorboard: bool = True
    progress: bool = True
    report: str = "wait"  # report.html: wait (rendered before exit) | background (after exit) | none
    recipe: str = "default"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)

    @property
    def split_seed(self) -> int:
        """The seed that draws the held-out images (``val_split``)."""
        return self.seed if self.val_seed is None else self.val_seed

    @property
    def effective_lr(self) -> float:
        return self.lr * self.batch_size / REFERENCE_BATCH if self.lr_scaling else self.lr


# He et al. 2015, section 4.2: batch 128, lr 0.1 divided by 10 at 32k and 48k iterations, stop at
# 64k; weight decay 1e-4, momentum 0.9, no dropout; 4-pixel pad + random crop + flip. For 110
# layers and more, lr 0.01 until training error is below 80%, then back to 0.1.
PAPER = dict(steps=64_000, epochs=None, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9,
             nesterov=False, weight_decay=1e-4, wd_on_norm_and_bias=True, schedule="step",
             milestones=(0.5, 0.75), warmup=0.0, label_smoothing=0.0, precision="fp32")

# Paper accuracy in few epochs (see README "Fast path"): batch 512 with the learning rate scaled
# from 0.1 at 128, a linear warm-up then linear decay to zero, Nesterov momentum, label
# smoothing, no weight decay on norms/biases. How it runs: bf16 + channels_last on a GPU, the
# whole step replayed as one CUDA graph, NaN/Inf stopped on at each epoch's end (the loss sum read there
# anyway: no wait for the host inside the epoch),
# evaluation every 5 epochs, `last.pt` at most every 30 s (a 15 s run saves it once, at the end; a
# kill loses at most 30 s), the report drawn by a detached process after the command exits (off the
# critical path of a short run). Deeper nets get more epochs (FAST_EPOCHS).
FAST = dict(epochs=None, steps=None, batch_size=512, lr=0.1, optimizer="sgd", momentum=0.9, nesterov=True,
            weight_decay=5e-4, wd_on_norm_and_bias=False, schedule="linear", warmup=0.15,
            label_smoothing=0.1, precision="auto", channels_last=True, cuda_graph=True, on_nonfinite="stop",
            eval_every=5, checkpoint_min_s=30.0, report="background")
FAST_EPOCHS = ((20, 40), (56, 70), (110, 100))  # (up to this depth, epochs); deeper: the last entry

# Without --recipe: a one-cycle schedule that trains well in few epochs on small data.
DEFAULT = dict(epochs=15, batch_size=128, lr=0.1, schedule="linear", warmup=0.15, nesterov=True,
               weight_decay=5e-4)

RECIPES = {"default": DEFAULT, "paper": PAPER, "fast": FAST}
# What a resumed run may change: where it runs and how it reports, nothing that alters the result.
RESUMABLE = ("device", "progress", "tensorboard", "workers", "dist_timeout", "checkpoint_min_s", "report")


def recipe_defaults(recipe: str) -> TrainConfig:
    """The settings of a run given no flag under ``recipe``: what a resumed run's ``RESUMABLE`` settings take
    when not given again (a fast run keeps its 30 s between checkpoints and its report drawn in the background)."""
    return TrainConfig.from_dict(RECIPES.get(recipe, {}))


CHOICES = {"optimizer": OPTIMIZERS, "schedule": ("step", "cosine", "linear", "constant"),
           "precision": ("fp32", "bf16", "fp16", "auto"),
           "flip": FLIP_MODES, "pad_mode": PAD_MODES,
           "on_nonfinite": POLICIES, "report": ("wait", "background", "none")}


def resolve_config(recipe: str = "default", **overrides) -> TrainConfig:
    """Recipe defaults, then explicit overrides (``None`` means "not given")."""
    if recipe not in RECIPES:
        raise UserError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    values = {**RECIPES[recipe], "recipe": recipe}
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in given and "steps" not in given:
        values["steps"] = None  # asking for epochs replaces a recipe's iteration count
    if "steps" in given and "epochs" not in given:
        values["epochs"] = None
    values.update(given)
    if values["epochs"] is None and values["steps"] is None and recipe == "fast":
        depth = _depth(values.get("model", TrainConfig.model))
        values["epochs"] = next((e for d, e in FAST_EPOCHS if depth <= d), FAST_EPOCHS[-1][1])
    unknown = set(values) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise UserError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    config = TrainConfig.from_dict(values)
    _check_given_together(given, config)
    # The paper's warm-up for 110+ layers, unless asked for otherwise (--warmup-lr 0 once still gave 0.01)
    if recipe == "paper" and "warmup_lr" not in given and _depth(config.model) >= 110:
        config.warmup_lr = 0.01
    validate(config)
    return config


def _check_given_together(given: dict, c: TrainConfig) -> None:
    """Flags given explicitly that the run would ignore: refused, never recorded as if they applied."""
    if given.get("nesterov") and c.optimizer != "sgd":
        raise UserError(f"--nesterov is SGD's momentum; --optimizer {c.optimizer} ignores it: drop one of them")
    if "momentum" in given and c.optimizer != "sgd":  # Adam's moments have decays of their own; this one went nowhere
        raise UserError(f"--momentum is SGD's; --optimizer {c.optimizer} ignores it: drop one of them")
    if "milestones" in given and c.schedule != "step":  # only the step schedule divides the lr at milestones
        raise UserError(f"--milestones are where --schedule step divides the learning rate by 10, but --schedule is "
                        f"{c.schedule}, which ignores them: add --schedule step or drop --milestones")
    if given.get("warmup") and c.schedule == "step":  # lr_factor: the step schedule has no linear warm-up
        raise UserError(f"--warmup {c.warmup:g} ramps the learning rate up at the start of --schedule cosine, linear "
                        "or constant, but --schedule step ignores it (the paper's warm-up is --warmup-lr): choose "
                        "another --schedule or drop --warmup")
    if "val_seed" in given and not c.val_split:  # nothing is held out, so no images are chosen by it
        raise UserError("--val-seed chooses the images --val-split holds out, but nothing is held out (no "
                        "--val-split N): add --val-split N or drop --val-seed")
    if "monitor_every" in given and not c.monitor:  # off, the monitor records no step (_make_monitor: every=0)
        raise UserError("--monitor-every sets how often the gradient monitor records, but --no-monitor turns it off: "
                        "drop one of them")
    knobs = [f"--{name.replace('_', '-')}" for name in ("rollback_factor", "max_rollbacks", "spike_factor")
             if name in given]
    if knobs and c.on_nonfinite != "rollback":
        verb, them = ("tunes", "it") if len(knobs) == 1 else ("tune", "them")
        raise UserError(f"{', '.join(knobs)} {verb} the rollback policy, but --on-nonfinite is {c.on_nonfinite}, "
                        f"which ignores {them}: add --on-nonfinite rollback or drop {them}")
    if not c.augment:
        for name in ("translate", "pad_mode"):
            if name in given:
                raise UserError(f"--{name.replace('_', '-')} sets the training crop, but --no-augment turns "
                                "augmentation off: drop one of them")


def _depth(model: str) -> int:
    digits = "".join(c for c in model.rsplit("_", 1)[-1] if c.isdigit())
    return int(digits) if digits else 0


_KINDS = {"str": "a string", "int": "an integer", "float": "a number", "bool": True, "dict": "a dict",
          "tuple[float, ...]": "a list of numbers"}


def _plain_value(name: str, value, kind: str):
    """``value`` as the plain type of its field (what config.json holds): a notebook's ``Path``, numpy
    number or ``torch.device`` becomes its str, int or float; a value of another kind is refused."""
    if kind == "bool" and is_bool(value):
        return bool(value)
    if kind == "int" and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if kind == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if kind == "str" and isinstance(value, (str, os.PathLike)) and name in ("out", "data_dir"):
        return os.fspath(value)
    if kind == "str" and name == "device" and type(value).__name__ == "device":  # a torch.device
        return str(value)
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "dict" and isinstance(value, dict):  # model_options: np.True_ or np.int64(2) as JSON takes them
        return {k: as_python_numbers(v) for k, v in value.items()}
    if kind.startswith("tuple") and isinstance(value, (list, tuple)) and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    what = "True or False" if kind == "bool" else _KINDS[kind]
    hint = "; an already loaded data set goes to dataset=" if name == "data" else ""
    kind_of = type(value).__name__
    shown = f"{value!r} ({kind_of})" if len(repr(value)) <= 40 else f"a value of type {kind_of}"
    raise UserError(f"{name} must be {what}, got {shown}{hint}")


def plain_values(c: TrainConfig) -> None:
    """Values of the right kind made the plain ones config.json holds (a Path, numpy numbers, a torch.device)."""
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        if value is not None:
            setattr(c, f.name, _plain_value(f.name, value, f.type.removesuffix(" | None")))


def validate(c: TrainConfig) -> None:
    """Reject impossible values with one line that says how to fix them (values of the right kind, such
    as a ``Path`` for ``out`` or a numpy integer for ``epochs``, are made the plain values config.json holds)."""
    plain_values(c)
    for name, allowed in CHOICES.items():
        if getattr(c, name) not in allowed:
            raise UserError(f"{name}={getattr(c, name)!r} is not valid; choose one of: {', '.join(allowed)}")
    for name in ("lr", "weight_decay", "warmup_lr", "clip_norm", "clip_value", "dist_timeout", "rollback_factor",
                 "spike_factor"):
        value = getattr(c, name)
        if value is not None and not math.isfinite(value):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
    for name in ("lr", "warmup_lr", "weight_decay", "clip_value"):  # applied to float32 weights (see the bound)
        value = getattr(c, name)
        if value is not None and value > MAX_OPTIMIZER_SCALAR:
            raise UserError(f"--{name.replace('_', '-')} must be at most {MAX_OPTIMIZER_SCALAR:g} (the float32 "
                            f"weights' update overflows beyond), got {value:g}")
    if c.out == "":
        raise UserError("--out is empty (an unset shell variable?); give a run directory")
    if c.steps is None and c.epochs is None:
        raise UserError("give the run length with --epochs or --steps")
    checks = [
        (c.epochs is None or c.epochs >= 1, f"--epochs must be at least 1, got {c.epochs}"),
        (c.steps is None or c.steps >= 1, f"--steps must be at least 1, got {c.steps}"),
        (c.batch_size >= 1, f"--batch-size must be at least 1, got {c.batch_size}"),
        (c.lr > 0, f"--lr must be positive, got {c.lr}"),
        (c.warmup_lr >= 0, f"--warmup-lr must be >= 0, got {c.warmup_lr}"),
        (0 < c.warmup_until_error <= 1,
         f"warmup_until_error is a training error in (0, 1], got {c.warmup_until_error}"),
        (c.weight_decay >= 0, f"--weight-decay must be >= 0, got {c.weight_decay}"),
        (0 <= c.momentum < 1, f"--momentum must be in [0, 1), got {c.momentum}"),
        (0 <= c.warmup < 1, f"--warmup is a fraction of the run in [0, 1), got {c.warmup}"),
        (0 <= c.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {c.label_smoothing}"),
        (c.clip_norm is None or c.clip_norm > 0, f"--clip-norm must be positive, got {c.clip_norm}"),
        (c.clip_value is None or c.clip_value > 0, f"--clip-value must be positive, got {c.clip_value}"),
        (0 <= c.ema < 1, f"--ema is a decay per step in [0, 1) (e.g. 0.999; 0: off), got {c.ema}"),
        (c.val_split >= 0, f"--val-split must be >= 0, got {c.val_split}"),
        # numpy's global generator (seed_everything) takes 0 to 2**32 - 1 only; outside, a traceback mid-setup
        (0 <= c.seed < 2**32, f"--seed must be from 0 to {2**32 - 1:,} (2**32 - 1), got {c.seed}"),
        (c.val_seed is None or c.val_seed >= 0, f"--val-seed must be >= 0, got {c.val_seed}"),
        (0 <= c.translate <= 16, f"--translate is a shift in pixels from 0 to 16, got {c.translate}"),
        (c.eval_every >= 0, f"--eval-every must be >= 0, got {c.eval_every}"),
        (c.log_every >= 0, f"--log-every must be >= 0, got {c.log_every}"),
        (c.checkpoint_every >= 0, f"--checkpoint-every must be >= 0, got {c.checkpoint_every}"),
        (c.checkpoint_min_s >= 0, f"--checkpoint-min-s must be >= 0 seconds, got {c.checkpoint_min_s}"),
        (all(0 < m < 1 for m in c.milestones), f"--milestones are fractions of the run in (0, 1), got {c.milestones}"),
        (list(c.milestones) == sorted(set(c.milestones)),
         f"--milestones must increase (each a later fraction of the run), got {c.milestones}"),
        (0 < c.rollback_factor < 1, f"--rollback-factor must be in (0, 1), got {c.rollback_factor}"),
        (c.max_rollbacks >= 0, f"--max-rollbacks must be >= 0, got {c.max_rollbacks}"),
        (c.spike_factor == 0 or c.spike_factor > 1, f"--spike-factor must be > 1 (0: off), got {c.spike_factor}"),
        (c.monitor_every >= 1, f"--monitor-every must be at least 1, got {c.monitor_every}"),
        (c.workers is None or c.workers >= 0, f"--workers must be >= 0, got {c.workers}"),
        (c.dist_timeout > 0, f"--dist-timeout must be positive, got {c.dist_timeout}"),
        # under torchrun, past a timedelta's 8.6e13 s every rank ended in an OverflowError traceback
        (c.dist_timeout <= 1e9, f"--dist-timeout must be at most 1e9 seconds (31 years), got {c.dist_timeout:g}"),
        (c.image_size is None or MIN_IMAGE_SIZE <= c.image_size <= MAX_IMAGE_SIZE,
         f"--image-size must be in {MIN_IMAGE_SIZE}..{MAX_IMAGE_SIZE}, got {c.image_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
