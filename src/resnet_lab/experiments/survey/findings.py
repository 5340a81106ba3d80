"""The survey's claims (``CLAIMS``), each judged from the measured cells by a fixed rule.

One function per claim (``RULES``): it picks the cells the rule needs, asks of every seed (or every
pair of seeds, for "A beats B") whether the claim holds there, and lets ``decide`` turn those
answers into the verdict; the evidence (the numbers, with their spread over the seeds and the
budget) is written by separate sentence functions. A contradiction is a valid outcome: the rule is
never bent to make a claim come out true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from ...text import counted
from .design import CLAIMS, DEEP, ORDER, VANISH_RATIO

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "supported", "contradicted", "inconclusive", "not measured"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)


# ---------------------------------------------------------------------------------- the one rule for every claim

def decide(answers: Iterable[bool | None]) -> str:
    """The verdict from what each seed says: SUPPORTED if the claim holds in every seed,
    CONTRADICTED if it fails in every seed, INCONCLUSIVE (at this budget) otherwise.

    Each answer is True (holds in this seed), False (fails) or None (this seed cannot tell at this
    budget, e.g. a run that neither trained nor broke down). Why: one short run of one seed is a
    finding about the budget, not the network; a verdict must survive the seed-to-seed spread.
    Applied to a threshold ("ratio < 1e-3"), every seed must be on the same side: the seeds'
    [min, max] must not straddle the threshold. Applied to a comparison ("A beats B"), the answers
    are every seed of A against every seed of B (``pairs``): supported only if A's worst seed beats
    B's best, i.e. the cases' difference exceeds both seed spreads; overlapping spreads are
    inconclusive.
    """
    answers = list(answers)
    if answers and all(a is True for a in answers):
        return SUPPORTED
    if answers and all(a is False for a in answers):
        return CONTRADICTED
    return INCONCLUSIVE


def every(verdicts: Iterable[str]) -> str:
    """A claim about several cells (every depth): CONTRADICTED if one cell contradicts it (a
    counterexample is enough), SUPPORTED if every cell supports it, INCONCLUSIVE otherwise."""
    verdicts = list(verdicts)
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    return SUPPORTED if verdicts and all(v == SUPPORTED for v in verdicts) else INCONCLUSIVE


def pairs(a: dict, b: dict, holds: Callable[[dict, dict], bool | None]) -> list[bool | None]:
    """``holds(run of a, run of b)`` for every seed of ``a`` against every seed of ``b``."""
    return [holds(x, y) for x in a["runs"] for y in b["runs"]]


# ---------------------------------------------------------------------------------- comparing two runs

def trains_better(a: dict, b: dict, by_verdict: bool = False, at_least: bool = False) -> bool | None:
    """Does run ``a`` train better than run ``b`` (``at_least``: as well)? A run that trained (its loss
    fell TRAINED_DROP) beats one that did not; then (``by_verdict``) healthy gradients beat any other
    monitor verdict; then, both trained, the larger loss drop. Two runs that both failed to train
    (stalled, rose, blew up) are not ranked by their losses: in the first steps a deep net at lr 0.1
    often raises its loss before lowering it (resnet56 on digits: 2.4x in 16 steps, then trained by
    48), so that pair cannot tell at this budget (None)."""
    def key(run):
        return (run["outcome"] == "trained", *((run["verdict"] == "healthy",) if by_verdict else ()))

    if key(a) != key(b):
        return key(a) > key(b)
    if a["outcome"] != "trained":
        return None
    return a["loss_drop"] >= b["loss_drop"] if at_least else a["loss_drop"] > b["loss_drop"]


# ---------------------------------------------------------------------------------- words for numbers

def fmt(x) -> str:
    return "nan" if x is None else f"{x:.3g}"


def fmt_ratio(x) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def pct(x) -> str:
    """``12%``, ``-3%``, never ``-0%``."""
    return f"{100 * x:.0f}%".replace("-0%", "0%")


def spread(c: dict, key: str, fmt_one: Callable = fmt_ratio) -> str:
    """``6.5 (6.4..7.3)``: the median over the seeds and their min..max (one seed: the value); where a
    seed has no value (non-finite), every seed's: ``per seed n/a, 12%, n/a``, or ``n/a`` if none has one."""
    if c[key] is None:
        values = [r[key] for r in c["runs"]]
        if all(v is None for v in values):
            return "n/a"
        return "per seed " + ", ".join(fmt_one(v) if v is not None else "n/a" for v in values)
    lo, hi = c[f"{key}_range"]
    return fmt_one(c[key]) if len(c["runs"]) == 1 or lo == hi else f"{fmt_one(c[key])} ({fmt_one(lo)}..{fmt_one(hi)})"


