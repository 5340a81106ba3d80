"""Verdicts of the reproductions, from the measured numbers only.

Table 6: per depth, whether our mean test error at the end of training is within
``WITHIN_POINTS`` of the paper's (or below it); only when the budget was the paper's 64k
iterations, since a shorter run says nothing about the paper's figure.

Fig. 6: whether each half of the paper's pattern showed up in the final training errors: the
plain nets get worse with every step in depth (plain20 < plain32 < plain44 < plain56), and the
deepest ResNet ends below the shallowest (resnet56 < resnet20).
"""

from __future__ import annotations

from ...text import counted
from ..degradation.findings import TIE, error_with_spread, training_gap
from .paper import PAPER_STEPS, WITHIN_POINTS


# --------------------------------------------------------------------------- Table 6

def table6_verdict(ours: float | None, paper: float | None, steps: int, data_gap: str | None = None) -> dict:
    """One depth: ``comparable`` (the paper's budget and data, and a published figure), ``gap`` (points,
    ours - paper), ``reproduced`` (gap <= WITHIN_POINTS) and the sentence. ``data_gap``: how the data
    differs from the whole CIFAR-10 (``table6.data_gap``), None when it does not."""
    if steps != PAPER_STEPS:
        return {"comparable": False, "gap": None, "reproduced": None,
                "text": f"not comparable: {counted(steps, 'step')} instead of {PAPER_STEPS:,}"}
    if data_gap:
        return {"comparable": False, "gap": None, "reproduced": None, "text": f"not comparable: {data_gap}"}
    if paper is None or ours is None:
        return {"comparable": False, "gap": None, "reproduced": None, "text": "no published figure for this depth"}
    gap = ours - paper
    reproduced = gap <= WITHIN_POINTS
    text = (f"within {WITHIN_POINTS} points of the paper (or better): {ours:.2f}% vs {paper:.2f}%" if reproduced
            else f"misses by {gap:.2f} points: {ours:.2f}% vs {paper:.2f}%")
    return {"comparable": True, "gap": gap, "reproduced": reproduced, "text": text}


def table6_findings(depths: list[dict], steps: int, data_gap: str | None = None) -> dict:
    """Every depth's verdict (by depth) and the sentences, the budget (and data unlike the paper's) first."""
    verdicts = {d["depth"]: table6_verdict(d["ours"]["mean"], d["paper_error"], steps, data_gap) for d in depths}
    budget = (f"Budget: {steps:,} iterations, the paper's schedule." if steps == PAPER_STEPS else
              f"Budget: {counted(steps, 'iteration')}, not the paper's schedule ({PAPER_STEPS:,}): no figure below "
              "can be compared with the paper's.")
    data = [f"Data: {data_gap}: no figure below can be compared with the paper's."] if data_gap else []
    text = [budget, *data] + [f"ResNet-{d}: {v['text']}." for d, v in verdicts.items()]
    return {"budget_is_papers": steps == PAPER_STEPS, "data_is_papers": not data_gap, "within_points": WITHIN_POINTS,
            "per_depth": {str(d): v for d, v in verdicts.items()}, "text": text}


# --------------------------------------------------------------------------- Fig. 6

def _ladder(nets: list[dict]) -> str:
    return " < ".join(f"{n['model']} {error_with_spread(n)}" for n in nets)


def fig6_pattern(networks: list[dict]) -> dict:
    """Whether each half of Fig. 6 showed up in the final training errors (mean over seeds).

    ``plain_degrades``: every deeper plain net ends higher than the one before it;
    ``resnet_improves``: the deepest ResNet ends lower than the shallowest (each by more than the
    degradation experiment's tie threshold, ``TIE``). Each step's gap is
    kept with the sum of the two seed spreads (``clear``: the gap exceeds it).
    """
    plain = sorted((n for n in networks if not n["shortcut"]), key=lambda n: n["depth"])
    res = sorted((n for n in networks if n["shortcut"]), key=lambda n: n["depth"])
    if len(plain) < 2:
        return {"judged": False, "plain_degrades": None, "resnet_improves": None, "steps": [],
                "text": ["One depth only: the pattern needs two or more --depths."]}
    steps = [training_gap(a, b) for a, b in zip(plain, plain[1:])]
    res_gap = training_gap(res[0], res[-1])
    # The degradation experiment's tie rule: gaps within TIE are not a rise or a fall.
    plain_degrades = all(s["gap"] > TIE for s in steps)
    resnet_improves = res_gap["gap"] < -TIE
    return {"judged": True, "plain_degrades": plain_degrades, "resnet_improves": resnet_improves,
            "pattern_shown": plain_degrades and resnet_improves, "plain_steps": steps, "resnet_gap": res_gap,
            "text": _fig6_sentences(plain, res, steps, res_gap, plain_degrades, resnet_improves)}


def _fig6_sentences(plain, res, steps, res_gap, plain_degrades: bool, resnet_improves: bool) -> list[str]:
    first = (f"Plain half: shown, final training error rises with every step in depth ({_ladder(plain)})."
             if plain_degrades else
             f"Plain half: not shown, final training error does not rise by more than {100 * TIE:.1f} points "
             "with every step in depth: "
             + ", ".join(f"{n['model']} {error_with_spread(n)}" for n in plain) + ".")
    second = (f"ResNet half: {'shown' if resnet_improves else 'not shown'}, {res[-1]['model']} ended at "
              f"{error_with_spread(res[-1])} vs {error_with_spread(res[0])} for {res[0]['model']}.")
    if len(plain[0]["seeds"]) < 2:
        return [first, second, "One seed: no spread over seeds to weigh the gaps against; give two or more --seeds."]
    unclear = [f"{s['from']} vs {s['to']}" for s in [*steps, res_gap] if not s["clear"]]
    spread = ("Every gap is larger than the spread over seeds (sum of the two standard deviations)." if not unclear
              else f"Within the spread over seeds (sum of the two standard deviations): {', '.join(unclear)}.")
    return [first, second, spread]
