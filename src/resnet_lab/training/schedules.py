"""Learning-rate schedules as pure functions of the step, so resuming needs only the step."""

from __future__ import annotations

import bisect
import math


def lr_factor(schedule: str, step: int, total: int, warmup: float = 0.0,
              milestones: tuple[float, ...] = (0.5, 0.75)) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of a ``total``-step run.

    - ``step``: /10 at each milestone (fractions of the run; the paper's 32k and 48k of 64k);
    - ``cosine``: half-cosine from 1 to 0;
    - ``linear``: straight line from 1 to 0 (with a warm-up this is the one-cycle shape);
    - ``constant``.
    A warm-up fraction ramps linearly from ~0 to 1 first (step schedules ignore it).
    """
    if schedule == "step":
        return 0.1 ** bisect.bisect_right([round(m * total) for m in milestones], step)
    warm = warmup_steps(schedule, total, warmup)
    if step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    progress = (step - warm) / max(1, total - warm)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    raise ValueError(f"unknown schedule {schedule!r}")


def warmup_steps(schedule: str, total: int, warmup: float) -> int:
    """The steps of a ``total``-step run over which the learning rate ramps up (none for ``step``)."""
    return 0 if schedule == "step" else int(round(warmup * total))
