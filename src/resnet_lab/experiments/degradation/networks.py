"""The networks of the degradation experiment and one entry per network: its per-seed runs
summarised as means over seeds with their spread (sample standard deviation)."""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from ...models.registry import cifar_model_name

#: How many gradient-flow snapshots to keep per network (first, last and evenly in between).
SNAPSHOTS = 4

def snapshot_epochs(epochs: int, count: int = SNAPSHOTS) -> list[int]:
    """``count`` epochs spread from the first to the last (1-based, unique)."""
    if epochs <= count:
        return list(range(1, epochs + 1))
    return sorted({round(1 + i * (epochs - 1) / (count - 1)) for i in range(count)})


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [float(v) for v in values]
    if len(values) < 2:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values)


def _columns(curves: list[list[float]]) -> tuple[list[float], list[float]]:
    """Per-position mean and sample std over seeds (curves are cut to the shortest)."""
    n = min(len(c) for c in curves)
    pairs = [_mean_std([c[i] for c in curves]) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _finite_mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(values) if values else None


def _group_norms(per_seed: list[dict]) -> list[dict]:
    """Each layer group's finite gradient norm averaged over the seeds that have one, by depth."""
    groups: dict[tuple[int, str], list[float]] = {}
    for g in per_seed:
        for group in g["groups"]:
            norm = group.get("grad_norm")
            if norm is not None and math.isfinite(norm):
                groups.setdefault((group["depth_index"], group["name"]), []).append(norm)
    return [{"name": name, "depth_index": depth, "grad_norm": statistics.fmean(v)}
            for (depth, name), v in sorted(groups.items())]


def _gradient_flow(runs: list[dict], epochs: list[int]) -> list[dict]:
    """Per snapshot epoch, each layer group's gradient norm averaged over seeds."""
    out = []
    for epoch in epochs:
        per_seed = [r["history"][epoch - 1].get("gradients") for r in runs if len(r["history"]) >= epoch]
        per_seed = [g for g in per_seed if g and g.get("groups")]
        if not per_seed:
            continue
        out.append({
            "epoch": epoch, "step": runs[0]["history"][epoch - 1]["step"], "seeds": len(per_seed),
            "global_grad_norm": _finite_mean(g.get("global_grad_norm") for g in per_seed),
            "verdicts": [g.get("verdict") for g in per_seed],
            "groups": _group_norms(per_seed),
        })
    return out


def _step_curve(runs: list[dict]) -> list[dict]:
    """The finer training-error curve, mean and spread over seeds (same steps for every seed)."""
    histories = [r["step_history"] for r in runs]
    if not all(histories):
        return []
    n = min(len(h) for h in histories)
    rows = []
    for i in range(n):
        mean, std = _mean_std([h[i]["train_error"] for h in histories])
        first = histories[0][i]
        rows.append({"step": first["step"], "epoch": round(first["epoch"], 4), "train_error": mean,
                     "train_error_std": std})
    return rows


def network_entry(kind: str, depth: int, params: int, runs: list[dict], snap: list[int],
                  shortcut: str = "A") -> dict:
    """One network's entry in the result: its curves and final errors as means over ``runs`` (one
    per seed), the finer curve, the gradient-flow snapshots at epochs ``snap`` and the runs themselves."""
    train_mean, train_std = _columns([r["train_error"] for r in runs])
    test_mean, test_std = _columns([r["test_error"] for r in runs])
    final_train, final_train_std = _mean_std([r["final_train_error"] for r in runs])
    final_test, final_test_std = _mean_std([r["final_test_error"] for r in runs])
    return {
        "model": cifar_model_name(kind, depth), "depth": depth, "shortcut": kind == "resnet",
        "shortcut_option": shortcut if kind == "resnet" else "none", "params": params,
        "seeds": [r["seed"] for r in runs], "epochs": len(train_mean),
        "train_error": train_mean, "test_error": test_mean,
        "train_error_std": train_std, "test_error_std": test_std,
        "final_train_error": final_train, "final_test_error": final_test,
        "final_train_error_std": final_train_std, "final_test_error_std": final_test_std,
        "step_curve": _step_curve(runs),
        "gradient_flow": _gradient_flow(runs, snap),
        "time_s": sum(r["time_s"] for r in runs),
        "runs": [{k: v for k, v in r.items() if k not in ("history", "step_history")} for r in runs],
    }
