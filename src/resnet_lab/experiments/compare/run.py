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
the CIFAR nets they trained (``reference``), and a ``verdict`` (``findings``): plain sentences,
derived only from these numbers, on which model to pick for which budget. It returns data;
printing is ``table.compare_text`` and the chart is ``plot.plot_comparison``.
"""

from __future__ import annotations

import functools
import numbers
import statistics
import time
from typing import Callable

import torch

from ...errors import UserError, numpy_scalars_as_numbers, shown
from ...measure import calls_for, time_call
from ...models.choices import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from ...models import count_flops, count_params, count_weighted_layers, create_model, get_spec
from ...runtime import hardware_info, pick_device
from ...text import counted
from .findings import verdict
from .reference import _same_architecture_as_default, reference_cifar10, reference_top1
from .runner import KINDS, ModelRunner
from .settings import DEFAULTS, PRECISIONS, QUICK

MIB = 2**20


# --------------------------------------------------------------------------- settings

MAX_BATCH = 2**31 - 1  # torch indexes a tensor with 32-bit ints in places


def _check_models(models, precision: str) -> list[str]:
    if isinstance(models, str):
        models = [models]  # one name, not its letters
    elif isinstance(models, (list, tuple)):
        models = list(models)
    else:
        raise UserError(f"models is a list of model names, e.g. ['resnet101', 'resnet152'], got {shown(models)}")
    if not models:
        raise UserError("give at least one model name, e.g. resnet101 resnet152")
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r} is not supported; use one of: {', '.join(PRECISIONS)}")
    return models


def _preset(dev: torch.device, quick: bool, batch_size, warmup, repeats, image_size) -> dict:
    """The device's defaults (quick ones with ``quick``), overridden by the explicit arguments, checked."""
    base = DEFAULTS["cuda" if dev.type == "cuda" else "cpu"]
    preset = {**base, **QUICK} if quick else dict(base)
    preset["batch_size"] = preset["batch_size"] if batch_size is None else batch_size
    preset["warmup"] = preset["warmup"] if warmup is None else warmup
    preset["repeats"] = preset["repeats"] if repeats is None else repeats
    for label, key, low in (("batch size", "batch_size", 1), ("repeats", "repeats", 1), ("warmup", "warmup", 0)):
        if isinstance(preset[key], bool) or not isinstance(preset[key], numbers.Integral) or preset[key] < low:
            raise UserError(f"{label} must be an integer >= {low}, got {preset[key]!r}")
        preset[key] = int(preset[key])  # a numpy integer too: the result stays JSON-ready
    if preset["batch_size"] > MAX_BATCH:  # past it torch's shape arithmetic overflows: a traceback
        raise UserError(f"batch size must be at most {MAX_BATCH:,}, got {preset['batch_size']:,}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, numbers.Integral)
                                   or not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE):  # a typo's 100000: 480 GB
        raise UserError(f"image size must be an integer from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}, got {image_size!r}")
    return preset


def _out_of_memory(err: RuntimeError) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)


def _input_size(spec, image_size: int | None, quick: bool, preset: dict) -> int:
    if image_size:
        return image_size
    return min(spec.input_size, preset["image_size"]) if quick else spec.input_size


# --------------------------------------------------------------------------- measuring

def _static_row(name: str, spec, options: dict, size: int, batch_size: int) -> dict:
    """Parameters, FLOPs, layers and published accuracy, from a meta copy: no memory, no time."""
    with torch.device("meta"):
        meta = create_model(name, **options)
    cfg = meta.config
    as_published = _same_architecture_as_default(name, options)
    return {
        "name": name, "family": spec.family, "params": count_params(meta),
        "gflops": round(count_flops(meta, size, cfg["in_channels"]) / 1e9, 4),
        "gflops_native": round(count_flops(meta, spec.input_size, cfg["in_channels"]) / 1e9, 4),
        "layers": count_weighted_layers(meta), "input_size": size, "native_size": spec.input_size,
        "batch_size": batch_size, "reference_top1": reference_top1(name) if as_published else None,
        "paper_cifar10": reference_cifar10(name) if as_published else None,
    }


def _build(row: dict, dev, preset: dict, precision: str, channels_last: bool, options: dict, say) -> ModelRunner:
    """Build the row's model and take its memory step (also its first training warm-up)."""
    batch_size = preset["batch_size"]
    say(f"building {row['name']} on {dev} ({row['input_size']}x{row['input_size']}, batch {batch_size})")
    r = ModelRunner(row["name"], dev, batch_size, row["input_size"], precision, channels_last, options)
    t0 = time.perf_counter()
    peak, method = r.peak_train_memory()
    r.iters["train"] = calls_for(time.perf_counter() - t0, preset["min_time_s"])
    row["peak_train_memory_mib"], row["memory_method"] = round(peak / MIB, 1), method
    return r


def _rounds(runners: list[ModelRunner], dev, preset: dict, say) -> None:
    """Warm-up rounds, then timed rounds; models interleaved, order alternating between rounds."""
    warmup, repeats = preset["warmup"], preset["repeats"]
    for rnd in range(warmup + repeats):
        timed = rnd >= warmup
        say(f"round {rnd - warmup + 1}/{repeats}" if timed else f"warm-up {rnd + 1}/{warmup}")
        for r in runners if rnd % 2 == 0 else runners[::-1]:
            for kind in KINDS:
                if not timed and rnd == 0 and kind == "train" and dev.type != "cuda":
                    continue  # the CPU memory step was this model's first training step
                seconds = time_call(functools.partial(r.call, kind), r.iters[kind], dev)
                if timed:
                    r.samples[kind].append(seconds)
                else:  # calibrate calls per timing from the last warm-up
                    r.iters[kind] = calls_for(seconds, preset["min_time_s"])