def outcome_counts(c: dict) -> str:
    """``trained 3/3`` or ``trained 2/3, stalled 1/3``."""
    n = len(c["runs"])
    return ", ".join(f"{k} {v}/{n}" for k, v in sorted(c["outcomes"].items(), key=lambda kv: -kv[1]))


def verdict_counts(c: dict) -> str:
    """``healthy 3/3`` or ``exploding 1/2, healthy 1/2``: the monitor's verdicts over the seeds."""
    n = len(c["runs"])
    return ", ".join(f"{k} {v}/{n}" for k, v in c["verdicts"].items())


def _short(c: dict) -> str:
    """``loss drop 12% (8..15%), trained 3/3``."""
    return f"loss drop {spread(c, 'loss_drop', pct)}, {outcome_counts(c)}"


def _describe(c: dict) -> str:
    """``plain20-batch-relu-he: loss drop 64% (60..70%) in 30 steps, trained 3/3, monitor healthy 3/3``."""
    return (f"{c['name']}: loss drop {spread(c, 'loss_drop', pct)} in {counted(c['steps'], 'step')}, "
            f"{outcome_counts(c)}, monitor {verdict_counts(c)}")


def _ratios(cells: list[dict]) -> str:
    return ", ".join(f"{c['name']} {spread(c, 'ratio')}" for c in cells)


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


def _budget(cells: list[dict], trained: bool) -> dict:
    """What the verdict rests on: seeds, and SGD steps (a training claim) or batches at init."""
    c = cells[0]
    budget = {"seeds": len(c["runs"])}
    budget.update({"steps": c["steps"]} if trained else {"batches_at_init": c["batches_at_init"]})
    return budget


def _measured(cells: list[dict], key: str) -> dict:
    """The per-seed values the rule compared, by cell: the spread behind the verdict, for results.json."""
    return {c["name"]: {key: [r[key] for r in c["runs"]], "outcome": [r["outcome"] for r in c["runs"]]}
            for c in cells}


def _claim(key: str, verdict: str, evidence: str, cells: list[dict], judged: list[dict], measure: str,
           trained: bool) -> dict:
    """A judged claim; ``judged`` are the cells the rule read (``cells`` adds those reported alongside)."""
    return {"id": key, "claim": CLAIMS[key], "verdict": verdict,
            "supported": {SUPPORTED: True, CONTRADICTED: False}.get(verdict), "budget": _budget(judged, trained),
            "measured": _measured(judged, measure), "evidence": evidence, "cells": [c["name"] for c in cells]}


def _unmeasured(key: str, why: str, cells: list[dict] = ()) -> dict:
    """Nothing tested; ``cells``: those measured that could not test it (recorded, for a rerun)."""
    return {"id": key, "claim": CLAIMS[key], "verdict": NOT_MEASURED, "supported": None, "budget": None,
            "measured": _measured(cells, "loss_drop"), "evidence": f"not measured: {why}",
            "cells": [c["name"] for c in cells]}


# ---------------------------------------------------------------------------------- the claims, one rule each

def trainable(run: dict) -> bool | None:
    """A run shows its net trainable (it trained), untrainable (its loss became non-finite: the run is
    dead) or nothing (None): a loss that has not fallen TRAINED_DROP yet, or rose in the first steps,
    does not show that the net cannot be trained, only that the budget was too short to tell."""
    if run["outcome"] == "trained":
        return True
    return False if run["loss_end"] is None else None


