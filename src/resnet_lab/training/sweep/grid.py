"""A grid of training runs: ``train`` settings, some of them lists, expanded into named runs.

``Grid(axes={"model": ["resnet20", "resnet32"], "seed": [0, 1]}, fixed={"epochs": 2})`` is four
runs, ``resnet20-seed0``, ``resnet20-seed1``, ``resnet32-seed0``, ``resnet32-seed1``, in that
order. The order and the names depend only on the settings, never on the order they were given
in: the axes are sorted by ``TrainConfig``'s field order (model and data first), so the same
grid always makes the same run directories, on every machine and shard.

Runs of another kind (``task.py``: a function run in the worker, such as a survey cell) are made
as ``RunSpec`` s by their experiment; their ``Grid`` is then only the record in ``sweep.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field

from ...errors import UserError, as_python_numbers
from ...models.choices import MODEL_OPTIONS  # create_model keywords, swept like training settings (model_options)
from ..config import TrainConfig, resolve_config

#: Settings that belong to the sweep, not to a run: each run has its own directory, device and log.
NOT_SWEEPABLE = ("out", "progress", "model_options")
#: Short prefixes in run names; other settings use their name without underscores.
_NAME_PREFIX = {"model": "", "recipe": "", "data": "", "batch_size": "bs", "weight_decay": "wd",
                "label_smoothing": "ls", "warmup": "warmup", "epochs": "ep", "steps": "steps"}
#: The task of a run trained by ``train``; any other is a registered task (``task.TASKS``) its worker runs.
TRAIN = "train"
_ORDER = ["model", "data", "recipe"] + [f.name for f in dataclasses.fields(TrainConfig)] + list(MODEL_OPTIONS)


@dataclass
class Grid:
    """``axes``: setting -> list of values (every combination is a run); ``fixed``: the same for all."""

    axes: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A notebook's numpy values (np.arange(3), np.float32(0.1)) as the numbers they hold: sweep.json takes them.
        self.axes = {k: as_python_numbers(v) for k, v in self.axes.items()}
        self.fixed = {k: as_python_numbers(v) for k, v in self.fixed.items()}

    def to_dict(self) -> dict:
        return {"axes": {k: list(self.axes[k]) for k in sorted(self.axes, key=_order)}, "fixed": dict(self.fixed)}

    @classmethod
    def from_dict(cls, values: dict) -> "Grid":
        return cls(dict(values.get("axes", {})), dict(values.get("fixed", {})))


@dataclass
class RunSpec:
    """One run of the grid: its place in the full grid, its name (= directory), its settings."""

    index: int
    name: str
    settings: dict  # the axes' values for this run
    config: TrainConfig | dict  # a dict (JSON-ready) for a run that is not a train run
    task: str = TRAIN

    def config_dict(self) -> dict:
        return dict(self.config) if isinstance(self.config, dict) else self.config.to_dict()


def expand(grid: Grid) -> list[RunSpec]:
    """Every combination of the axes, in a fixed order, each resolved and validated before any run starts."""
    axes = _checked_axes(grid)
    keys = sorted(axes, key=_order)
    runs = []
    for index, values in enumerate(itertools.product(*(axes[k] for k in keys))):
        settings = dict(zip(keys, values))
        runs.append(RunSpec(index, run_name(settings), settings, resolve_run({**grid.fixed, **settings})))
    if "epochs" in axes and all(r.config.steps is not None for r in runs):
        # steps win over epochs: the runs of each epochs value trained alike, told apart by their names only
        raise UserError("the sweep axis 'epochs' changes nothing while --steps is given (steps win over epochs): "
                        "sweep --steps instead, or leave --steps out")
    names = [r.name for r in runs]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash is not None:
        raise UserError(f"two runs of the grid would share the directory {clash!r}; give settings that differ "
                        "in their names (e.g. data files with different names)")
    return runs


def _order(key: str) -> int:
    return _ORDER.index(key) if key in _ORDER else len(_ORDER)


def _checked_axes(grid: Grid) -> dict:
    for key in (*grid.axes, *grid.fixed):
        if key in NOT_SWEEPABLE or key not in _ORDER:
            raise UserError(f"{key!r} is not a setting a sweep can set; use training settings "
                            f"(see 'resnet-lab train --help') or model options ({', '.join(MODEL_OPTIONS)})")
    _check_worker_owned(grid)
    both = set(grid.axes) & set(grid.fixed)
    if both:
        raise UserError(f"{', '.join(sorted(both))} given both as an axis and as a fixed setting; give it once")
    axes = {}
    for key, values in grid.axes.items():
        values = _listed(values)
        if not values:
            raise UserError(f"the sweep axis {key!r} has no values; give at least one")
        if len(set(map(repr, values))) != len(values):
            raise UserError(f"the sweep axis {key!r} repeats a value ({values}); give each value once")
        axes[key] = values
    return axes


def _check_worker_owned(grid: Grid) -> None:
    """The device and the report are the worker's to set (``worker.py``), whatever a run's settings say:
    given in a grid they were passed over in silence (a run given device cpu trained on the sweep's GPU)."""
    if "device" in grid.fixed or "device" in grid.axes:
        raise UserError("'device' is not a setting of one run: the sweep places each run on one of its devices; "
                        "give run_sweep(..., devices=[...]) (--devices) instead")
    reports = [grid.fixed.get("report", "none"), *_listed(grid.axes.get("report", []))]
    if any(report != "none" for report in reports):
        raise UserError("a sweep's runs draw no report (their time is for training): leave 'report' out (or give "
                        "'none') and draw one afterwards with 'resnet-lab report RUN_DIR'")


def _listed(values) -> list:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def resolve_run(settings: dict) -> TrainConfig:
    """A run's ``TrainConfig``, as ``resnet-lab train`` would resolve the same flags."""
    settings = dict(settings)
    recipe = settings.pop("recipe", None) or "default"
    options = {k: settings.pop(k) for k in MODEL_OPTIONS if settings.get(k) is not None}
    for k in MODEL_OPTIONS:
        settings.pop(k, None)
    if "milestones" in settings and settings["milestones"] is not None:
        settings["milestones"] = tuple(settings["milestones"])
    config = resolve_config(recipe, model_options=options or None, **settings)
    config.progress = False  # workers write to log files: one line per epoch, no progress bar
    return config


def run_name(settings: dict) -> str:
    """``resnet20-seed0``: the run's axis values, each with a short prefix, safe as a folder name."""
    parts = [_name_part(k, v) for k, v in settings.items()]
    return "-".join(parts) or "run"


def _name_part(key: str, value) -> str:
    if key == "data" and isinstance(value, str) and ":" in value:  # npz:../x/cifar10-small.npz -> npz_cifar10-small
        kind, _, path = value.partition(":")
        stem = re.split(r"[\\/]", path.rstrip("/\\"))[-1].rsplit(".", 1)[0]
        value = f"{kind}_{stem}"
    prefix = _NAME_PREFIX.get(key, key.replace("_", ""))
    if isinstance(value, bool):
        return prefix if value else f"no{prefix}"
    text = f"{prefix}{value:g}" if isinstance(value, float) else f"{prefix}{value}"
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", text)
    return text.lstrip(".") or "_"