def _speeds(r: ModelRunner, batch_size: int) -> dict:
    med = {k: statistics.median(v) for k, v in r.samples.items()}
    return {"train_images_per_s": round(batch_size / med["train"], 2),
            "infer_images_per_s": round(batch_size / med["infer"], 2),
            "latency_ms_batch1": round(1000 * med["latency"], 3),
            "calls_per_timing": dict(r.iters),
            "samples_s": {k: [round(s, 6) for s in v] for k, v in r.samples.items()}}


def _measure(rows: list[dict], dev, preset: dict, precision: str, channels_last: bool, options: dict, say) -> None:
    """Memory and speed of every row's model, written into the rows; the models are freed on return."""
    runners = [_build(row, dev, preset, precision, channels_last, options, say) for row in rows]
    _rounds(runners, dev, preset, say)
    for row, r in zip(rows, runners):
        row.update(_speeds(r, preset["batch_size"]))


# --------------------------------------------------------------------------- the result

def _notes(rows: list[dict], quick: bool) -> list[str]:
    """What qualifies the numbers: inputs of another size than native, an estimated memory. ``quick``:
    the sizes are quick mode's (no --image-size given)."""
    sizes = sorted({row["input_size"] for row in rows})
    native = sorted({row["native_size"] for row in rows})
    notes = []
    if sizes != native:
        notes.append(f"timings at {'/'.join(f'{s}x{s}' for s in sizes)} input, not the native "
                     f"{'/'.join(f'{s}x{s}' for s in native)}" + (" (quick mode)" if quick else ""))
    if rows[0]["memory_method"] == "saved_tensors_estimate":
        notes.append("memory is an estimate (no allocator statistics off CUDA): parameters + gradients + "
                     "SGD momentum + tensors saved for backward")
    return notes


def _settings(rows: list[dict], dev, preset: dict, image_size, precision: str, channels_last: bool, quick: bool,
              num_classes, options: dict) -> dict:
    warmup, repeats = preset["warmup"], preset["repeats"]
    return {
        "device": str(dev), "batch_size": preset["batch_size"], "image_size": image_size,
        "input_sizes": sorted({row["input_size"] for row in rows}),
        "precision": precision, "channels_last": channels_last, "warmup": warmup, "repeats": repeats,
        "quick": quick, "num_classes": num_classes, "model_options": options,
        "memory_method": rows[0]["memory_method"],
        "optimizer": "SGD(lr=1e-3, momentum=0.9), cross-entropy on random labels",
        "timing": f"median of {counted(repeats, 'timed round')} after {counted(warmup, 'warm-up round')}; models "
                  f"interleaved in alternating order; {'CUDA-synchronised ' if dev.type == 'cuda' else ''}perf_counter",
        "notes": _notes(rows, quick and image_size is None),  # an explicit size is the user's, not quick's
    }


@numpy_scalars_as_numbers
def compare_models(models: list[str], *, device: str = "auto", batch_size: int | None = None,
                   image_size: int | None = None, precision: str = "fp32", channels_last: bool = False,
                   warmup: int | None = None, repeats: int | None = None, num_classes: int | None = None,
                   model_options: dict | None = None, quick: bool = False,
                   log: Callable[[str], object] | None = print) -> dict:
    """Measure ``models`` side by side on one device and say which to choose.

    Args:
        models: model names (``resnet-lab models``), e.g. ``["resnet101", "resnet152"]`` (or one name).
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
    if log is not None and not callable(log):
        raise UserError(f"log is a function taking one line (print) or None for silence, got {log!r}")
    say = log or (lambda *_: None)
    models = _check_models(models, precision)
    for label, flag in (("channels_last", channels_last), ("quick", quick)):
        if not isinstance(flag, bool):  # "no" would be true
            raise UserError(f"{label} is True or False, got {flag!r}")
    if model_options is not None and not isinstance(model_options, dict):
        raise UserError(f"model_options is a dict of create_model's options (e.g. {{'norm': 'none'}}), "
                        f"got {model_options!r}")
    options = dict(model_options or {})
    if num_classes is not None:
        options["num_classes"] = num_classes
    specs = [get_spec(name) for name in models]  # a bad name fails here, before any work
    names = [spec.name for spec in specs]  # as the zoo spells them: Resnet20 and resnet20 are one model
    if len(set(names)) != len(names):
        raise UserError(f"each model once, please: {' '.join(map(str, models))}"
                        + ("" if names == models else f" (that is {' '.join(names)})") + "; drop the repeats")
    dev = pick_device(device)
    preset = _preset(dev, quick, batch_size, warmup, repeats, image_size)
    rows = [_static_row(name, spec, options, _input_size(spec, image_size, quick, preset), preset["batch_size"])
            for name, spec in zip(names, specs)]
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # each model is built from seed 0
            _measure(rows, dev, preset, precision, channels_last, options, say)
    except RuntimeError as err:  # torch.OutOfMemoryError (CUDA) is one
        if not _out_of_memory(err):
            raise
        sizes = "/".join(sorted({str(row["input_size"]) for row in rows}, key=int))
        raise UserError(f"out of memory on {dev} at batch {preset['batch_size']:,} and {sizes} px; lower "
                        "--batch-size or --image-size") from None
    if dev.type == "cuda":
        torch.cuda.empty_cache()  # the models are gone with _measure's frame
    settings = _settings(rows, dev, preset, image_size, precision, channels_last, quick, num_classes, options)
    result = {"models": rows, "hardware": hardware_info(dev), "settings": settings}
    result["verdict"] = verdict(rows, settings)
    result["run_time_s"] = time.perf_counter() - started
    return result