def bn_plain_trainable(m: Cells) -> dict:
    """Every plain BN baseline of depth 20-99 is ``trainable`` in every seed; the no-norm twins are
    reported alongside."""
    key = "bn_plain_trainable"
    tens = [d for d in m.depths if DEEP <= d < 100 and m.find("plain", d, "batch", "relu", "he")]
    if not tens:
        return _unmeasured(key, f"needs a plain net of {DEEP} to 99 layers (e.g. --depths 20 56)")
    bn = m.baselines("plain", tens)
    none = [c for c in (m.find("plain", d, "none", "relu", "he") for d in tens) if c]
    verdict = every(decide(trainable(r) for r in c["runs"]) for c in bn)
    return _claim(key, verdict, _bn_evidence(bn, none), bn + none, bn, "loss_drop", trained=True)


def _bn_evidence(bn: list[dict], none: list[dict]) -> str:
    evidence = "; ".join(_describe(c) for c in bn)
    if none:
        evidence += " -- without normalisation: " + "; ".join(_describe(c) for c in none)
    return evidence


def residual_gradient(m: Cells) -> dict:
    """Every residual BN baseline has 1/ORDER <= first/last <= ORDER in every seed; the plain twins
    are reported alongside."""
    key = "residual_gradient"
    res = m.baselines("residual", m.depths)
    if not res:
        return _unmeasured(key, "needs residual batch/relu/he cells")
    plain = m.baselines("plain", m.depths)

    def within(run):
        return run["ratio"] is not None and 1 / ORDER <= run["ratio"] <= ORDER

    verdict = every(decide(within(r) for r in c["runs"]) for c in res)
    evidence = "first/last block gradient at init: " + _ratios(res)
    if plain:
        evidence += "; plain twins: " + _ratios(plain)
    return _claim(key, verdict, evidence, res + plain, res, "ratio", trained=False)


def sigmoid_vanishes(m: Cells) -> dict:
    """In the deepest plain net without normalisation, sigmoid's first/last < VANISH_RATIO (the
    monitor's threshold) at init in every seed; the BN and residual sigmoid twins are reported alongside."""
    key = "sigmoid_vanishes"
    if not m.deep or m.deep < DEEP:  # at 8 layers the attenuation is a matter of degree, not the claim
        return _unmeasured(key, f"needs a net of {DEEP} or more layers (e.g. --depths 20 56)")
    c = m.find("plain", m.deep, "none", "sigmoid", "he")
    if c is None:
        return _unmeasured(key, "needs a plain none/sigmoid/he cell")
    verdict = decide(r["ratio"] is not None and r["ratio"] < VANISH_RATIO for r in c["runs"])
    others = [o for o in (m.find("plain", m.deep, "batch", "sigmoid", "he"),
                          m.find("residual", m.deep, "none", "sigmoid", "he")) if o]
    return _claim(key, verdict, _sigmoid_evidence(c, others), [c] + others, [c], "ratio", trained=False)


def _sigmoid_evidence(c: dict, others: list[dict]) -> str:
    evidence = (f"{c['name']}: first/last {spread(c, 'ratio')} at init (the monitor's vanishing threshold is "
                f"{VANISH_RATIO:g}); in training {_short(c)}")
    if others:
        evidence += "; " + "; ".join(f"{o['name']}: first/last {spread(o, 'ratio')}" for o in others)
    return evidence


def he_beats_normal(m: Cells) -> dict:
    """In the deepest plain net WITHOUT normalisation (with BatchNorm the weight scale is normalised
    away), He ``trains_better(by_verdict=True)`` than normal(0.01) for every pair of seeds: outcome,
    then healthy gradients, then (both trained) loss drop. The residual pair and the BN pair are
    reported alongside."""
    key = "he_beats_normal"
    if not m.deep or m.deep < DEEP:
        return _unmeasured(key, f"needs a net of {DEEP} or more layers, as the claim is about deep nets "
                                "(e.g. --depths 20 56)")
    he, normal = (m.find("plain", m.deep, "none", "relu", init) for init in ("he", "normal"))
    if he is None or normal is None:
        return _unmeasured(key, "needs plain none/relu/he and none/relu/normal cells")
    verdict = decide(pairs(he, normal, lambda a, b: trains_better(a, b, by_verdict=True)))
    shown = [(shortcut, norm, m.find(shortcut, m.deep, norm, "relu", "he"),
              m.find(shortcut, m.deep, norm, "relu", "normal"))
             for shortcut, norm in (("residual", "none"), ("plain", "batch"))]
    shown = [p for p in shown if p[2] and p[3]]
    return _claim(key, verdict, _init_evidence(he, normal, shown), [he, normal] + [c for p in shown for c in p[2:]],
                  [he, normal], "loss_drop", trained=True)


