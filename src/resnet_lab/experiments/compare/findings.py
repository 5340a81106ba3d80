"""The verdict of a model comparison: plain sentences, derived only from the measured numbers, on
which model to pick for which budget.

``verdict(rows, settings)`` picks what to compare (the fastest model, the models with a published
accuracy, the latency frontier); each sentence family is written by its own small function.
"""

from __future__ import annotations

from .reference import best_reference


def _times(a: float, b: float, more: str, less: str) -> str:
    """'1.47x faster' / '1.12x slower' for a against b."""
    return f"{a / b:.2f}x {more}" if a >= b else f"{b / a:.2f}x {less}"


# --------------------------------------------------------------------------- speed and cost

def speed_sentence(fast: dict, r: dict, batch: int) -> str:
    """How much faster the fastest-training model trains and infers than ``r``."""
    return (f"{fast['name']} trains {_times(fast['train_images_per_s'], r['train_images_per_s'], 'faster', 'slower')} "
            f"than {r['name']} ({fast['train_images_per_s']:.1f} vs {r['train_images_per_s']:.1f} images/s at batch "
            f"{batch}), infers {_times(fast['infer_images_per_s'], r['infer_images_per_s'], 'faster', 'slower')} "
            f"({fast['infer_images_per_s']:.1f} vs {r['infer_images_per_s']:.1f} images/s) and takes "
            f"{fast['latency_ms_batch1']:.1f} vs {r['latency_ms_batch1']:.1f} ms for one image.")


def cost_sentence(fast: dict, r: dict, batch: int) -> str:
    """Parameters, FLOPs and training memory of ``r`` relative to the fastest model."""
    return (f"{r['name']} has {r['params'] / fast['params']:.2f}x the parameters of {fast['name']} "
            f"({r['params'] / 1e6:.1f}M vs {fast['params'] / 1e6:.1f}M), {r['gflops'] / fast['gflops']:.2f}x the FLOPs "
            f"({r['gflops']:.2f} vs {fast['gflops']:.2f} GFLOPs per image) and needs "
            f"{r['peak_train_memory_mib'] / fast['peak_train_memory_mib']:.2f}x the training memory "
            f"({r['peak_train_memory_mib']:.0f} vs {fast['peak_train_memory_mib']:.0f} MiB at batch {batch}).")


def unscored_sentence(unscored: list[str], fast: dict, accuracy_compared: bool) -> str:
    """The models without a published accuracy, and what that leaves to choose by."""
    return (f"No published accuracy for {', '.join(unscored)} (torchvision's weights cover the ImageNet "
            "resnetN nets, the papers' CIFAR-10 tables the CIFAR ResNets, both only as published), so "
            + (f"{'it is' if len(unscored) == 1 else 'they are'} left out of the accuracy sentences below."
               if accuracy_compared
               else "the choice among them rests on cost: measure accuracy on your own task, and at equal "
                    f"accuracy prefer {fast['name']}, the fastest to train."))


INPUT_SIZE_NOTE = ("The accuracies are torchvision's at 224x224, but these timings used smaller inputs: "
                   "read the ratios, not the absolute ms, and rerun at the native size before fixing a budget.")


# --------------------------------------------------------------------------- ImageNet accuracy vs latency

def not_worth_it_sentence(a: dict, b: dict, acc_a: float, acc_b: float) -> str:
    return (f"{b['name']} is not worth it: {a['name']} is faster at batch 1 and at least as accurate "
            f"({acc_a:.3f}% vs {acc_b:.3f}% top-1 with torchvision's best weights).")


def gain_sentence(a: dict, b: dict, best: dict) -> str:
    """What ``b``'s extra top-1 over the faster ``a`` costs in latency and FLOPs."""
    (wa, acc_a), (wb, acc_b) = best[a["name"]], best[b["name"]]
    gain = acc_b - acc_a
    extra_ms = b["latency_ms_batch1"] - a["latency_ms_batch1"]
    extra_gf = b["gflops_native"] - a["gflops_native"]
    per_ms = f" ({gain / extra_ms:.3f} points per extra ms)" if extra_ms > 0 else ""
    per_gf = f" ({gain / extra_gf:.3f} points per extra GFLOP)" if extra_gf > 0 else ""
    return (f"With torchvision's best weights, {b['name']} ({wb}) reaches {acc_b:.3f}% top-1 against {acc_a:.3f}% "
            f"for {a['name']} ({wa}): +{gain:.2f} points for +{extra_ms:.1f} ms per image at batch 1{per_ms} and "
            f"+{extra_gf:.2f} GFLOPs at {b['native_size']}x{b['native_size']}{per_gf}.")


