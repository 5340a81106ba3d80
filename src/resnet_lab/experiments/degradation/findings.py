"""What the degradation experiment found, from the measured final training errors, never by assumption.

``findings(networks, settings)`` computes the verdict (``judge``) and then writes it out in
sentences; each sentence family has its own small function, fed only numbers already computed.
"""

from __future__ import annotations

from ...text import counted, percent

#: Training-error gaps below this (absolute, 0.5 percentage points) are reported as ties.
TIE = 0.005


def error_with_spread(net: dict, key: str = "final_train_error") -> str:
    """``12.3% ± 0.4`` (mean over seeds ± sample std, in points), or ``12.3%`` with one seed."""
    if len(net["seeds"]) > 1:
        return f"{percent(net[key])} ± {100 * (net.get(key + '_std') or 0.0):.1f}"
    return percent(net[key])


def training_gap(shallow: dict, deep: dict) -> dict:
    """``deep - shallow`` final training error (fraction), the sum of the two seed spreads, and
    whether the gap exceeds it (``clear``)."""
    gap = deep["final_train_error"] - shallow["final_train_error"]
    spread = (shallow.get("final_train_error_std") or 0.0) + (deep.get("final_train_error_std") or 0.0)
    return {"from": shallow["model"], "to": deep["model"], "gap": gap, "spread": spread, "clear": abs(gap) > spread}


# --------------------------------------------------------------------------- computation

def judge(by: dict, lo: int, hi: int) -> dict:
    """The verdict for the shallowest (``lo``) and deepest (``hi``) depth; ``by`` maps
    (shortcut, depth) to a network. Numbers and booleans only, no prose."""
    plain, res = training_gap(by[(False, lo)], by[(False, hi)]), training_gap(by[(True, lo)], by[(True, hi)])
    degradation_plain = plain["gap"] > TIE
    return {"degradation_plain": degradation_plain, "deeper_resnet_better": res["gap"] < -TIE,
            "degradation_observed": degradation_plain and res["gap"] <= TIE, "compared": [lo, hi],
            "plain_gap": plain["gap"], "resnet_gap": res["gap"], "plain_clear": plain["clear"],
            "resnet_clear": res["clear"]}


# --------------------------------------------------------------------------- sentences

def _over(n_seeds: int) -> str:
    return f" (mean over {n_seeds} seeds ± sample std)" if n_seeds > 1 else " (one seed)"


def _run_length(settings: dict) -> str:
    epochs = settings.get("epochs_run") or settings.get("epochs")
    return counted(epochs, 'epoch') if epochs else "this run"


def one_depth_sentence(plain: dict, res: dict, depth: int, over: str) -> str:
    return (f"Only one depth ({depth}) was trained, so degradation (a deeper plain net training worse than a "
            f"shallower one) cannot be judged: give two or more --depths. {plain['model']} ended at "
            f"{error_with_spread(plain)} training error, {res['model']} at {error_with_spread(res)}{over}.")


def _numbers(p_lo: dict, p_hi: dict, r_lo: dict, r_hi: dict, over: str) -> str:
    pm = error_with_spread
    return (f"{p_hi['model']} ended at {pm(p_hi)} training error vs {pm(p_lo)} for {p_lo['model']}, while "
            f"{r_hi['model']} reached {pm(r_hi)} vs {pm(r_lo)} for {r_lo['model']}{over}")


def degradation_shown(numbers: str) -> str:
    """The paper's pattern: the deeper plain net trains worse, the deeper ResNet better."""
    return (f"Degradation showed up in this run: {numbers}. The deeper plain net trains worse than the "
            "shallower one, and its residual twin with the same parameters does not: the paper's Fig. 1 "
            "and Fig. 6 pattern.")


def degradation_shown_resnets_tied(numbers: str, length: str, shallow_resnet_error: float) -> str:
    """The deeper plain net trains worse; the deeper ResNet ties the shallower one."""
    return (f"Degradation showed up in this run: {numbers}. The deeper plain net trains worse than the "
            "shallower one, and its residual twin with the same parameters does not: it matched the "
            f"shallower ResNet within the {100 * TIE:g}-point tie threshold. In the paper's Fig. 6 the deeper ResNet "
            f"ends lower; {length} on this data did not separate the two"
            + (" (near 0% training error leaves no room to)." if shallow_resnet_error < 0.02 else "."))


def both_deeper_nets_worse(numbers: str, length: str) -> str:
    return (f"Degradation did NOT fully show up in this run: {numbers}. The deeper plain net did train worse, "
            "but so did the deeper ResNet, so depth slowed training for both "
            f"kinds of net here. Possible reasons: too few epochs ({length}) for the "
            "deeper ResNet to overtake the shallower one (deeper nets start slower), a learning-rate "
            "schedule that ends before the deep nets have converged, or data too small to separate them.")


def both_deeper_nets_better(numbers: str, length: str) -> str:
    return (f"Degradation did NOT show up in this run: {numbers}. The deeper ResNet trained better, but the "
            f"deeper plain net did not train worse (better, or within the {100 * TIE:g}-point tie threshold). Possible "
            "reasons: batch normalisation keeps a plain net of this depth trainable on this data, the data is too "
            "easy to separate the nets, or the run "
            f"({length}) is too short for the plain net's optimisation difficulty to show.")


def no_depth_effect(numbers: str, length: str) -> str:
    return (f"Degradation did NOT show up in this run: {numbers}. Neither the deeper plain net trained worse "
            "nor the deeper ResNet trained better. Possible reasons: too few epochs "
            f"({length}) for any net to get far, a learning rate that does not suit these nets, or data too "
            "easy (every net near 0% training error) or too hard to separate them.")


