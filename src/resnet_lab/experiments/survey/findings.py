"""The survey's claims (``CLAIMS``), each judged from the measured cells by a fixed rule.

One function per claim (``RULES``): it picks the cells the rule needs, applies the rule, and has
the evidence (the numbers that support or contradict the claim) written by a separate sentence
function. A contradiction is a valid outcome: the rule is never bent to make a claim come out true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .design import CLAIMS, ORDER, VANISH_RATIO

_OUTCOME_RANK = {"diverged": 0, "stalled": 1, "trained": 2}


def training_rank(c: dict, by_verdict: bool = False) -> tuple:
    """How well a cell trained, for "X beats Y": outcome (trained > stalled > diverged), then (with
    ``by_verdict``) a healthy monitor verdict over any other, then the loss drop."""
    drop = -math.inf if c["loss_drop"] is None else c["loss_drop"]
    healthy = (1 if c["verdict"] == "healthy" else 0,) if by_verdict else ()
    return (_OUTCOME_RANK[c["outcome"]], *healthy, drop)


# ---------------------------------------------------------------------------------- words for numbers

def fmt(x) -> str:
    return "nan" if x is None else f"{x:.3g}"


def fmt_ratio(x) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def _short(c: dict) -> str:
    """``loss drop 12% (healthy)`` or ``diverged (exploding)``."""
    if c["outcome"] == "diverged":
        return f"diverged ({c['verdict']})"
    pct = f"{100 * c['loss_drop']:.0f}%".replace("-0%", "0%")
    return f"loss drop {pct} ({c['verdict']})"


def _describe(c: dict) -> str:
    """``plain20-batch-relu-he: loss fell 64% in 30 steps``."""
    steps = c["steps_run"]
    if c["outcome"] == "diverged":
        what = ("loss became non-finite" if c["loss_end"] is None else
                f"loss rose from {c['loss_start']:.3g} to {c['loss_end']:.3g}")
        return f"{c['name']}: {what} (diverged, {c['verdict']})"
    pct = round(abs(100 * c["loss_drop"]))
    if pct == 0:
        return f"{c['name']}: loss did not move in {steps} steps ({c['outcome']})"
    verb = "fell" if c["loss_drop"] >= 0 else "rose"
    return f"{c['name']}: loss {verb} {pct}% in {steps} steps ({c['outcome']})"


def _ratios(cells: list[dict]) -> str:
    return ", ".join(f"{c['name']} {fmt_ratio(c['ratio'])}" for c in cells)


# ---------------------------------------------------------------------------------- the cells a rule reads

@dataclass
class Cells:
    """The measured cells, indexed for the rules: ``find(shortcut, depth, norm, activation, init)``."""
    cells: list[dict]

    def __post_init__(self):
        self._index = {(c["group"], c["shortcut"], c["depth"], c["norm"], c["activation"], c["init"],
                        c["clip_norm"]): c for c in self.cells}
        self.depths = sorted({c["depth"] for c in self.cells if c["group"] == "switches"})
        self.deep = max(self.depths) if self.depths else None

    def find(self, shortcut, depth, norm, activation, init, group="switches", clip_norm=None):
        return self._index.get((group, shortcut, depth, norm, activation, init, clip_norm))

    def baselines(self, shortcut: str, depths) -> list[dict]:
        """The batch/relu/he cells of ``shortcut`` at ``depths`` that were measured."""
        return [c for c in (self.find(shortcut, d, "batch", "relu", "he") for d in depths) if c]


def _claim(key: str, supported: bool | None, evidence: str, cells: list[dict]) -> dict:
    return {"id": key, "claim": CLAIMS[key], "supported": supported, "evidence": evidence,
            "cells": [c["name"] for c in cells]}


def _unmeasured(key: str, why: str) -> dict:
    return {"id": key, "claim": CLAIMS[key], "supported": None, "evidence": f"not measured: {why}", "cells": []}


# ---------------------------------------------------------------------------------- the claims, one rule each

def bn_plain_trainable(m: Cells) -> dict:
    """Every plain BN baseline of depth 20-99 trains (loss falls >= TRAINED_DROP); the no-norm twins
    are reported alongside."""
    key = "bn_plain_trainable"
    tens = [d for d in m.depths if 20 <= d < 100 and m.find("plain", d, "batch", "relu", "he")]
    if not tens:
        return _unmeasured(key, "needs a plain net of 20 to 99 layers (e.g. --depths 20 56)")
    bn = m.baselines("plain", tens)
    none = [c for c in (m.find("plain", d, "none", "relu", "he") for d in tens) if c]
    ok = all(c["outcome"] == "trained" for c in bn)
    return _claim(key, ok, _bn_evidence(bn, none), bn + none)


def _bn_evidence(bn: list[dict], none: list[dict]) -> str:
    evidence = "; ".join(_describe(c) for c in bn)
    if none:
        evidence += " -- without normalisation: " + "; ".join(_describe(c) for c in none)
    return evidence


def residual_gradient(m: Cells) -> dict:
    """Every residual BN baseline has 1/ORDER <= first/last <= ORDER; the plain twins are reported alongside."""
    key = "residual_gradient"
    res = m.baselines("residual", m.depths)
    if not res:
        return _unmeasured(key, "needs residual batch/relu/he cells")
    plain = m.baselines("plain", m.depths)
    ok = all(c["ratio"] is not None and 1 / ORDER <= c["ratio"] <= ORDER for c in res)
    evidence = "first/last block gradient at init: " + _ratios(res)
    if plain:
        evidence += "; plain twins: " + _ratios(plain)
    return _claim(key, ok, evidence, res + plain)


def sigmoid_vanishes(m: Cells) -> dict:
    """In the deepest plain net without normalisation, sigmoid's first/last < VANISH_RATIO (the
    monitor's threshold) at init; the BN and residual sigmoid twins are reported alongside."""
    key = "sigmoid_vanishes"
    c = m.find("plain", m.deep, "none", "sigmoid", "he") if m.deep else None
    if c is None:
        return _unmeasured(key, "needs a plain none/sigmoid/he cell")
    ok = c["ratio"] is not None and c["ratio"] < VANISH_RATIO
    others = [o for o in (m.find("plain", m.deep, "batch", "sigmoid", "he"),
                          m.find("residual", m.deep, "none", "sigmoid", "he")) if o]
    return _claim(key, ok, _sigmoid_evidence(c, others), [c] + others)


