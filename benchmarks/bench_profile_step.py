"""Where the fast recipe's step time goes, kernel by kernel: issue #17's "profile before optimising".

For each CIFAR ResNet (default resnet20 and resnet56), the fast recipe's training step (batch
512, bf16 + channels_last + CUDA graph on a GPU, SGD Nesterov, label smoothing; ``TrainStep``,
as the trainer runs it) is warmed up and then recorded with ``torch.profiler`` over ``--steps``
steps, eagerly and replayed from its CUDA graph. Every kernel (on a CPU: every aten operator)
is put in one category by its name:

    conv_forward, conv_backward (data and weight gradients), batchnorm, elementwise (ReLU, add,
    scale; fused or not), copy_cast (copies, dtype casts, layout changes), optimizer (the foreach
    SGD update), reduction, loss, other

and the result is the share of device time per category, its milliseconds per step, and the
top kernels. A second table times the graphed step alone (CUDA events, no profiler) at
``--batches`` (default 256 384 512 1024) and gives images/s per batch size.

What it does to the data: random uint8 images of CIFAR's size, normalised and augmented by the
trainer's own ``DeviceLoader``; the learning rate is a small constant (timing only).

    python benchmarks/bench_profile_step.py --device cuda                 # resnet20, resnet56
    python benchmarks/bench_profile_step.py --smoke --out /tmp/x.json     # CPU, resnet8, tiny
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from resnet_lab.data import DeviceLoader  # noqa: E402
from resnet_lab.files import write_json  # noqa: E402
from resnet_lab.measure import prepare_timing, sync, time_call  # noqa: E402
from resnet_lab.models import create_model  # noqa: E402
from resnet_lab.runtime import hardware_info  # noqa: E402
from resnet_lab.training import resolve_config  # noqa: E402
from resnet_lab.training.graphed_step import TrainStep  # noqa: E402
from resnet_lab.training.precision import resolve_precision  # noqa: E402
from resnet_lab.training.setup import build_optimizer  # noqa: E402

# First match wins; names are lower-cased kernel names (cuDNN/CUTLASS/ATen) or aten operators.
CATEGORIES = [
    ("conv_backward", r"dgrad|wgrad|convolution_backward|conv.*backward|backward.*conv"),
    ("conv_forward", r"conv|fprop|implicit_gemm|xmma|cudnn|cutlass|gemm|winograd|mkldnn"),
    ("batchnorm", r"batch_?norm|bn_|welford"),
    ("loss", r"softmax|nll|cross_entropy|log_softmax"),
    ("optimizer", r"foreach|multi_tensor|_amp_|sgd"),
    ("copy_cast", r"copy|cast|convert|to_copy|contiguous|transpose|permute|nchw|nhwc|fill"),
    ("reduction", r"reduce|sum|mean|norm"),
    ("elementwise", r"elementwise|vectorized|unrolled|relu|threshold|add|mul|div|where|clamp|pointwise|triton"),
]


def category(name: str) -> str:
    name = name.lower()
    return next((label for label, pattern in CATEGORIES if re.search(pattern, name)), "other")


def build_step(name: str, device: torch.device, batch: int, use_graph: bool, smoke: bool,
               precision: str = "auto", layout: str = "channels_last"):
    """The fast recipe's step for ``name`` (at ``precision`` and memory ``layout``, the recipe's by
    default) and a few batches from the trainer's loader."""
    config = resolve_config("fast", model=name, batch_size=batch, precision=precision,
                            channels_last=layout == "channels_last")
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(0)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model = create_model(name, num_classes=10).to(device, memory_format=layout)
    loss_fn = lambda logits, y: nn.functional.cross_entropy(logits.float(), y, label_smoothing=0.1)  # noqa: E731
    step = TrainStep(model, build_optimizer(model, config), loss_fn, precision, use_graph=use_graph, log=lambda _: None)
    g = torch.Generator().manual_seed(0)
    size, n = (16, batch * 4) if smoke else (32, batch * 8)
    loader = DeviceLoader(torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
                          torch.randint(0, 10, (n,), generator=g), batch, mean=(0.5,) * 3, std=(0.25,) * 3,
                          device=device, train=True, augment=True, hflip=True, channels_last=config.channels_last)
    return step, list(itertools.islice(loader, 4)), precision


def run(step: TrainStep, batches, steps: int) -> None:
    for i in range(steps):
        x, y = batches[i % len(batches)]
        step(x, y, 0.01)


def _self_time_us(event, on_device: bool) -> float:
    if on_device:  # the attribute was renamed from cuda to device in torch 2.x
        return float(getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0))
    return float(event.self_cpu_time_total)


def counted_events(events, on_device: bool) -> list[tuple[str, float, int]]:
    """(name, self time in us, calls) of the events that hold the time once: on a GPU the kernels alone,
    since an aten operator's device time is that of the kernels it launched (counting both doubled
    the eager tables of 2026-11-29); on a CPU the aten operators."""
    from torch.autograd import DeviceType

    rows = [(e.key, _self_time_us(e, on_device), e.count) for e in events
            if (e.device_type == DeviceType.CUDA if on_device else e.key.startswith("aten::"))]
    return [row for row in rows if row[1] > 0]


