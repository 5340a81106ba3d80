"""Turning a stream of per-step gradient measurements into verdicts a person can read.

Each recorded step gets one verdict, judged in this order (the first that applies wins):

``nonfinite``
    the loss, a gradient or a weight is NaN or Inf.
``exploding``
    the global gradient norm exceeds ``explode_norm``, or the global gradient norm or the
    loss is more than ``explode_factor`` times its running median over the last
    ``explode_window`` finite steps (needs at least ``MIN_HISTORY`` earlier steps).
``vanishing``
    for ``vanish_patience`` consecutive steps, the earliest quarter of the layer groups has a
    median gradient norm below ``vanish_ratio`` times that of the last quarter, or below the
    absolute ``vanish_floor``.
``healthy``
    none of the above.

Default thresholds, and why:

* ``vanish_ratio=1e-3``: a 1000x attenuation from the last layers to the first means the
  first layers barely move at any learning rate that is safe for the last ones. Healthy
  ResNets at initialisation sit around 0.3-10x (BN lets early layers get *larger*
  gradients); a sigmoid plain net of depth 56 is below 1e-12.
* ``vanish_floor=1e-8``: below this a group's update is lost in float32 rounding of its
  weights for any usual learning rate.
* ``vanish_patience=3``: one tiny gradient on one batch is noise; three in a row is a state.
* ``explode_norm=1e3``: classification nets with normalisation have global gradient norms
  of order 0.1-10; 1000 is two orders beyond that (regression on large targets may need
  more: raise it).
* ``explode_factor=10`` over the median of the last ``explode_window=20`` steps: batch to
  batch noise is within 2-3x; a tenfold jump is a divergence, and the median ignores the
  spikes that a mean would chase.
"""

from __future__ import annotations

import math
import numbers
import statistics
from collections import deque
from dataclasses import asdict, dataclass

from ..errors import UserError

KINDS = ("healthy", "vanishing", "exploding", "nonfinite")

# Number of earlier finite steps needed before the "factor over running median" rules apply.
MIN_HISTORY = 2


@dataclass(frozen=True)
class Verdict:
    """The judgement of one step: ``kind`` is one of ``KINDS``, ``reason`` is one sentence."""

    kind: str
    reason: str
    step: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.kind} at step {self.step}: {self.reason}"