def _sigmoid_evidence(c: dict, others: list[dict]) -> str:
    evidence = (f"{c['name']}: first/last {fmt_ratio(c['ratio'])} at init (the monitor's vanishing "
                f"threshold is {VANISH_RATIO:g}), monitor verdict {c['verdict']}, {_describe(c).split(': ', 1)[1]}")
    if others:
        evidence += "; " + "; ".join(f"{o['name']}: first/last {fmt_ratio(o['ratio'])}, {o['verdict']}"
                                     for o in others)
    return evidence


def he_beats_normal(m: Cells) -> dict:
    """In the deepest plain net WITHOUT normalisation (with BatchNorm the weight scale is normalised
    away), He ranks above normal(0.01) by ``training_rank(by_verdict=True)``: outcome, then healthy
    gradients, then loss drop. The residual pair and the BN pair are reported alongside."""
    key = "he_beats_normal"
    he, normal = (m.find("plain", m.deep, "none", "relu", init) if m.deep else None for init in ("he", "normal"))
    if he is None or normal is None:
        return _unmeasured(key, "needs plain none/relu/he and none/relu/normal cells")
    ok = training_rank(he, by_verdict=True) > training_rank(normal, by_verdict=True)
    pairs = [(shortcut, norm, m.find(shortcut, m.deep, norm, "relu", "he"),
              m.find(shortcut, m.deep, norm, "relu", "normal"))
             for shortcut, norm in (("residual", "none"), ("plain", "batch"))]
    pairs = [p for p in pairs if p[2] and p[3]]
    return _claim(key, ok, _init_evidence(he, normal, pairs), [he, normal] + [c for p in pairs for c in p[2:]])


def _init_evidence(he: dict, normal: dict, pairs: list[tuple]) -> str:
    evidence = " vs ".join(f"{_describe(c)}, first-block gradient {fmt(c['grad_first'])} at init, "
                           f"monitor {c['verdict']}" for c in (he, normal))
    for shortcut, norm, a, b in pairs:
        evidence += f"; {shortcut} net, norm {norm}: he {_short(a)} vs normal {_short(b)}"
    return evidence


def clip_prevents_blowup(m: Cells) -> dict:
    """The unclipped high-lr run diverges and the clipped one does not. If the unclipped run does not
    blow up, nothing is tested (None)."""
    key = "clip_prevents_blowup"
    high = [c for c in m.cells if c["group"] == "high_lr"]
    raw = next((c for c in high if c["clip_norm"] is None), None)
    clipped = next((c for c in high if c["clip_norm"] is not None), None)
    if raw is None or clipped is None:
        return _unmeasured(key, "needs the high learning-rate pair")
    base = next((c["lr"] for c in m.cells if c["group"] == "switches"), None)
    supported = clipped["outcome"] != "diverged" if raw["outcome"] == "diverged" else None
    return _claim(key, supported, _clip_evidence(raw, clipped, base), [raw, clipped])


def _clip_evidence(raw: dict, clipped: dict, base_lr: float | None) -> str:
    times = f" ({raw['lr'] / base_lr:g}x the survey's lr)" if base_lr else ""
    evidence = (f"at lr {raw['lr']:g}{times}, without clipping {_describe(raw)}; with "
                f"clip_norm={clipped['clip_norm']:g} {_describe(clipped)}")
    if raw["outcome"] != "diverged":
        return "no blow-up to prevent: " + evidence + "; raise --high-lr"
    return evidence


def residual_trains_faster(m: Cells) -> dict:
    """The degradation problem: at the deepest depth, the residual BN baseline's ``training_rank``
    (outcome, then loss drop) >= the plain one's."""
    key = "residual_trains_faster"
    r, p = (m.find(s, m.deep, "batch", "relu", "he") if m.deep else None for s in ("residual", "plain"))
    if r is None or p is None:
        return _unmeasured(key, "needs plain and residual batch/relu/he cells")
    ok = training_rank(r) >= training_rank(p)
    return _claim(key, ok, f"{_describe(r)} vs {_describe(p)}", [r, p])


RULES: tuple[Callable[[Cells], dict], ...] = (bn_plain_trainable, residual_gradient, sigmoid_vanishes,
                                              he_beats_normal, clip_prevents_blowup, residual_trains_faster)


def judge_claims(cells: list[dict]) -> list[dict]:
    """Each claim in ``CLAIMS`` judged from the cells by its rule (``RULES``, in ``CLAIMS`` order);
    ``supported`` is None where the cells it needs were not measured."""
    measured = Cells(cells)
    return [rule(measured) for rule in RULES]
