"""The degradation experiment (He et al. 2015, Fig. 1 and Fig. 6): plain and residual nets of
several depths, trained with one recipe on one data set, compared on training error.

``run_degradation(depths=(20, 56))`` trains ``plain20``, ``resnet20``, ``plain56`` and ``resnet56``
(CIFAR family, option A shortcuts, so a plain net and its residual twin have the same
parameters) for every seed with identical settings, and records for each network:

* training and test error per epoch (mean over seeds, and the spread over seeds);
* a finer training-error curve every ``log_every`` steps;
* gradient-flow snapshots (per layer group gradient norm) at a few epochs.

Then it says, from the measured final training errors and never by assumption, whether
degradation showed up: the deeper *plain* net ending with a higher training error than the
shallower one, while the deeper *ResNet* ends lower than the shallower ResNet.

It returns data; ``write_degradation_outputs`` (``degradation_report``) writes ``results.json``,
the figures and ``report.html``.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError

#: Training-error gaps below this (absolute, 0.5 percentage points) are reported as ties.
TIE = 0.005
#: How many gradient-flow snapshots to keep per network (first, last and evenly in between).
SNAPSHOTS = 4
#: Points per epoch of the finer training curve when ``log_every`` is not given.
POINTS_PER_EPOCH = 4

_IMAGENET_DEPTHS = {"resnet": (18, 34, 50, 101, 152), "plain": (18, 34)}


def model_name(kind: str, depth: int) -> str:
    """The zoo name of the CIFAR-family net: ``plain56``, ``resnet56``; ``cifar_resnet50`` where the
    plain name would mean the ImageNet net."""
    return f"cifar_{kind}{depth}" if depth in _IMAGENET_DEPTHS[kind] else f"{kind}{depth}"


def _distinct_ints(values: Sequence[int], what: str, example: str) -> list[int]:
    """Integers, at least one, none repeated: the shared check for --depths and --seeds."""
    try:
        values = [int(v) for v in values]
    except (TypeError, ValueError):
        raise UserError(f"{what} must be integers such as {example}, got {values!r}") from None
    if not values:
        raise UserError(f"give at least one {what[:-1]}, e.g. --{what} {example}")
    if len(set(values)) != len(values):
        raise UserError(f"each {what[:-1]} once, please: {' '.join(map(str, values))}")
    return values


def _check_depths(depths: Sequence[int]) -> list[int]:
    from ..models import get_spec

    depths = _distinct_ints(depths, "depths", "20 56")
    for d in depths:
        get_spec(model_name("resnet", d))  # the zoo's own message for a depth that is not 6n+2
    return sorted(depths)


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    return _distinct_ints(seeds, "seeds", "0 1 2")


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


def snapshot_epochs(epochs: int, count: int = SNAPSHOTS) -> list[int]:
    """``count`` epochs spread from the first to the last (1-based, unique)."""
    if epochs <= count:
        return list(range(1, epochs + 1))
    return sorted({round(1 + i * (epochs - 1) / (count - 1)) for i in range(count)})


def _gradient_flow(runs: list[dict], epochs: list[int]) -> list[dict]:
    """Per snapshot epoch, each layer group's gradient norm averaged over seeds."""
    out = []
    for epoch in epochs:
        per_seed = [r["history"][epoch - 1].get("gradients") for r in runs if len(r["history"]) >= epoch]
        per_seed = [g for g in per_seed if g and g.get("groups")]
        if not per_seed:
            continue
        groups: dict[tuple[int, str], list[float]] = {}
        for g in per_seed:
            for group in g["groups"]:
                norm = group.get("grad_norm")
                if norm is not None and math.isfinite(norm):
                    groups.setdefault((group["depth_index"], group["name"]), []).append(norm)
        norms = [g["global_grad_norm"] for g in per_seed
                 if g.get("global_grad_norm") is not None and math.isfinite(g["global_grad_norm"])]
        out.append({
            "epoch": epoch, "step": runs[0]["history"][epoch - 1]["step"], "seeds": len(per_seed),
            "global_grad_norm": statistics.fmean(norms) if norms else None,
            "verdicts": [g.get("verdict") for g in per_seed],
            "groups": [{"name": name, "depth_index": depth, "grad_norm": statistics.fmean(v)}
                       for (depth, name), v in sorted(groups.items())],
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


def _network_entry(kind: str, depth: int, params: int, runs: list[dict], snap: list[int],
                   shortcut: str = "A") -> dict:
    train_mean, train_std = _columns([r["train_error"] for r in runs])
    test_mean, test_std = _columns([r["test_error"] for r in runs])
    final_train, final_train_std = _mean_std([r["final_train_error"] for r in runs])
    final_test, final_test_std = _mean_std([r["final_test_error"] for r in runs])
    return {
        "model": model_name(kind, depth), "depth": depth, "shortcut": kind == "resnet",
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


# --------------------------------------------------------------------------- data helpers

def limit_dataset(ds, train: int | None = None, test: int | None = None, seed: int = 0):
    """A copy of an in-memory data set with at most ``train``/``test`` images, drawn by a seeded
    shuffle (the shared CIFAR files are sorted by class, so a plain prefix would be one class)."""
    import dataclasses

    import torch

    from ..data import InMemoryDataset

    if not isinstance(ds, InMemoryDataset):
        raise UserError("a limit on the number of images needs in-memory data (digits, cifar10, npz:PATH)")
    for label, n in (("train", train), ("test", test)):
        if n is not None and n < 1:
            raise UserError(f"the {label} image limit must be at least 1, got {n}")
    g = torch.Generator().manual_seed(seed)

    def pick(x, y, n):
        if n is None or n >= len(y):
            return x, y
        idx = torch.randperm(len(y), generator=g)[:n].sort().values
        return x[idx].contiguous(), y[idx]

    x_train, y_train = pick(ds.x_train, ds.y_train, train)
    x_test, y_test = pick(ds.x_test, ds.y_test, test)
    name = ds.name if (train, test) == (None, None) else f"{ds.name} [subset]"
    return dataclasses.replace(ds, name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                               mean=None, std=None)


def resize_dataset(ds, size: int):
    """A copy of an in-memory data set with every image resized (bilinear) to ``size`` x ``size``."""
    import dataclasses

    import torch
    from torch.nn import functional as F

    from ..data import InMemoryDataset

    if not isinstance(ds, InMemoryDataset) or ds.image_size == size:
        return ds
    if size < 8:
        raise UserError(f"--image-size must be at least 8, got {size}")

    def resize(x):
        out = F.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return out.round().clamp_(0, 255).to(torch.uint8).contiguous()

    return dataclasses.replace(ds, name=f"{ds.name} at {size}x{size}", x_train=resize(ds.x_train),
                               x_test=resize(ds.x_test), mean=None, std=None)


# --------------------------------------------------------------------------- findings

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pm(net: dict, key: str = "final_train_error") -> str:
    if len(net["seeds"]) > 1:
        return f"{_pct(net[key])} ± {100 * net[key + '_std']:.1f}"
    return _pct(net[key])


def _compare(shallow: dict, deep: dict) -> tuple[float, bool]:
    """(deep - shallow final training error, whether the gap exceeds the seed spread)."""
    gap = deep["final_train_error"] - shallow["final_train_error"]
    spread = deep["final_train_error_std"] + shallow["final_train_error_std"]
    return gap, abs(gap) > spread


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
    text: list[str] = []
    seeds = settings.get("seeds", [])
    n_seeds = len(seeds)
    over = f" (mean over {n_seeds} seeds ± sample std)" if n_seeds > 1 else " (one seed)"
    result = {"degradation_plain": False, "deeper_resnet_better": False, "degradation_observed": False,
              "compared": None, "tie_threshold": TIE}
    if len(depths) < 2:
        d = depths[0]
        plain, res = by[(False, d)], by[(True, d)]
        text.append(f"Only one depth ({d}) was trained, so degradation (a deeper plain net training worse than a "
                    f"shallower one) cannot be judged: give two or more --depths. {plain['model']} ended at "
                    f"{_pm(plain)} training error, {res['model']} at {_pm(res)}{over}.")
        result["text"] = text
        return result

    lo, hi = depths[0], depths[-1]
    p_lo, p_hi, r_lo, r_hi = by[(False, lo)], by[(False, hi)], by[(True, lo)], by[(True, hi)]
    plain_gap, plain_clear = _compare(p_lo, p_hi)
    res_gap, res_clear = _compare(r_lo, r_hi)
    degradation_plain = plain_gap > TIE
    deeper_resnet_better = res_gap < -TIE
    observed = degradation_plain and res_gap <= TIE
    result.update(degradation_plain=degradation_plain, deeper_resnet_better=deeper_resnet_better,
                  degradation_observed=observed, compared=[lo, hi],
                  plain_gap=plain_gap, resnet_gap=res_gap)
    numbers = (f"{p_hi['model']} ended at {_pm(p_hi)} training error vs {_pm(p_lo)} for {p_lo['model']}, while "
               f"{r_hi['model']} reached {_pm(r_hi)} vs {_pm(r_lo)} for {r_lo['model']}{over}")
    epochs = settings.get("epochs_run") or settings.get("epochs")
    length = f"{epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "this run"
    if observed and deeper_resnet_better:
        text.append(f"Degradation showed up in this run: {numbers}. The deeper plain net trains worse than the "
                    "shallower one, and its residual twin with the same parameters does not: the paper's Fig. 1 "
                    "and Fig. 6 pattern.")
    elif observed:
        text.append(f"Degradation showed up in this run: {numbers}. The deeper plain net trains worse than the "
                    "shallower one, and its residual twin with the same parameters does not: it matched the "
                    "shallower ResNet within the 0.5-point tie threshold. In the paper's Fig. 6 the deeper ResNet "
                    f"ends lower; {length} on this data did not separate the two"
                    + (" (near 0% training error leaves no room to)." if r_lo["final_train_error"] < 0.02 else "."))
    elif degradation_plain:
        text.append(f"Degradation did NOT fully show up in this run: {numbers}. The deeper plain net did train worse, "
                    "but so did the deeper ResNet, so depth slowed training for both "
                    f"kinds of net here. Possible reasons: too few epochs ({length}) for the "
                    "deeper ResNet to overtake the shallower one (deeper nets start slower), a learning-rate "
                    "schedule that ends before the deep nets have converged, or data too small to separate them.")
    elif deeper_resnet_better:
        text.append(f"Degradation did NOT show up in this run: {numbers}. The deeper ResNet trained better, but so "
                    "did (or as well did) the deeper plain net. Possible reasons: batch normalisation keeps a plain "
                    "net of this depth trainable on this data, the data is too easy to separate the nets, or the run "
                    f"({length}) is too short for the plain net's optimisation difficulty to show.")
    else:
        text.append(f"Degradation did NOT show up in this run: {numbers}. Neither the deeper plain net trained worse "
                    "nor the deeper ResNet trained better. Possible reasons: too few epochs "
                    f"({length}) for any net to get far, a learning rate that does not suit these nets, or data too "
                    "easy (every net near 0% training error) or too hard to separate them.")
    if n_seeds > 1:
        unclear = [name for name, clear in ((f"{p_lo['model']} vs {p_hi['model']}", plain_clear),
                                            (f"{r_lo['model']} vs {r_hi['model']}", res_clear)) if not clear]
        if unclear:
            text.append(f"Caution: the gap {' and '.join(unclear)} is smaller than the spread over seeds "
                        "(sum of the two standard deviations); more seeds or epochs would make it conclusive.")
        else:
            text.append("Both gaps are larger than the spread over seeds (sum of the two standard deviations).")
    for d in depths:
        p, r = by[(False, d)], by[(True, d)]
        option = r.get("shortcut_option", "A")
        same = (f"both {p['params']:,} parameters: option A shortcuts add none" if p["params"] == r["params"] else
                f"{r['params']:,} vs {p['params']:,} parameters: option {option} shortcuts add projections")
        text.append(f"At depth {d}, {r['model']} ended at {_pm(r)} training error and {_pm(r, 'final_test_error')} "
                    f"test error; {p['model']} at {_pm(p)} and {_pm(p, 'final_test_error')} ({same}).")
    if len(depths) > 2:
        for kind, label in ((False, "plain"), (True, "residual")):
            ladder = ", ".join(f"{d}: {_pct(by[(kind, d)]['final_train_error'])}" for d in depths)
            text.append(f"Final training error of the {label} nets by depth: {ladder}.")
    result["text"] = text
    return result


# --------------------------------------------------------------------------- the experiment

def run_degradation(depths: Sequence[int] = (20, 56), *, data: str = "digits", seeds: Sequence[int] = (0,),
                    recipe: str = "default", epochs: int | None = None, device: str = "auto",
                    log_every: int | None = None, out: str | Path | None = None,
                    log: Callable[[str], object] | None = print, progress: bool = False, dataset=None,
                    **train_overrides) -> dict:
    """Train plain and residual nets of each depth with the same recipe, data and seeds.

    Args:
        depths: CIFAR depths (6n+2: 8, 14, 20, 32, 44, 56, 110, ...); default 20 and 56.
        data: data set spec (``digits``, ``cifar10``, ``npz:PATH``, ...), loaded once for all nets.
        seeds: one run per seed and network; curves and final errors are means over seeds, with
            their sample standard deviation as the spread.
        recipe, epochs, device, **train_overrides: as ``resolve_config`` (``batch_size``, ``lr``,
            ``schedule``, ``steps``, ``data_dir``, ``val_split``, ...), the same for every net.
        log_every: steps between points of the finer training curve (default: about
            ``POINTS_PER_EPOCH`` per epoch).
        out: also keep each net's run directory (checkpoints, metrics) in ``out/runs/<model>-seed<s>``.
        log: progress messages (``None``: silent); ``progress``: tqdm bars per epoch.
        dataset: an already loaded data set (then ``data`` only names it).
        image_size (a train override): also resizes in-memory data (digits: ``image_size=16``
            trains about four times faster than the default 32x32 upsampling of its 8x8 images).

    Returns a JSON-ready dict: ``settings``, ``networks`` (one entry per net: ``model, depth, shortcut,
    shortcut_option, params, seeds, epochs, train_error, test_error`` (lists per epoch) and their
    ``_std``, ``final_train_error, final_test_error`` and their ``_std``, ``step_curve``,
    ``gradient_flow``, ``time_s``, per-seed ``runs``), ``findings``, ``run_time_s``, ``hardware``.
    """
    from ..diagnostics import NonFiniteError
    from ..models import count_params, create_model
    from ..runtime import hardware_info, pick_device
    from ..training import resolve_config, train

    say = log or (lambda *_: None)
    depths = _check_depths(depths)
    seeds = _check_seeds(seeds)
    if log_every is not None and log_every < 0:
        raise UserError(f"log_every must be >= 0, got {log_every}")
    for reserved in ("model", "seed", "out", "data"):
        if reserved in train_overrides:
            raise UserError(f"{reserved} is set by the experiment; it cannot be overridden")
    kinds = ("plain", "resnet")
    common = dict(data=data, epochs=epochs, device=device, tensorboard=False, progress=progress, **train_overrides)
    # Every config is resolved (and validated) before any data is loaded or any net trained.
    options = dict(common.pop("model_options", None) or {})
    shortcut = options.pop("shortcut", None) or "A"
    if shortcut == "none":
        raise UserError("shortcut 'none' would make the ResNets plain; choose A (the paper's, default), B or C")
    # The plain nets never get shortcuts; any other model option applies to every net alike.
    kind_options = {"plain": options, "resnet": {**options, "shortcut": shortcut} if shortcut != "A" else options}
    common.setdefault("eval_every", 1)  # the curves need the test error of every epoch
    configs = {(k, d, s): resolve_config(recipe, model=model_name(k, d), seed=s, model_options=kind_options[k] or None,
                                         **common)
               for d in depths for k in kinds for s in seeds}
    first = configs[(kinds[0], depths[0], seeds[0])]
    dev = pick_device(first.device)
    run_dirs = {}
    if out is not None:
        for (k, d, s) in configs:
            run_dirs[(k, d, s)] = Path(out) / "runs" / f"{model_name(k, d)}-seed{s}"
        taken = [str(p) for p in run_dirs.values() if (p / "config.json").exists()]
        if taken:
            raise UserError(f"{taken[0]} already holds a run; choose another output folder or remove it")

    start = time.perf_counter()
    if dataset is None:
        from ..data import load_data

        dataset = load_data(data, first.data_dir, val_split=first.val_split, seed=0)
    if first.image_size is not None:
        dataset = resize_dataset(dataset, first.image_size)  # folder data: the trainer resizes
    steps_per_epoch = len(dataset.y_train) // first.batch_size if hasattr(dataset, "y_train") else None
    if steps_per_epoch == 0:
        raise UserError(f"batch size {first.batch_size} leaves no full batch in {dataset.description()}; "
                        "lower --batch-size")
    if log_every is None:
        log_every = max(1, (steps_per_epoch or 4 * POINTS_PER_EPOCH) // POINTS_PER_EPOCH)
    for c in configs.values():
        c.log_every = log_every
    total_steps = first.steps or (first.epochs * steps_per_epoch if steps_per_epoch else None)
    epochs_run = math.ceil(total_steps / steps_per_epoch) if total_steps and steps_per_epoch else first.epochs

    # Parameter counts from the zoo (a plain net and its option-A twin must agree).
    params = {}
    import torch

    for d in depths:
        for k in kinds:
            with torch.device("meta"):
                net = create_model(model_name(k, d), num_classes=dataset.num_classes,
                                   in_channels=dataset.in_channels, **configs[(k, d, seeds[0])].model_options)
            params[(k, d)] = count_params(net)

    say(f"degradation: {', '.join(model_name(k, d) for d in depths for k in kinds)} on "
        f"{dataset.description()}, {dev}, {len(seeds)} seed(s), {epochs_run} epochs x {steps_per_epoch} steps, "
        f"recipe {recipe}")
    networks = []
    snap = snapshot_epochs(epochs_run or 1)
    total = len(configs)
    done = 0
    for d in depths:
        for k in kinds:
            runs = []
            for s in seeds:
                c = configs[(k, d, s)]
                if out is not None:
                    c.out = str(run_dirs[(k, d, s)])
                done += 1
                say(f"[{done}/{total}] {c.model}, seed {s}")
                t0 = time.perf_counter()
                try:
                    result = train(c, log=(lambda m: say(f"  {m}")) if log else (lambda *_: None), dataset=dataset)
                except NonFiniteError as err:  # name the network; a lower lr or on_nonfinite="skip" helps
                    raise NonFiniteError(f"{c.model} (seed {s}): {err}; lower the learning rate or pass "
                                         "on_nonfinite='skip' (--on-nonfinite skip)", step=err.step,
                                         report=err.report) from err
                seconds = time.perf_counter() - t0
                history = result.history
                train_error = [1.0 - h["train_acc"] for h in history]
                test_error = [1.0 - h["test_acc"] for h in history]
                runs.append({"seed": s, "train_error": train_error, "test_error": test_error,
                             "final_train_error": train_error[-1], "final_test_error": test_error[-1],
                             "train_loss": [h["train_loss"] for h in history],
                             "test_loss": [h["test_loss"] for h in history],
                             "steps": result.steps, "time_s": seconds,
                             "images_per_s": statistics.fmean(h["images_per_s"] for h in history),
                             "history": history, "step_history": result.step_history,
                             "run_dir": str(result.run_dir) if result.run_dir else None})
                say(f"  {c.model} seed {s}: final training error {_pct(train_error[-1])}, "
                    f"test error {_pct(test_error[-1])} ({seconds:.1f} s)")
            networks.append(_network_entry(k, d, params[(k, d)], runs, snap, shortcut))

    settings = {
        "depths": depths, "seeds": seeds, "recipe": recipe, "data": data, "shortcut": shortcut,
        "data_description": dataset.description(), "eval_split": getattr(dataset, "eval_split", "test"),
        "device": str(dev), "epochs": first.epochs, "steps": first.steps, "epochs_run": epochs_run,
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "log_every": log_every,
        "snapshot_epochs": snap,
        "train": {k: v for k, v in first.to_dict().items()
                  if k not in ("model", "seed", "out", "progress", "tensorboard", "log_every", "data")},
        "effective_lr": first.effective_lr,
    }
    return {"experiment": "degradation", "settings": settings, "networks": networks,
            "findings": findings(networks, settings), "run_time_s": time.perf_counter() - start,
            "hardware": hardware_info(dev)}