@dataclass(frozen=True)
class Thresholds:
    """The knobs of the verdicts; see the module docstring for the reasoning behind defaults."""

    vanish_ratio: float = 1e-3
    vanish_floor: float = 1e-8
    vanish_patience: int = 3
    explode_norm: float | None = 1e3
    explode_factor: float | None = 10.0
    explode_window: int = 20
    explode_loss: float | None = None

    def __post_init__(self):
        # A string ("1e3" from a config file) would reach the comparisons below as a bare TypeError.
        for name in ("vanish_ratio", "vanish_floor", "explode_norm", "explode_factor", "explode_loss"):
            value = getattr(self, name)
            off = value is None and name.startswith("explode")
            if not off and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
                raise UserError(f"{name} must be a number{' or None (off)' if name.startswith('explode') else ''}, "
                                f"got {value!r}")
        for name in ("vanish_ratio", "vanish_floor"):
            if not getattr(self, name) >= 0:
                raise UserError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("vanish_patience", "explode_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UserError(f"{name} must be a positive integer, got {value!r}")
        for name in ("explode_norm", "explode_loss"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"{name} must be > 0 or None (off), got {value!r}")
        if self.explode_factor is not None and not self.explode_factor > 1:
            raise UserError(f"explode_factor must be > 1 or None (off), got {self.explode_factor!r}")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


class VerdictJudge:
    """Keeps the running history that verdicts need and judges one step at a time.

    ``depth_ordered=False`` (module-type groups) disables the vanishing rule, since
    comparing "early" and "late" groups needs groups ordered by depth.
    """

    def __init__(self, thresholds: Thresholds, group_names: list[str], depth_ordered: bool = True):
        self.t = thresholds
        self.names = group_names
        self.depth_ordered = depth_ordered
        self._norms: deque[float] = deque(maxlen=thresholds.explode_window)
        self._losses: deque[float] = deque(maxlen=thresholds.explode_window)
        self._vanish_streak = 0

    def judge(self, step: int, loss: float | None, global_grad: float, global_weight: float,
              grad_norms: list[float | None], weight_norms: list[float | None]) -> Verdict:
        verdict = (self._nonfinite(step, loss, global_grad, global_weight, grad_norms, weight_norms)
                   or self._exploding(step, loss, global_grad))
        vanishing = self._vanishing(step, grad_norms) if verdict is None else None
        if verdict is None:
            verdict = vanishing
        if verdict is None or verdict.kind != "nonfinite":
            # Only finite values enter the running medians.
            self._norms.append(global_grad)
            if _finite(loss):
                self._losses.append(loss)
        return verdict or Verdict("healthy", self._healthy_reason(global_grad, grad_norms), step)

    # -- the rules ---------------------------------------------------------------------

    def _nonfinite(self, step, loss, global_grad, global_weight, grad_norms, weight_norms):
        parts = []
        if loss is not None and not math.isfinite(loss):
            parts.append(f"loss is {loss}")
        if not math.isfinite(global_grad):
            bad = [n for n, g in zip(self.names, grad_norms) if g is not None and not math.isfinite(g)]
            parts.append(f"gradient norm is {global_grad} in {_listing(bad)}")
        if not math.isfinite(global_weight):
            bad = [n for n, w in zip(self.names, weight_norms) if w is not None and not math.isfinite(w)]
            parts.append(f"weights are non-finite in {_listing(bad)}")
        if not parts:
            return None
        self._vanish_streak = 0
        return Verdict("nonfinite", "; ".join(parts), step)

    def _exploding(self, step, loss, global_grad):
        t = self.t
        if t.explode_norm is not None and global_grad > t.explode_norm:
            return Verdict("exploding", f"global gradient norm {_fmt(global_grad)} exceeds "
                                        f"explode_norm={_fmt(t.explode_norm)}", step)
        if t.explode_loss is not None and loss is not None and loss > t.explode_loss:
            return Verdict("exploding", f"loss {_fmt(loss)} exceeds explode_loss={_fmt(t.explode_loss)}", step)
        if t.explode_factor is None:
            return None
        for what, value, history in (("global gradient norm", global_grad, self._norms),
                                     ("loss", loss, self._losses)):
            if value is None or len(history) < MIN_HISTORY:
                continue
            median = statistics.median(history)
            if median > 0 and value > t.explode_factor * median:
                return Verdict("exploding", f"{what} {_fmt(value)} is {value / median:.0f}x its running "
                                            f"median {_fmt(median)} (explode_factor={_fmt(t.explode_factor)})",
                               step)
        return None

    def _split(self, grad_norms):
        """(early names, early median, late names, late median) over groups that had gradients."""
        present = [(n, g) for n, g in zip(self.names, grad_norms) if g is not None]
        k = max(1, len(present) // 4)
        early, late = present[:k], present[-k:]
        return ([n for n, _ in early], statistics.median(g for _, g in early),
                [n for n, _ in late], statistics.median(g for _, g in late))

    def _vanishing(self, step, grad_norms):
        if not self.depth_ordered or sum(g is not None for g in grad_norms) < 2:
            self._vanish_streak = 0
            return None
        early_names, early, late_names, late = self._split(grad_norms)
        t = self.t
        if early < t.vanish_floor:
            cause = (f"early groups ({_listing(early_names)}) have median gradient norm {_fmt(early)}, "
                     f"below vanish_floor={_fmt(t.vanish_floor)}")
            if late < t.vanish_floor:
                cause += " (so do the last groups: the loss may be saturated or the units dead)"
        elif late > 0 and early < t.vanish_ratio * late:
            cause = (f"early groups ({_listing(early_names)}) have median gradient norm {_fmt(early)}, "
                     f"{early / late:.2g}x the last groups' ({_listing(late_names)}) {_fmt(late)} "
                     f"(vanish_ratio={_fmt(t.vanish_ratio)})")
        else:
            self._vanish_streak = 0
            return None
        self._vanish_streak += 1
        if self._vanish_streak < t.vanish_patience:
            return None
        return Verdict("vanishing", f"{cause} for {self._vanish_streak} steps in a row", step)

    def _healthy_reason(self, global_grad, grad_norms) -> str:
        text = f"all values finite; global gradient norm {_fmt(global_grad)}"
        if self.depth_ordered and sum(g is not None for g in grad_norms) >= 2:
            _, early, _, late = self._split(grad_norms)
            if late > 0:
                text += f"; early/late gradient ratio {early / late:.3g}"
            if self._vanish_streak:
                text += (f" (below vanish thresholds for {self._vanish_streak}/{self.t.vanish_patience} "
                         f"steps so far)")
        return text


def _listing(names: list[str], limit: int = 4) -> str:
    if not names:
        return "no group"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