def latency_frontier(by_latency: list[dict], best: dict) -> list[dict]:
    """Walk the models by latency and keep each one more accurate than all faster ones."""
    frontier = []
    for r in by_latency:
        if not frontier or best[r["name"]][1] > best[frontier[-1]["name"]][1]:
            frontier.append(r)
    return frontier


def budget_sentence(r: dict, nxt: dict, best: dict) -> str:
    """The latency budget between ``r`` and the next model on the frontier."""
    weights, acc = best[r["name"]]
    return (f"If you can afford {r['latency_ms_batch1']:.1f} ms but less than {nxt['latency_ms_batch1']:.1f} ms per "
            f"image at batch 1 on this device, choose {r['name']}: it is the most accurate model that fits "
            f"({acc:.3f}% top-1 with {weights}), and {nxt['name']} would not fit.")


def top_budget_sentence(r: dict, cheaper: dict | None, best: dict) -> str:
    """The budget from the most accurate model's latency up."""
    weights, acc = best[r["name"]]
    why = (f"it is the most accurate ({acc:.3f}% top-1 with {weights}), "
           f"+{acc - best[cheaper['name']][1]:.2f} points over {cheaper['name']}" if cheaper
           else f"it is both the fastest and the most accurate ({acc:.3f}% top-1 with {weights})")
    return (f"If you can afford {r['latency_ms_batch1']:.1f} ms or more per image at batch 1 on this device, choose "
            f"{r['name']}: {why}.")


def below_fastest_sentence(fastest: dict) -> str:
    return (f"Below {fastest['latency_ms_batch1']:.1f} ms per image none of these fits on this device: use a smaller "
            "model, smaller inputs, bf16 or a faster device.")


def training_budget_sentence(fast: dict, top: dict, best: dict) -> str:
    """The fastest-training model against the most accurate one on a fixed training-time budget."""
    ratio = fast["train_images_per_s"] / top["train_images_per_s"]
    gain = best[top["name"]][1] - best[fast["name"]][1]
    return (f"For training on a fixed time budget, {fast['name']} sees {ratio:.2f}x as many images per second "
            f"as {top['name']}; train {top['name']} only if its +{gain:.2f} points of published top-1 are "
            f"worth {ratio:.2f}x the training time.")


def _accuracy_sentences(scored: list[dict], fast: dict) -> list[str]:
    """Neighbours by latency, then which model fits which latency budget, then training time."""
    best = {r["name"]: best_reference(r["reference_top1"]) for r in scored}
    by_latency = sorted(scored, key=lambda r: r["latency_ms_batch1"])
    out = [gain_sentence(a, b, best) if best[b["name"]][1] > best[a["name"]][1]
           else not_worth_it_sentence(a, b, best[a["name"]][1], best[b["name"]][1])
           for a, b in zip(by_latency, by_latency[1:])]
    frontier = latency_frontier(by_latency, best)
    out += [budget_sentence(r, nxt, best) for r, nxt in zip(frontier, frontier[1:])]
    out.append(top_budget_sentence(frontier[-1], frontier[-2] if len(frontier) > 1 else None, best))
    out.append(below_fastest_sentence(frontier[0]))
    if fast["name"] in best and fast is not frontier[-1]:
        out.append(training_budget_sentence(fast, frontier[-1], best))
    return out


# --------------------------------------------------------------------------- CIFAR-10 accuracy vs training time

def cifar_listing_sentence(by_speed: list[dict]) -> str:
    listing = ", ".join(f"{r['name']} {r['paper_cifar10']:.2f}%" for r in by_speed)
    return (f"Published CIFAR-10 test accuracy with the papers' own recipe (He et al. 2015, Table 6; 2016 for "
            f"pre-activation nets), fastest to train here first: {listing}.")