def headline(verdict: dict, numbers: str, length: str, shallow_resnet_error: float) -> str:
    """The first sentence: which of the five outcomes ``verdict`` is, with the numbers."""
    if verdict["degradation_observed"] and verdict["deeper_resnet_better"]:
        return degradation_shown(numbers)
    if verdict["degradation_observed"]:
        return degradation_shown_resnets_tied(numbers, length, shallow_resnet_error)
    if verdict["degradation_plain"]:
        return both_deeper_nets_worse(numbers, length)
    if verdict["deeper_resnet_better"]:
        return both_deeper_nets_better(numbers, length)
    return no_depth_effect(numbers, length)


def seed_spread_sentence(pairs: list[tuple[str, bool]]) -> str:
    """Whether each compared gap (name, clear) is larger than the spread over seeds."""
    unclear = [name for name, clear in pairs if not clear]
    if unclear:
        return (f"Caution: the gap {' and '.join(unclear)} is smaller than the spread over seeds "
                "(sum of the two standard deviations); more seeds or epochs would make it conclusive.")
    return "Both gaps are larger than the spread over seeds (sum of the two standard deviations)."


def barely_trained_sentence(networks: list[dict], num_classes: int | None) -> str | None:
    """A caution when no net got 10 points below chance training error: such a run measures its
    budget, not the networks (a 10-step run once 'showed degradation' at 82-88% error, chance 90%)."""
    if not num_classes:
        return None
    chance = 1 - 1 / num_classes
    best = min(n["final_train_error"] for n in networks)
    if best < chance - 0.10:
        return None
    return (f"Caution: every net ended within 10 points of chance ({percent(chance)} training error with "
            f"{num_classes} classes; the best {percent(best)}): they have barely started to train, so the "
            "verdict says little about depth; train longer (--epochs or --steps).")


def depth_sentence(plain: dict, res: dict, depth: int, split: str = "test") -> str:
    """Final training and test (or val) errors of one depth's twins, and their parameters."""
    option = res.get("shortcut_option", "A")
    same = (f"both {plain['params']:,} parameters: option A shortcuts add none" if plain["params"] == res["params"]
            else f"{res['params']:,} vs {plain['params']:,} parameters: option {option} shortcuts add projections")
    pm = error_with_spread
    return (f"At depth {depth}, {res['model']} ended at {pm(res)} training error and "
            f"{pm(res, 'final_test_error')} {split} error; {plain['model']} at {pm(plain)} and "
            f"{pm(plain, 'final_test_error')} ({same}).")


def ladder_sentence(label: str, errors: list[tuple[int, float]]) -> str:
    """Final training error by depth of one kind of net."""
    ladder = ", ".join(f"{d}: {percent(e)}" for d, e in errors)
    return f"Final training error of the {label} nets by depth: {ladder}."


# --------------------------------------------------------------------------- the findings

def findings(networks: list[dict], settings: dict) -> dict:
    """Whether degradation showed up, from the final training errors (mean over seeds).

    ``degradation_plain``: the deepest plain net ends with a higher training error than the
    shallowest one (by more than ``TIE``); ``deeper_resnet_better``: the deepest ResNet ends with
    a lower one than the shallowest ResNet (by more than ``TIE``); ``degradation_observed``: the
    plain nets degrade and their residual twins do not (the deeper ResNet ends lower, the paper's
    Fig. 6, or within ``TIE``: both near 0% on easy data leave no room to end lower). ``text``
    says so in sentences with the numbers.
    """
    by = {(n["shortcut"], n["depth"]): n for n in networks}
    depths = sorted({n["depth"] for n in networks})
    n_seeds = len(settings.get("seeds", []))
    result = {"degradation_plain": False, "deeper_resnet_better": False, "degradation_observed": False,
              "compared": None, "tie_threshold": TIE}
    if len(depths) < 2:
        d = depths[0]
        result["text"] = [one_depth_sentence(by[(False, d)], by[(True, d)], d, _over(n_seeds))]
        return result

    lo, hi = depths[0], depths[-1]
    p_lo, p_hi, r_lo, r_hi = by[(False, lo)], by[(False, hi)], by[(True, lo)], by[(True, hi)]
    verdict = judge(by, lo, hi)
    plain_clear, res_clear = verdict.pop("plain_clear"), verdict.pop("resnet_clear")
    result.update(verdict)
    text = [headline(verdict, _numbers(p_lo, p_hi, r_lo, r_hi, _over(n_seeds)), _run_length(settings),
                     r_lo["final_train_error"])]
    if n_seeds > 1:
        text.append(seed_spread_sentence([(f"{p_lo['model']} vs {p_hi['model']}", plain_clear),
                                          (f"{r_lo['model']} vs {r_hi['model']}", res_clear)]))
    else:
        text.append("Caution: one seed, so there is no spread over seeds to weigh the gaps against; give two "
                    "or more --seeds before reading the verdict as a finding about the networks.")
    barely = barely_trained_sentence(networks, settings.get("num_classes"))
    if barely:
        text.append(barely)
    text += [depth_sentence(by[(False, d)], by[(True, d)], d, settings.get("eval_split", "test")) for d in depths]
    if len(depths) > 2:
        text += [ladder_sentence(label, [(d, by[(kind, d)]["final_train_error"]) for d in depths])
                 for kind, label in ((False, "plain"), (True, "residual"))]
    result["text"] = text
    return result


__all__ = ["TIE", "findings", "judge"]
