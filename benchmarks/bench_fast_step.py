"""Where the fast recipe's step time goes: eager vs CUDA graph, data pipeline, gradient monitor.

For each CIFAR ResNet, in one process and interleaved round by round, times the fast recipe's
training step (batch 512, bf16 + channels_last on a GPU, SGD Nesterov) as:

* ``eager``: the step body launched op by op from Python;
* ``graph``: the same body captured once and replayed as one CUDA graph (``TrainStep``);
* ``graph_monitor``: + ``GradientMonitor.step`` every 10 steps (the trainer's default);
* ``graph_ema``: + the weight average's update inside the graph (``--ema``);
* ``graph_compiled`` (with ``--compile``): the model under ``torch.compile`` (BatchNorm, ReLU and
  the residual add fused), compiled during the warm-up and captured in the graph;
* ``data``: producing the batches alone (``DeviceLoader``: gather + crop + flip + normalise),
  timed over whole epochs of a CIFAR-10-sized set, so the per-epoch shuffle counts as in training.

Reported per model: median milliseconds per step, the graph's speed-up over eager, the data
pipeline's and the monitor's cost as a fraction of the graphed step (targets: <= 5% and <= 2%),
and the implied seconds per CIFAR-10 epoch (97 steps of 512). Times come from CUDA events
around ``--steps`` consecutive steps (synchronised clocks on a CPU), medians over rounds.
The inputs are random images, not zeros.

    python benchmarks/bench_fast_step.py --device cuda          # resnet20, 56, 110
    python benchmarks/bench_fast_step.py --smoke --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from resnet_lab.data import DeviceLoader  # noqa: E402
from resnet_lab.diagnostics import GradientMonitor  # noqa: E402
from resnet_lab.models import create_model  # noqa: E402
from resnet_lab.measure import prepare_timing  # noqa: E402
from resnet_lab.runtime import hardware_info  # noqa: E402
from resnet_lab.files import write_json  # noqa: E402
from resnet_lab.training import resolve_config  # noqa: E402
from resnet_lab.training.ema import WeightEMA  # noqa: E402
from resnet_lab.training.graphed_step import TrainStep  # noqa: E402
from resnet_lab.training.precision import resolve_precision  # noqa: E402
from resnet_lab.training.setup import build_optimizer  # noqa: E402

CIFAR_TRAIN = 50_000
TARGETS = {"data_fraction": 0.05, "monitor_fraction": 0.02}


class Timer:
    """Elapsed milliseconds of a region: CUDA events on a GPU, a synchronised clock elsewhere."""

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, fn) -> float:
        if self.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def build_variants(name: str, device: torch.device, batch: int, image_size: int, channels_last: bool,
                   n_images: int, compiled: bool) -> dict:
    config = resolve_config("fast", model=name, batch_size=batch)
    precision = resolve_precision(config.precision, device)
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    base = create_model(name, num_classes=10).to(device, memory_format=memory_format)
    loss_fn = lambda logits, y: nn.functional.cross_entropy(logits.float(), y, label_smoothing=0.1)  # noqa: E731
    variants = {}
    for variant in ("eager", "graph", "graph_monitor", "graph_ema") + (("graph_compiled",) if compiled else ()):
        model = copy.deepcopy(base)
        stepped = torch.compile(model) if variant == "graph_compiled" else model
        ema = WeightEMA(model, 0.99) if variant == "graph_ema" else None
        step = TrainStep(stepped, build_optimizer(model, config), loss_fn, precision, use_graph=variant != "eager",
                         ema=ema)
        monitor = GradientMonitor(model, every=10, nonfinite="warn") if variant == "graph_monitor" else None
        variants[variant] = (step, monitor)
    # Random uint8 images through the real loader; the lr is small and constant (timing only).
    g = torch.Generator().manual_seed(0)
    loader = DeviceLoader(torch.randint(0, 256, (n_images, 3, image_size, image_size), dtype=torch.uint8, generator=g),
                          torch.randint(0, 10, (n_images,), generator=g), batch, mean=(0.5,) * 3, std=(0.25,) * 3,
                          device=device, train=True, augment=True, hflip=True, channels_last=channels_last)
    return {"variants": variants, "loader": loader, "precision": precision, "epoch_steps": CIFAR_TRAIN // batch}


def run_steps(step: TrainStep, monitor, batches, steps: int, counter: list[int]) -> None:
    for i in range(steps):
        x, y = batches[i % len(batches)]
        if step.ema is not None:
            step.ema.set_step(counter[0])
        loss, _ = step(x, y, 0.01)
        if monitor is not None:
            monitor.step(loss, step=counter[0])
        counter[0] += 1


def run_data(loader: DeviceLoader, epoch: int) -> None:
    loader.set_epoch(epoch)
    for _ in loader:
        pass


def measure(name: str, channels_last: bool, device: torch.device, args) -> dict:
    n_images = args.batch * 8 if args.smoke else CIFAR_TRAIN
    setup = build_variants(name, device, args.batch, args.image_size, channels_last, n_images, args.compile)
    loader, timer = setup["loader"], Timer(device)
    batches = list(itertools.islice(loader, 8))
    counters = {v: [0] for v in setup["variants"]}
    for variant, (step, monitor) in setup["variants"].items():  # warm-up (and graph capture)
        run_steps(step, monitor, batches, args.warmup, counters[variant])
    run_data(loader, 1)
    times = {v: [] for v in (*setup["variants"], "data")}
    for r in range(args.rounds):
        for variant, (step, monitor) in setup["variants"].items():
            times[variant].append(timer(functools.partial(run_steps, step, monitor, batches, args.steps,
                                                          counters[variant]))
                                  / args.steps)
        times["data"].append(timer(functools.partial(run_data, loader, 2 + r)) / len(loader))
    ms = {v: statistics.median(t) for v, t in times.items()}
    # Overheads as medians of within-round ratios, so drift hits both sides alike.
    monitor_fraction = statistics.median(m / g - 1 for m, g in zip(times["graph_monitor"], times["graph"]))
    ema_fraction = statistics.median(m / g - 1 for m, g in zip(times["graph_ema"], times["graph"]))
    data_fraction = statistics.median(d / g for d, g in zip(times["data"], times["graph"]))
    capture = setup["variants"]["graph"][0].capture_error
    compiled = setup["variants"].get("graph_compiled")
    layout = "channels_last" if channels_last else "contiguous"
    row = {"model": name, "precision": setup["precision"], "batch": args.batch, "memory_format": layout,
           "ms_per_step": ms, "graph_speedup": ms["eager"] / ms["graph"], "graph_capture_error": capture,
           "data_fraction_of_graph_step": data_fraction, "monitor_fraction_of_graph_step": monitor_fraction,
           "ema_fraction_of_graph_step": ema_fraction,
           "compiled_capture_error": compiled[0].capture_error if compiled else None,
           "epoch_s": {v: ms[v] * setup["epoch_steps"] / 1e3 for v in setup["variants"]},
           "rounds": args.rounds, "steps_per_round": args.steps}
    print(f"{name:>10} {setup['precision']} {layout}: eager {ms['eager']:.2f} ms, graph {ms['graph']:.2f} ms "
          f"({row['graph_speedup']:.2f}x), +monitor {monitor_fraction:+.1%}, +ema {ema_fraction:+.1%}, "
          f"data {data_fraction:.1%} of a graphed "
          f"step; epoch {row['epoch_s']['graph']:.2f} s graphed vs {row['epoch_s']['eager']:.2f} s eager"
          + (f"; compiled + graph {ms['graph_compiled']:.2f} ms" if compiled else "")
          + (f"  [graph capture failed: {capture}]" if capture else ""), flush=True)
    return row


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", nargs="+", default=["resnet20", "resnet56", "resnet110"])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--formats", nargs="+", choices=("channels_last", "contiguous"), default=["channels_last"],
                   help="memory formats to compare (the fast recipe uses channels_last)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--compile", action="store_true", help="also time the torch.compile'd step in the graph "
                   "(compiling takes tens of seconds per model)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    p.add_argument("--out", help="JSON output (default: benchmarks/results/fast_step-<device>.json)")
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.batch, args.image_size, args.steps, args.rounds, args.warmup = ["resnet8"], 8, 16, 2, 2, 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    prepare_timing(device)
    rows = [measure(name, fmt == "channels_last", device, args) for name in args.models for fmt in args.formats]
    result = {"benchmark": "fast_step", "hardware": hardware_info(device), "targets": TARGETS,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"fast_step-{device.type}.json")
    write_json(out, result)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
