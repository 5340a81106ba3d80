"""``run_survey``'s keywords as one object: ``SurveySettings``, built and checked once by ``from_keywords``.

The helpers of ``run.py`` and ``concurrent.py`` take it instead of the keywords one by one. Without
torch (as ``design.py``): only resolving a sweep's devices imports it, as ``pick_device`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from os import PathLike

from ...errors import UserError, check_positive_int, shown
from ...models.choices import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ...training.sweep import check_devices
from .concurrent import check_sweepable


@dataclass(frozen=True)
class SurveySettings:
    """Every keyword of ``run_survey`` but ``log``, with the values it filled in and checked.

    ``depths`` sorted, each once; ``high_lr`` (default 10x ``lr``) and ``high_lr_depth`` (default 20
    if measured, else the deepest depth) given; ``devices`` each device of a sweep resolved
    (``--devices``, default ``[device]``), None without ``jobs``.
    """

    depths: tuple[int, ...]
    data: str
    data_dir: str | None
    steps: int
    seeds: int
    batches_at_init: int
    batch_size: int
    image_size: int | None
    lr: float
    high_lr: float
    high_lr_depth: int
    clip_norm: float
    seed: int
    full: bool
    only: Iterable[str] | None
    device: str
    threads: int | None
    jobs: int | str | None
    devices: tuple[str, ...] | None
    out: str | PathLike | None

    @classmethod
    def from_keywords(cls, depths, *, lr, high_lr, high_lr_depth, **keywords) -> SurveySettings:
        """The settings of ``run_survey(depths, **keywords)``; a ``UserError`` for the first bad value."""
        depths = (depths,) if isinstance(depths, int) else _as_tuple(depths, "depths", "[8, 20, 56] (or one depth)")
        if keywords.get("only") is not None and not isinstance(keywords["only"], str):  # one name: not its letters
            keywords["only"] = _as_tuple(keywords["only"], "only", "['resnet20-batch-relu-he'] (or one cell name)")
        high_lr = 10 * lr if high_lr is None else high_lr
        if high_lr_depth is None:
            high_lr_depth = 20 if 20 in depths else (max(depths) if depths else 20)
        given = cls(depths=depths, lr=lr, high_lr=high_lr, high_lr_depth=high_lr_depth, **keywords)
        given.check()
        devices = None if given.jobs is None else tuple(check_devices(given.devices or [given.device]))
        counts = {name: int(getattr(given, name)) for name in ("steps", "seeds", "batches_at_init", "batch_size")}
        return replace(given, depths=tuple(sorted(set(depths))), devices=devices, **counts)  # numpy ints: plain

    def check(self) -> None:
        """Refuse, in one line and before any work, the first bad value (``UserError``)."""
        _check_depths(self.depths, self.high_lr_depth)
        for name in ("steps", "seeds", "batches_at_init", "batch_size"):
            check_positive_int(name.replace("_", "-"), getattr(self, name))
        for name in ("lr", "high_lr", "clip_norm"):
            value = getattr(self, name)
            # bool is an int to Python: lr=True would train at 1.0
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise UserError(f"{name.replace('_', '-')} must be a positive number, got {value!r}")
        if self.image_size is not None and (isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
                                            or not MIN_IMAGE_SIZE <= self.image_size <= MAX_IMAGE_SIZE):
            raise UserError(f"image-size must be an integer from {MIN_IMAGE_SIZE} (CIFAR nets halve it twice) to "
                            f"{MAX_IMAGE_SIZE}, got {self.image_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.threads is not None:
            check_positive_int("threads", self.threads)
        if not isinstance(self.full, bool):  # full="no" is true to Python: 36 cells a depth
            raise UserError(f"full must be True or False, got {shown(self.full)}")
        if self.out is not None and not isinstance(self.out, (str, PathLike)):
            raise UserError(f"out is a folder path (a str or Path), got {shown(self.out)}")
        check_sweepable(self.jobs, self.threads, self.devices, self.out)

    @property
    def seed_list(self) -> list[int]:
        """The seeds each cell is measured with: ``seed``, ``seed + 1``, ... (``seeds`` of them)."""
        return list(range(self.seed, self.seed + self.seeds))


def _as_tuple(values, name: str, example: str) -> tuple:
    """A list where one goes as a tuple; None or a number there is refused in one line (it was a TypeError)."""
    try:
        return tuple(values)
    except TypeError:
        raise UserError(f"{name} must be a list such as {example}, got {shown(values)}") from None


def _check_depths(depths, high_lr_depth) -> None:
    if not depths:
        raise UserError("give at least one depth, e.g. --depths 8 20 56")
    for d in list(depths) + [high_lr_depth]:
        if isinstance(d, bool) or not isinstance(d, int):
            raise UserError(f"depths must be integers, got {shown(d)}")
        if d < 8 or (d - 2) % 6:
            near = sorted({max(8, d - (d - 2) % 6), max(8, d - (d - 2) % 6 + 6)})
            raise UserError(f"depth {d}: the survey uses CIFAR-style nets with 6n+2 layers (8, 14, 20, 26, 32, 44, "
                            f"56, 110, ...); nearest: {', '.join(map(str, near))}")
