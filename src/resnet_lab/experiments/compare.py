"""Choose between models with numbers measured side by side on your own machine.

``compare_models(["resnet101", "resnet152"])`` builds every model on one device and measures,
interleaved round by round (model A, model B, A, B, ... so that drift in clock speed or load
hits all of them alike), after warm-up, as medians over rounds:

* training throughput: images/s of a full step (forward, cross-entropy, backward, SGD step);
* inference throughput: images/s of a batched forward pass in eval mode;
* batch-1 latency: ms for one image in eval mode;
* peak training memory: on CUDA ``torch.cuda.max_memory_allocated`` over one training step;
  elsewhere there is no allocator statistic, so it is estimated as parameters + gradients +
  optimizer state + the tensors autograd saves for backward (``memory_method`` says which).

It adds parameters, FLOPs and weighted layers (from a ``meta`` copy: free), torchvision's
published ImageNet top-1 for its weights where one exists, the papers' CIFAR-10 test accuracy for
the CIFAR nets they trained, and a ``verdict``: plain sentences,
derived only from these numbers, on which model to pick for which budget. It returns data;
printing is the CLI's job and the chart is ``compare_plot.plot_comparison``.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from typing import Callable

import torch
from torch.nn import functional as F

from ..errors import UserError
from ..models import count_flops, count_params, count_weighted_layers, create_model, get_spec
from ..runtime import hardware_info, pick_device

PRECISIONS = ("fp32", "bf16")
MIB = 2**20

# Per-device defaults: a CPU run of resnet101 vs resnet152 at 224x224 takes one to two minutes on
# two cores; a GPU needs bigger batches and more rounds for stable medians.
DEFAULTS = {
    "cpu": {"batch_size": 8, "warmup": 1, "repeats": 3, "min_time_s": 0.1},
    "cuda": {"batch_size": 64, "warmup": 3, "repeats": 10, "min_time_s": 0.25},
}
# quick=True: small enough for resnet101 vs resnet152 in well under 30 s on two CPU cores.
QUICK = {"batch_size": 4, "image_size": 64, "warmup": 1, "repeats": 5, "min_time_s": 0.05}

# Options that change neither the architecture nor the meaning of torchvision's accuracy.
_ARCH_NEUTRAL = {"init", "checkpointing", "zero_init_residual"}


# --------------------------------------------------------------------------- memory helpers

class SavedTensorCounter:
    """Context manager counting the bytes of the tensors autograd saves for backward inside it.

    A storage saved twice is counted once (in-place ops and views share it); storages whose
    ``data_ptr`` is in ``skip`` (e.g. the parameters, counted separately) are not counted.
    Wrap only the forward pass: that is where tensors are saved.
    """

    def __init__(self, skip: set[int] | None = None):
        self.bytes, self._seen = 0, set(skip or ())
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in self._seen:
            self._seen.add(storage.data_ptr())
            self.bytes += storage.nbytes()
        return t

    def __enter__(self):
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def saved_tensor_bytes(model, x, *, skip_parameters: bool = False) -> int:
    """Bytes autograd saves for backward in ``model(x).sum()`` (then runs backward to free them).

    This is the activation memory of a training step on any device, CPU included; with
    ``skip_parameters`` the parameters (also saved, by every convolution) are left out.
    """
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()} if skip_parameters else None
    with SavedTensorCounter(skip) as counter:
        loss = model(x).sum()
    loss.backward()
    return counter.bytes


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


# --------------------------------------------------------------------------- reference accuracy

def reference_top1(name: str) -> dict[str, float] | None:
    """torchvision's published ImageNet-1K top-1 (%) per weight name, e.g. for ``resnet101``
    ``{"IMAGENET1K_V1": 77.374, "IMAGENET1K_V2": 81.886}``; None where torchvision has no weights.

    Read from the weight enums' metadata shipped with torchvision: no network access.
    """
    import torchvision

    key = name.strip().lower()
    if get_spec(key).family != "imagenet" or not key.startswith("resnet"):
        return None  # CIFAR/pre-activation nets and the plain twins have no torchvision weights
    try:
        weights = torchvision.models.get_model_weights(key)
    except (ValueError, KeyError):
        return None
    out = {}
    for w in weights:
        acc = w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        if acc is not None:
            out[w.name] = float(acc)
    return out or None


#: CIFAR-10 test accuracy (%) published with each paper's own recipe (164 epochs, crop and flip):
#: He et al. 2015, Table 6 (resnet110: best of 5 runs; mean 93.39), and for the pre-activation nets
#: He et al. 2016, Tables 3 and 4.
PAPER_CIFAR10 = {"resnet20": 91.25, "resnet32": 92.49, "resnet44": 92.83, "resnet56": 93.03, "resnet110": 93.57,
                 "resnet1202": 92.07, "preact_resnet110": 93.63, "preact_resnet164": 94.54,
                 "preact_resnet1001": 95.08}


def reference_cifar10(name: str) -> float | None:
    """The papers' CIFAR-10 test accuracy (%) for ``name`` (e.g. resnet56: 93.03); None for nets
    they did not train."""
    return PAPER_CIFAR10.get(name.strip().lower())


def published_accuracy(row: dict) -> str | None:
    """A row's published accuracy in a few words: '81.886 ImageNet (IMAGENET1K_V2)',
    '93.03 CIFAR-10 (paper)', or None."""
    weights, top1 = _best_reference(row.get("reference_top1"))
    if weights:
        return f"{top1:.3f} ImageNet ({weights})"
    return f"{row['paper_cifar10']:.2f} CIFAR-10 (paper)" if row.get("paper_cifar10") else None


def _best_reference(ref: dict[str, float] | None) -> tuple[str, float] | tuple[None, None]:
    return max(ref.items(), key=lambda kv: kv[1]) if ref else (None, None)


def _same_architecture_as_default(name: str, options: dict) -> bool:
    """True when ``options`` leave the named architecture as torchvision builds it."""
    if not set(options) - _ARCH_NEUTRAL:
        return True
    with torch.device("meta"):
        default = create_model(name).config
        custom = create_model(name, **options).config
    return all(default[k] == custom[k] for k in default if k != "init")


# --------------------------------------------------------------------------- timing

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``iters`` back-to-back calls between two synchronisations
    (asynchronous CUDA work is finished before the clock is read)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def calls_for(seconds_per_call: float, min_time_s: float, cap: int = 200) -> int:
    """How many back-to-back calls make one timing last at least ``min_time_s`` (fast calls, such
    as batch-1 inference on a GPU, are too short to time one by one)."""
    if min_time_s <= 0 or seconds_per_call <= 0:
        return 1
    return max(1, min(cap, math.ceil(min_time_s / seconds_per_call)))


KINDS = ("train", "infer", "latency")


class _Runner:
    """One model on the device with its optimizer and fixed random inputs, and the three timed calls."""

    def __init__(self, name: str, device: torch.device, batch_size: int, image_size: int | None,
                 precision: str, channels_last: bool, options: dict):
        self.name, self.device, self.batch_size = name, device, batch_size
        # CUDA memory already held (earlier models) is subtracted from this model's peak.
        self.base_bytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        torch.manual_seed(0)
        self.model = create_model(name, **options).to(device)
        self.spec, cfg = self.model.spec, self.model.config
        self.size = image_size or self.spec.input_size
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # The paper's SGD with momentum 0.9; a small lr keeps random-label training finite.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch_size, cfg["in_channels"], self.size, self.size, generator=g)
        self.x = x.to(device).contiguous(memory_format=fmt)
        self.x1 = x[:1].to(device).contiguous(memory_format=fmt)
        self.y = torch.randint(0, cfg["num_classes"], (batch_size,), generator=g).to(device)
        self.bf16 = precision == "bf16"
        self.iters = dict.fromkeys(KINDS, 1)
        self.samples = {k: [] for k in KINDS}  # seconds per call, one per timed round

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, forward_hooks=None) -> None:
        """One SGD step; ``forward_hooks`` (a context) wraps only the forward pass."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with forward_hooks or contextlib.nullcontext(), self.autocast():
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()

    def forward_eval(self, x) -> None:
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            self.model(x)

    def call(self, kind: str) -> None:
        if kind == "train":
            self.train_step()
        else:
            self.forward_eval(self.x if kind == "infer" else self.x1)

    def peak_train_memory(self) -> tuple[int, str]:
        """Peak bytes of one training step; the step(s) also warm the model up."""
        dev = self.device
        if dev.type == "cuda":
            self.train_step()  # gradients and momentum buffers exist from now on, as in training
            self.optimizer.zero_grad(set_to_none=True)
            _sync(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            self.train_step()
            _sync(dev)
            return torch.cuda.max_memory_allocated(dev) - self.base_bytes, "cuda_max_allocated"
        params = list(self.model.parameters())
        skip = {p.untyped_storage().data_ptr() for p in params}  # counted below, not as activations
        counter = SavedTensorCounter(skip)
        self.train_step(forward_hooks=counter)
        saved = counter.bytes
        state = [t for s in self.optimizer.state.values() for t in s.values()]
        # parameters + gradients (same size) + optimizer state (momentum) + saved activations
        return 2 * _tensor_bytes(params) + _tensor_bytes(state) + saved, "saved_tensors_estimate"


# --------------------------------------------------------------------------- the comparison

def compare_models(models: list[str], *, device: str = "auto", batch_size: int | None = None,
                   image_size: int | None = None, precision: str = "fp32", channels_last: bool = False,
                   warmup: int | None = None, repeats: int | None = None, num_classes: int | None = None,
                   model_options: dict | None = None, quick: bool = False,
                   log: Callable[[str], object] | None = print) -> dict:
    """Measure ``models`` side by side on one device and say which to choose.

    Args:
        models: model names (``resnet-lab models``), e.g. ``["resnet101", "resnet152"]``.
        device: ``auto`` (cuda > mps > cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: batch for training and inference throughput (default: 8 on CPU, 64 on a GPU).
        image_size: input height = width (default: each model's native size, 224 or 32).
        precision: ``fp32`` or ``bf16`` (autocast, for training and inference alike).
        channels_last: NHWC memory format for model and inputs (faster with bf16 on GPUs).
        warmup, repeats: untimed and timed rounds (default: 1 and 3 on CPU, 3 and 10 on a GPU).
        num_classes, model_options: passed to ``create_model`` for every model.
        quick: small settings (64x64 for the ImageNet nets, batch 4, 5 rounds) for a fast look;
            explicit arguments still win.
        log: progress messages (``None``: silent).

    Returns a JSON-ready dict: ``models`` (one row per model: ``name, family, params, gflops,
    gflops_native, layers, input_size, native_size, batch_size, peak_train_memory_mib,
    memory_method, train_images_per_s, infer_images_per_s, latency_ms_batch1, reference_top1,
    paper_cifar10`` and the per-round ``samples_s``), ``hardware``, ``settings`` and ``verdict``
    (sentences).
    """
    started = time.perf_counter()
    say = log or (lambda *_: None)
    models = list(models)
    if not models:
        raise UserError("give at least one model name, e.g. resnet101 resnet152")
    if len(set(models)) != len(models):
        raise UserError(f"each model once, please: {' '.join(models)}")
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is not supported; use one of: {', '.join(PRECISIONS)}")
    options = dict(model_options or {})
    if num_classes is not None:
        options["num_classes"] = num_classes
    specs = [get_spec(name) for name in models]  # a bad name fails here, before any work
    dev = pick_device(device)
    base = DEFAULTS["cuda" if dev.type == "cuda" else "cpu"]
    preset = {**base, **QUICK} if quick else dict(base)
    batch_size = preset["batch_size"] if batch_size is None else batch_size
    warmup = preset["warmup"] if warmup is None else warmup
    repeats = preset["repeats"] if repeats is None else repeats
    for label, value, low in (("batch size", batch_size, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int) or value < low:
            raise UserError(f"{label} must be an integer >= {low}, got {value!r}")
    if image_size is not None and image_size < 8:
        raise UserError(f"image size {image_size} is too small; use 8 or more")

    def size_for(spec) -> int:
        if image_size:
            return image_size
        return min(spec.input_size, preset["image_size"]) if quick else spec.input_size

    # Static facts from meta copies: no memory, no time.
    rows = []
    for name, spec in zip(models, specs):
        with torch.device("meta"):
            meta = create_model(name, **options)
        size, cfg = size_for(spec), meta.config
        as_published = _same_architecture_as_default(name, options)
        rows.append({
            "name": name, "family": spec.family, "params": count_params(meta),
            "gflops": round(count_flops(meta, size, cfg["in_channels"]) / 1e9, 4),
            "gflops_native": round(count_flops(meta, spec.input_size, cfg["in_channels"]) / 1e9, 4),
            "layers": count_weighted_layers(meta), "input_size": size, "native_size": spec.input_size,
            "batch_size": batch_size, "reference_top1": reference_top1(name) if as_published else None,
            "paper_cifar10": reference_cifar10(name) if as_published else None,
        })

    # Build every model and take its memory step (also its first training warm-up).
    runners = []
    for row in rows:
        say(f"building {row['name']} on {dev} ({row['input_size']}x{row['input_size']}, batch {batch_size})")
        r = _Runner(row["name"], dev, batch_size, row["input_size"], precision, channels_last, options)
        t0 = time.perf_counter()
        peak, method = r.peak_train_memory()
        r.iters["train"] = calls_for(time.perf_counter() - t0, preset["min_time_s"])
        row["peak_train_memory_mib"], row["memory_method"] = round(peak / MIB, 1), method
        runners.append(r)

    # Warm-up rounds, then timed rounds; models interleaved, order alternating between rounds.
    for rnd in range(warmup + repeats):
        timed = rnd >= warmup
        say(f"round {rnd - warmup + 1}/{repeats}" if timed else f"warm-up {rnd + 1}/{warmup}")
        order = runners if rnd % 2 == 0 else runners[::-1]
        for r in order:
            for kind in KINDS:
                if not timed and rnd == 0 and kind == "train" and dev.type != "cuda":
                    continue  # the CPU memory step was this model's first training step
                seconds = time_call(lambda: r.call(kind), r.iters[kind], dev)
                if timed:
                    r.samples[kind].append(seconds)
                else:  # calibrate calls per timing from the last warm-up
                    r.iters[kind] = calls_for(seconds, preset["min_time_s"])

    for row, r in zip(rows, runners):
        med = {k: statistics.median(v) for k, v in r.samples.items()}
        row["train_images_per_s"] = round(batch_size / med["train"], 2)
        row["infer_images_per_s"] = round(batch_size / med["infer"], 2)
        row["latency_ms_batch1"] = round(1000 * med["latency"], 3)
        row["calls_per_timing"] = dict(r.iters)
        row["samples_s"] = {k: [round(s, 6) for s in v] for k, v in r.samples.items()}
    del runners, r  # free the models before returning
    if dev.type == "cuda":
        torch.cuda.empty_cache()

    sizes = sorted({row["input_size"] for row in rows})
    native = sorted({row["native_size"] for row in rows})
    notes = []
    if sizes != native:
        notes.append(f"timings at {'/'.join(f'{s}x{s}' for s in sizes)} input, not the native "
                     f"{'/'.join(f'{s}x{s}' for s in native)}" + (" (quick mode)" if quick else ""))
    method = rows[0]["memory_method"]
    if method == "saved_tensors_estimate":
        notes.append("memory is an estimate (no allocator statistics off CUDA): parameters + gradients + "
                     "SGD momentum + tensors saved for backward")
    settings = {
        "device": str(dev), "batch_size": batch_size, "image_size": image_size, "input_sizes": sizes,
        "precision": precision, "channels_last": channels_last, "warmup": warmup, "repeats": repeats,
        "quick": quick, "num_classes": num_classes, "model_options": options, "memory_method": method,
        "optimizer": "SGD(lr=1e-3, momentum=0.9), cross-entropy on random labels",
        "timing": f"median of {repeats} timed rounds after {warmup} warm-up round(s); models interleaved "
                  f"in alternating order; {'CUDA-synchronised ' if dev.type == 'cuda' else ''}perf_counter",
        "notes": notes,
    }
    result = {"models": rows, "hardware": hardware_info(dev), "settings": settings}
    result["verdict"] = verdict(rows, settings)
    result["run_time_s"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- the verdict

def _times(a: float, b: float, more: str, less: str) -> str:
    """'1.47x faster' / '1.12x slower' for a against b."""
    return f"{a / b:.2f}x {more}" if a >= b else f"{b / a:.2f}x {less}"


def verdict(rows: list[dict], settings: dict) -> list[str]:
    """Plain sentences from the measured numbers: speed ratios, what extra accuracy costs, and
    which model to choose for which budget. One model: nothing to compare, no sentences."""
    if len(rows) < 2:
        return []
    out = []
    batch = settings["batch_size"]
    fast = max(rows, key=lambda r: r["train_images_per_s"])
    for r in rows:
        if r is fast:
            continue
        out.append(
            f"{fast['name']} trains {_times(fast['train_images_per_s'], r['train_images_per_s'], 'faster', 'slower')} "
            f"than {r['name']} ({fast['train_images_per_s']:.1f} vs {r['train_images_per_s']:.1f} images/s at batch "
            f"{batch}), infers {_times(fast['infer_images_per_s'], r['infer_images_per_s'], 'faster', 'slower')} "
            f"({fast['infer_images_per_s']:.1f} vs {r['infer_images_per_s']:.1f} images/s) and takes "
            f"{fast['latency_ms_batch1']:.1f} vs {r['latency_ms_batch1']:.1f} ms for one image.")
        out.append(
            f"{r['name']} has {r['params'] / fast['params']:.2f}x the parameters of {fast['name']} "
            f"({r['params'] / 1e6:.1f}M vs {fast['params'] / 1e6:.1f}M), {r['gflops'] / fast['gflops']:.2f}x the FLOPs "
            f"({r['gflops']:.2f} vs {fast['gflops']:.2f} GFLOPs per image) and needs "
            f"{r['peak_train_memory_mib'] / fast['peak_train_memory_mib']:.2f}x the training memory "
            f"({r['peak_train_memory_mib']:.0f} vs {fast['peak_train_memory_mib']:.0f} MiB at batch {batch}).")

    scored = [r for r in rows if r["reference_top1"]]
    cifar = [r for r in rows if r.get("paper_cifar10")]
    unscored = [r["name"] for r in rows if not r["reference_top1"] and not r.get("paper_cifar10")]
    if unscored:
        out.append(f"No published accuracy for {', '.join(unscored)} (torchvision's weights cover the ImageNet "
                   "resnetN nets, the papers' CIFAR-10 tables the CIFAR ResNets, both only as published), so "
                   + ("the choice among them rests on cost: measure accuracy on your own task, and at equal "
                      f"accuracy prefer {fast['name']}, the fastest to train."
                      if len(scored) < 2 and len(cifar) < 2
                      else f"{'it is' if len(unscored) == 1 else 'they are'} left out of the accuracy sentences below."))
    if len(scored) >= 2:
        out += _accuracy_sentences(scored, fast)
    if len(cifar) >= 2:
        out += _cifar_sentences(cifar)
    out += _memory_sentences(rows, batch, settings["memory_method"])
    if settings["notes"] and any(r["input_size"] != r["native_size"] for r in rows) and scored:
        out.append("The accuracies are torchvision's at 224x224, but these timings used smaller inputs: "
                   "read the ratios, not the absolute ms, and rerun at the native size before fixing a budget.")
    return out


def _accuracy_sentences(scored: list[dict], fast: dict) -> list[str]:
    out = []
    best = {r["name"]: _best_reference(r["reference_top1"]) for r in scored}
    by_latency = sorted(scored, key=lambda r: r["latency_ms_batch1"])
    for a, b in zip(by_latency, by_latency[1:]):
        (wa, acc_a), (wb, acc_b) = best[a["name"]], best[b["name"]]
        gain = acc_b - acc_a
        extra_ms = b["latency_ms_batch1"] - a["latency_ms_batch1"]
        extra_gf = b["gflops_native"] - a["gflops_native"]
        if gain <= 0:
            out.append(f"{b['name']} is not worth it: {a['name']} is faster at batch 1 and at least as accurate "
                       f"({acc_a:.3f}% vs {acc_b:.3f}% top-1 with torchvision's best weights).")
            continue
        per_ms = f" ({gain / extra_ms:.3f} points per extra ms)" if extra_ms > 0 else ""
        per_gf = f" ({gain / extra_gf:.3f} points per extra GFLOP)" if extra_gf > 0 else ""
        out.append(
            f"With torchvision's best weights, {b['name']} ({wb}) reaches {acc_b:.3f}% top-1 against {acc_a:.3f}% "
            f"for {a['name']} ({wa}): +{gain:.2f} points for +{extra_ms:.1f} ms per image at batch 1{per_ms} and "
            f"+{extra_gf:.2f} GFLOPs at {b['native_size']}x{b['native_size']}{per_gf}.")

    # Budgets: walk the models by latency and keep each one that is more accurate than all faster ones.
    frontier = []
    for r in by_latency:
        if not frontier or best[r["name"]][1] > best[frontier[-1]["name"]][1]:
            frontier.append(r)
    for i, r in enumerate(frontier):
        weights, acc = best[r["name"]]
        lat = r["latency_ms_batch1"]
        if i + 1 < len(frontier):
            nxt = frontier[i + 1]
            out.append(f"If you can afford {lat:.1f} ms but less than {nxt['latency_ms_batch1']:.1f} ms per image at "
                       f"batch 1 on this device, choose {r['name']}: it is the most accurate model that fits "
                       f"({acc:.3f}% top-1 with {weights}), and {nxt['name']} would not fit.")
        else:
            cheaper = frontier[i - 1] if i else None
            why = (f"it is the most accurate ({acc:.3f}% top-1 with {weights}), "
                   f"+{acc - best[cheaper['name']][1]:.2f} points over {cheaper['name']}" if cheaper
                   else f"it is both the fastest and the most accurate ({acc:.3f}% top-1 with {weights})")
            out.append(f"If you can afford {lat:.1f} ms or more per image at batch 1 on this device, choose "
                       f"{r['name']}: {why}.")
    fastest_lat = frontier[0]["latency_ms_batch1"]
    out.append(f"Below {fastest_lat:.1f} ms per image none of these fits on this device: use a smaller model, "
               "smaller inputs, bf16 or a faster device.")
    top = frontier[-1]
    if fast["name"] in best and fast is not top:
        ratio = fast["train_images_per_s"] / top["train_images_per_s"]
        gain = best[top["name"]][1] - best[fast["name"]][1]
        out.append(f"For training on a fixed time budget, {fast['name']} sees {ratio:.2f}x as many images per second "
                   f"as {top['name']}; train {top['name']} only if its +{gain:.2f} points of published top-1 are "
                   f"worth {ratio:.2f}x the training time.")
    return out


def _cifar_sentences(rows: list[dict]) -> list[str]:
    """What the papers' CIFAR-10 accuracy costs in training time measured here, fastest first."""
    by_speed = sorted(rows, key=lambda r: r["train_images_per_s"], reverse=True)
    listing = ", ".join(f"{r['name']} {r['paper_cifar10']:.2f}%" for r in by_speed)
    out = [f"Published CIFAR-10 test accuracy with the papers' own recipe (He et al. 2015, Table 6; 2016 for "
           f"pre-activation nets), fastest to train here first: {listing}."]
    best = by_speed[0]  # the most accurate of the faster models
    for r in by_speed[1:]:
        cost = best["train_images_per_s"] / r["train_images_per_s"]
        gain = r["paper_cifar10"] - best["paper_cifar10"]
        if gain <= 0:
            out.append(f"{r['name']} is not worth it on CIFAR-10: {best['name']} trains {cost:.2f}x faster here and "
                       f"is published at least as accurate ({best['paper_cifar10']:.2f}% vs {r['paper_cifar10']:.2f}%).")
        else:
            out.append(f"{r['name']} buys +{gain:.2f} points of published CIFAR-10 accuracy over {best['name']} for "
                       f"{cost:.2f}x its training time per image here.")
            best = r
    return out


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
    ladder = " < ".join(f"{r['name']} {r['peak_train_memory_mib']:.0f}" for r in by_mem)
    return [f"Training memory at batch {batch} ({how}, MiB): {ladder}; a budget below a model's figure rules out "
            "that model and every one to its right" + lower]
