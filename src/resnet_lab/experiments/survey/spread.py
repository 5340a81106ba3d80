"""One cell measured with several seeds: its per-seed runs and what they add up to for reading.

``combine_runs(cell, runs)`` keeps every seed's measurements (``runs``, what the claims are judged
from: ``findings.py``) and adds, for the table and the heat maps, per number the median over the
seeds and its ``<key>_range`` [min, max], per outcome and monitor verdict the count over the seeds
and the most common one. A median shows a typical seed; the range is what a verdict must beat.
"""

from __future__ import annotations

import statistics
from collections import Counter

from ...diagnostics.verdicts import KINDS
from .design import OUTCOMES

# Measurements that are numbers: median and [min, max] over the seeds.
NUMBERS = ("grad_first", "grad_last", "ratio", "loss_start", "loss_end", "loss_drop", "global_grad_norm")
# Steps until the loss fell below 90 % / 50 % of its start (None: never): the slowest seed's.
STEP_COUNTS = ("steps_to_90", "steps_to_half")
# Outcomes from worst to best: a tie between the most common ones reads as the worse.
_WORST_FIRST = ("diverged", "stalled", "trained")
assert set(_WORST_FIRST) == set(OUTCOMES)
# Monitor verdicts from worst to best (a tie reads as the worse): non-finite, exploding, vanishing, healthy.
_VERDICTS_WORST_FIRST = tuple(reversed(KINDS))


def median_range(values: list[float | None]) -> tuple[float | None, list[float] | None]:
    """(median, [min, max]) of the seeds' values; (None, None) if any seed has none (non-finite or
    not measured): a median over the seeds that happened to stay finite would hide the others."""
    if not values or any(v is None for v in values):
        return None, None
    return statistics.median(values), [min(values), max(values)]


def slowest(values: list[int | None]) -> int | None:
    """The step by which every seed got there; None if one never did."""
    return None if not values or any(v is None for v in values) else max(values)


def most_common(values: list[str], worst_first=()) -> str:
    """The most common value; a tie goes to the one earliest in ``worst_first`` (else the first seen)."""
    counts = Counter(values)
    top = max(counts.values())
    tied = [v for v in counts if counts[v] == top]
    return min(tied, key=lambda v: worst_first.index(v) if v in worst_first else len(worst_first))


def combine_runs(cell: dict, runs: list[dict]) -> dict:
    """The cell (its configuration), its per-seed ``runs`` and their summary (see the module docstring):
    ``seeds``; per number in ``NUMBERS`` the median and ``<key>_range``; ``steps_to_90`` and
    ``steps_to_half`` of the slowest seed; ``outcomes`` and ``verdicts`` (counts) with ``outcome``
    and ``verdict`` the most common (``outcome`` ties to the worse); ``time_s`` summed."""
    out = {**cell, "seeds": [r["seed"] for r in runs], "first_block": runs[0]["first_block"],
           "last_block": runs[0]["last_block"]}
    for key in NUMBERS:
        out[key], out[f"{key}_range"] = median_range([r[key] for r in runs])
    for key in STEP_COUNTS:
        out[key] = slowest([r[key] for r in runs])
    outcomes, verdicts = [r["outcome"] for r in runs], [r["verdict"] for r in runs]
    out.update(outcomes=dict(Counter(outcomes)), outcome=most_common(outcomes, _WORST_FIRST),
               verdicts=dict(Counter(verdicts)), verdict=most_common(verdicts, _VERDICTS_WORST_FIRST),
               time_s=sum(r["time_s"] for r in runs), runs=runs)
    return out