def profile_table(step: TrainStep, batches, steps: int, device: torch.device, top: int = 12) -> dict:
    """Self time per category (device kernels on a GPU, aten operators on a CPU), per step."""
    from torch.profiler import ProfilerActivity, profile

    on_device = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    sync(device)
    with profile(activities=activities) as prof:
        run(step, batches, steps)
        sync(device)
    kernels = counted_events(prof.key_averages(), on_device)
    total = sum(t for _, t, _ in kernels)
    by_category: dict[str, float] = {}
    for key, t, _ in kernels:
        by_category[category(key)] = by_category.get(category(key), 0.0) + t
    ms_per_step = {c: t / 1e3 / steps for c, t in sorted(by_category.items(), key=lambda kv: -kv[1])}
    top_rows = [{"name": k[:120], "category": category(k), "ms_per_step": t / 1e3 / steps, "calls_per_step": n / steps}
                for k, t, n in sorted(kernels, key=lambda k: -k[1])[:top]]
    return {"clock": "device kernels" if on_device else "cpu operators (self time)",
            "kernels_seen": len(kernels), "ms_per_step_total": total / 1e3 / steps, "ms_per_step": ms_per_step,
            "share": {c: by_category[c] / max(total, 1e-12) for c in ms_per_step}, "top": top_rows}


def step_ms(step: TrainStep, batches, steps: int, rounds: int, device: torch.device) -> float:
    """Median milliseconds per step over ``rounds`` of ``steps`` back-to-back steps."""
    return statistics.median(time_call(lambda: run(step, batches, steps), 1, device) * 1e3 / steps
                             for _ in range(rounds))


def profile_model(name: str, device: torch.device, args, precision: str, layout: str) -> dict:
    modes = {}
    for mode in ("eager", "graph"):
        step, batches, resolved = build_step(name, device, args.batch, mode == "graph", args.smoke, precision, layout)
        run(step, batches, args.warmup)  # autotuning and (graph) capture
        table = profile_table(step, batches, args.steps, device)
        table["graph_capture_error"] = step.capture_error
        table["graphed"] = step.graph is not None
        modes[mode] = table
        shares = ", ".join(f"{c} {s:.0%}" for c, s in table["share"].items())
        print(f"{name:>10} {mode:>5} {resolved} {layout}: {table['ms_per_step_total']:.2f} ms of "
              f"{table['clock']} per step; {shares}", flush=True)
    return {"model": name, "batch": args.batch, "precision": resolved, "format": layout,
            "steps_profiled": args.steps, **modes}


def batch_sweep(name: str, device: torch.device, args) -> list[dict]:
    rows = []
    for batch in args.batches:
        step, batches, precision = build_step(name, device, batch, True, args.smoke)
        run(step, batches, args.warmup)
        ms = step_ms(step, batches, args.steps, args.rounds, device)
        rows.append({"model": name, "batch": batch, "precision": precision, "graphed": step.graph is not None,
                     "ms_per_step": ms, "images_per_s": batch / ms * 1e3})
        print(f"{name:>10} batch {batch:>5}: {ms:.2f} ms per step, {rows[-1]['images_per_s']:,.0f} images/s",
              flush=True)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    p.add_argument("--batch", type=int, default=512, help="batch of the profiled step (the fast recipe's)")
    p.add_argument("--batches", type=int, nargs="*", default=[256, 384, 512, 1024],
                   help="batch sizes of the images/s table (graphed step, first model, recipe's precision; none: "
                        "no table)")
    # Under bf16 autocast BatchNorm runs PyTorch's native kernels (31% of the graphed resnet20 step on the
    # H200, 2026-11-29): the other precisions and layouts show whether cuDNN's would take over.
    p.add_argument("--precisions", nargs="+", choices=("auto", "bf16", "fp16", "fp32"), default=["auto"],
                   help="precisions profiled (default: the fast recipe's, bf16 on a GPU)")
    p.add_argument("--formats", nargs="+", choices=("channels_last", "contiguous"), default=["channels_last"],
                   help="memory formats profiled (default: the fast recipe's)")
    p.add_argument("--steps", type=int, default=20, help="steps profiled / per timed round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    p.add_argument("--out", help="JSON output (default: benchmarks/results/profile_step-<device>.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.batch, args.batches, args.steps, args.rounds, args.warmup = ["resnet8"], 8, [4, 8], 2, 2, 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    prepare_timing(device)
    profiles = [profile_model(name, device, args, precision, layout) for name in args.models
                for precision in args.precisions for layout in args.formats]
    result = {"benchmark": "profile_step", "hardware": hardware_info(device),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "categories": [c for c, _ in CATEGORIES] + ["other"],
              "profiles": profiles, "batch_sweep": batch_sweep(args.models[0], device, args)}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"profile_step-{device.type}.json")
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