def cifar_step_sentence(best: dict, r: dict) -> str:
    """``r`` against the most accurate of the models that train faster (``best``)."""
    cost = best["train_images_per_s"] / r["train_images_per_s"]
    gain = r["paper_cifar10"] - best["paper_cifar10"]
    if gain <= 0:
        return (f"{r['name']} is not worth it on CIFAR-10: {best['name']} trains {cost:.2f}x faster here and "
                f"is published at least as accurate ({best['paper_cifar10']:.2f}% vs {r['paper_cifar10']:.2f}%).")
    return (f"{r['name']} buys +{gain:.2f} points of published CIFAR-10 accuracy over {best['name']} for "
            f"{cost:.2f}x its training time per image here.")


def _cifar_sentences(rows: list[dict]) -> list[str]:
    """What the papers' CIFAR-10 accuracy costs in training time measured here, fastest first."""
    by_speed = sorted(rows, key=lambda r: r["train_images_per_s"], reverse=True)
    out = [cifar_listing_sentence(by_speed)]
    best = by_speed[0]  # the most accurate of the faster models
    for r in by_speed[1:]:
        out.append(cifar_step_sentence(best, r))
        if r["paper_cifar10"] > best["paper_cifar10"]:
            best = r
    return out


# --------------------------------------------------------------------------- memory

def _memory_sentences(rows: list[dict], batch: int, method: str) -> list[str]:
    """Which models fit a training memory budget."""
    by_mem = sorted(rows, key=lambda r: r["peak_train_memory_mib"])
    lo, hi = by_mem[0], by_mem[-1]
    if hi["peak_train_memory_mib"] <= lo["peak_train_memory_mib"] * 1.05:
        return []  # within 5%: no budget separates them in practice
    how = "measured peak" if method == "cuda_max_allocated" else "estimated need"
    lower = "; a smaller batch or activation checkpointing lowers every model's need."
    if len(rows) == 2:
        return [f"With less than {hi['peak_train_memory_mib']:.0f} MiB for training at batch {batch}, only "
                f"{lo['name']} fits ({how} {lo['peak_train_memory_mib']:.0f} MiB)" + lower]
    shown = [f"{r['peak_train_memory_mib']:.0f}" for r in by_mem]
    ladder = f"{by_mem[0]['name']} {shown[0]}" + "".join(  # '=' between figures equal as shown, never '<'
        f" {'=' if mib == before else '<'} {r['name']} {mib}" for r, mib, before in zip(by_mem[1:], shown[1:], shown))
    return [f"Training memory at batch {batch} ({how}, MiB): {ladder}; a budget below a model's figure rules out "
            "that model and every one to its right" + lower]


# --------------------------------------------------------------------------- the verdict

def verdict(rows: list[dict], settings: dict) -> list[str]:
    """Plain sentences from the measured numbers: speed ratios, what extra accuracy costs, and
    which model to choose for which budget. One model: nothing to compare, no sentences."""
    if len(rows) < 2:
        return []
    batch = settings["batch_size"]
    fast = max(rows, key=lambda r: r["train_images_per_s"])
    out = []
    for r in rows:
        if r is not fast:
            out += [speed_sentence(fast, r, batch), cost_sentence(fast, r, batch)]
    scored = [r for r in rows if r["reference_top1"]]
    cifar = [r for r in rows if r.get("paper_cifar10")]
    unscored = [r["name"] for r in rows if not r["reference_top1"] and not r.get("paper_cifar10")]
    if unscored:
        out.append(unscored_sentence(unscored, fast, accuracy_compared=len(scored) >= 2 or len(cifar) >= 2))
    if len(scored) >= 2:
        out += _accuracy_sentences(scored, fast)
    if len(cifar) >= 2:
        out += _cifar_sentences(cifar)
    out += _memory_sentences(rows, batch, settings["memory_method"])
    if settings["notes"] and any(r["input_size"] != r["native_size"] for r in rows) and scored:
        out.append(INPUT_SIZE_NOTE)
    return out