def _init_evidence(he: dict, normal: dict, shown: list[tuple]) -> str:
    evidence = " vs ".join(f"{_describe(c)}, first-block gradient {spread(c, 'grad_first', fmt)} at init"
                           for c in (he, normal))
    for shortcut, norm, a, b in shown:
        evidence += f"; {shortcut} net, norm {norm}: he {_short(a)} vs normal {_short(b)}"
    return evidence


def clip_prevents_blowup(m: Cells) -> dict:
    """In every seed whose unclipped high-lr run diverges, the clipped run (same seed) does not. A
    seed whose unclipped run does not blow up cannot tell (None); if none blows up, nothing is
    tested (not measured)."""
    key = "clip_prevents_blowup"
    high = [c for c in m.cells if c["group"] == "high_lr"]
    raw = next((c for c in high if c["clip_norm"] is None), None)
    clipped = next((c for c in high if c["clip_norm"] is not None), None)
    if raw is None or clipped is None:
        return _unmeasured(key, "needs the high learning-rate pair")
    base = next((c["lr"] for c in m.cells if c["group"] == "switches"), None)
    evidence = _clip_evidence(raw, clipped, base)
    if all(r["outcome"] != "diverged" for r in raw["runs"]):
        return _unmeasured(key, "no blow-up to prevent: " + evidence + "; raise --high-lr", [raw, clipped])
    answers = [None if r["outcome"] != "diverged" else c["outcome"] != "diverged"
               for r, c in zip(raw["runs"], clipped["runs"])]
    return _claim(key, decide(answers), evidence, [raw, clipped], [raw, clipped], "loss_drop", trained=True)


def _clip_evidence(raw: dict, clipped: dict, base_lr: float | None) -> str:
    times = f" ({raw['lr'] / base_lr:g}x the survey's lr)" if base_lr else ""
    return (f"at lr {raw['lr']:g}{times}, without clipping {_describe(raw)}; with "
            f"clip_norm={clipped['clip_norm']:g} {_describe(clipped)}")


def residual_trains_faster(m: Cells) -> dict:
    """The degradation problem: at the deepest depth, the residual BN baseline ``trains_better``
    (``at_least``) than the plain one for every pair of seeds."""
    key = "residual_trains_faster"
    r, p = (m.find(s, m.deep, "batch", "relu", "he") if m.deep else None for s in ("residual", "plain"))
    if r is None or p is None:
        return _unmeasured(key, "needs plain and residual batch/relu/he cells")
    verdict = decide(pairs(r, p, lambda a, b: trains_better(a, b, at_least=True)))
    return _claim(key, verdict, f"{_describe(r)} vs {_describe(p)}", [r, p], [r, p], "loss_drop", trained=True)


RULES: tuple[Callable[[Cells], dict], ...] = (bn_plain_trainable, residual_gradient, sigmoid_vanishes,
                                              he_beats_normal, clip_prevents_blowup, residual_trains_faster)


def judge_claims(cells: list[dict]) -> list[dict]:
    """Each claim in ``CLAIMS`` judged from the cells (each with its per-seed ``runs``, see
    ``spread.combine_runs``) by its rule (``RULES``, in ``CLAIMS`` order). Each claim: ``id, claim,
    verdict`` (one of ``VERDICTS``), ``supported`` (True/False, None when inconclusive or not
    measured), ``budget`` (seeds and steps or batches at init), ``measured`` (the per-seed values the
    rule read, by cell), ``evidence`` and ``cells``."""
    measured = Cells(cells)
    return [rule(measured) for rule in RULES]


def reversals(short: list[dict], long: list[dict]) -> list[str]:
    """The claims SUPPORTED in one list of judged claims and CONTRADICTED in the other (by id): a
    budget whose verdicts a longer run reverses was too short to decide them. INCONCLUSIVE at one
    and decided at the other is not a reversal."""
    other = {c["id"]: c["verdict"] for c in long}
    return [c["id"] for c in short if {c["verdict"], other.get(c["id"])} == {SUPPORTED, CONTRADICTED}]
