"""Is our ResNet ever slower than torchvision's? Same weights, same inputs, same process.

For each model, ``resnet_lab.create_model(name)`` (with torchvision's state dict loaded, so
both compute exactly the same function) and ``torchvision.models.<name>()`` are timed side by
side, interleaved round by round with the order alternating (ours first, then torchvision
first, ...) so that drift and order effects hit both alike:

* training: images/s of forward + cross-entropy + backward + SGD step;
* inference: images/s of a batched forward pass in eval mode under ``inference_mode``.

Each configuration runs after ``--warmup`` untimed rounds; the ratio ours/torchvision is the
median of the per-round ratios (> 1: ours is faster). Configurations: ``fp32``; on CUDA also
``bf16_cl`` (bf16 autocast + channels_last) and ``compiled_bf16_cl`` (the same under
``torch.compile``, for ``--compile-models`` only: compiling takes a minute per model).

    python benchmarks/bench_vs_torchvision.py                   # CPU: resnet18/50/101/152, 112x112, batch 8
    python benchmarks/bench_vs_torchvision.py --device cuda     # 224x224, batch 128, all three configurations
    python benchmarks/bench_vs_torchvision.py --smoke --out /tmp/x.json   # seconds, for the tests

Writes JSON (``--out``, default ``benchmarks/results/vs_torchvision-<device>.json``) with the
hardware, library versions, settings, per-round samples, medians and ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from resnet_lab import __version__ as resnet_lab_version  # noqa: E402
from resnet_lab.measure import calls_for, time_call  # noqa: E402
from resnet_lab.models import create_model  # noqa: E402
from resnet_lab.runtime import hardware_info  # noqa: E402
from resnet_lab.files import write_json  # noqa: E402

CONFIGS = ("fp32", "bf16_cl", "compiled_bf16_cl")
IMPLS = ("ours", "torchvision")


def build_pair(name: str, device: torch.device, config: str) -> dict:
    """Our model and torchvision's, with identical weights, ready for ``config``."""
    import torchvision

    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)()
    ours = create_model(name)
    ours.load_state_dict(tv.state_dict(), strict=True)  # same function, so any gap is overhead
    pair = {"ours": ours.to(device), "torchvision": tv.to(device)}
    if config != "fp32":
        pair = {k: m.to(memory_format=torch.channels_last) for k, m in pair.items()}
    if config.startswith("compiled"):
        pair = {k: torch.compile(m) for k, m in pair.items()}
    return pair


class Step:
    """The timed calls for one model: a training step and a batched eval forward."""

    def __init__(self, model, x, y, bf16: bool):
        self.model, self.x, self.y, self.bf16 = model, x, y, bf16
        self.opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.x.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), self.autocast():
            self.model(self.x)


def same_outputs(pair: dict, x: torch.Tensor) -> bool:
    """Sanity check that the two models compute the same function (eval mode, fp32)."""
    with torch.no_grad():
        a, b = (pair[k].eval()(x) for k in IMPLS)
    return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4))


def measure(name: str, config: str, device: torch.device, args) -> dict:
    pair = build_pair(name, device, config)
    fmt = torch.contiguous_format if config == "fp32" else torch.channels_last
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, generator=g).to(device)
    x = x.contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (args.batch,), generator=g).to(device)
    row = {"model": name, "config": config}
    if config == "fp32":
        row["same_outputs"] = same_outputs(pair, x)
    steps = {k: Step(pair[k], x, y, bf16=config != "fp32") for k in IMPLS}
    iters = {(k, kind): 1 for k in IMPLS for kind in ("train", "infer")}
    samples = {(k, kind): [] for k in IMPLS for kind in ("train", "infer")}
    # Compiled models compile on their first train and first eval call: give them an extra round.
    warmup = args.warmup + (1 if config.startswith("compiled") else 0)
    t_start = time.perf_counter()
    for rnd in range(warmup + args.repeats):
        order = IMPLS if rnd % 2 == 0 else IMPLS[::-1]
        for kind in ("train", "infer"):
            for impl in order:
                fn = getattr(steps[impl], kind)
                seconds = time_call(fn, iters[(impl, kind)], device)
                if rnd >= warmup:
                    samples[(impl, kind)].append(seconds)
                else:
                    iters[(impl, kind)] = calls_for(seconds, args.min_time)
    for kind in ("train", "infer"):
        ours, tv = samples[("ours", kind)], samples[("torchvision", kind)]
        row[f"ours_{kind}_images_per_s"] = round(args.batch / statistics.median(ours), 2)
        row[f"torchvision_{kind}_images_per_s"] = round(args.batch / statistics.median(tv), 2)
        # Per-round ratios pair measurements taken seconds apart: robust to slow drift.
        ratios = [t / o for o, t in zip(ours, tv)]
        row[f"{kind}_ratio"] = round(statistics.median(ratios), 4)
        row[f"{kind}_ratio_range"] = [round(min(ratios), 4), round(max(ratios), 4)]
        row[f"{kind}_samples_s"] = {"ours": [round(s, 6) for s in ours], "torchvision": [round(s, 6) for s in tv]}
    row["calls_per_timing"] = {f"{k}_{kind}": n for (k, kind), n in iters.items()}
    row["seconds"] = round(time.perf_counter() - t_start, 1)
    del pair, steps
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "resnet101", "resnet152"])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--configs", nargs="+", choices=CONFIGS,
                   help="default: fp32 on CPU; fp32 bf16_cl compiled_bf16_cl on CUDA")
    p.add_argument("--compile-models", nargs="+", help="models for compiled_* configs (default: resnet50 only)")
    p.add_argument("--image-size", type=int, help="default: 112 on CPU, 224 on CUDA")
    p.add_argument("--batch", type=int, help="default: 8 on CPU, 128 on CUDA")
    p.add_argument("--warmup", type=int, help="untimed rounds (default: 1 on CPU, 3 on CUDA)")
    p.add_argument("--repeats", type=int, help="timed rounds (default: 11 on CPU, 10 on CUDA)")
    p.add_argument("--min-time", type=float,
                   help="seconds per timing; fast calls are repeated (default 0.25 CPU, 0.2 CUDA)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny run for the test suite: resnet18, 32x32, batch 2, 1 round")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    defaults = dict(configs=list(CONFIGS) if cuda else ["fp32"], compile_models=["resnet50"],
                    image_size=224 if cuda else 112, batch=128 if cuda else 8, warmup=3 if cuda else 1,
                    repeats=10 if cuda else 11, min_time=0.2 if cuda else 0.25)
    if args.smoke:  # fixed tiny settings, whatever else was asked
        vars(args).update(models=["resnet18"], configs=["fp32"], image_size=32, batch=2, warmup=0, repeats=1,
                          min_time=0.0)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("bench_vs_torchvision: --device cuda but no CUDA GPU is visible")
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels, for both
    import torchvision

    rows = []
    for config in args.configs:
        names = [m for m in args.models if not config.startswith("compiled") or m in args.compile_models]
        for name in names:
            row = measure(name, config, device, args)
            rows.append(row)
            print(f"{name:10s} {config:17s} train {row['ours_train_images_per_s']:9.1f} vs "
                  f"{row['torchvision_train_images_per_s']:9.1f} img/s (ratio {row['train_ratio']:.3f})   infer "
                  f"{row['ours_infer_images_per_s']:9.1f} vs {row['torchvision_infer_images_per_s']:9.1f} img/s "
                  f"(ratio {row['infer_ratio']:.3f})", flush=True)
    all_ratios = {kind: [r[f"{kind}_ratio"] for r in rows] for kind in ("train", "infer")}
    result = {
        "benchmark": "vs_torchvision",
        "hardware": hardware_info(device),
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                     "resnet_lab": resnet_lab_version, "python": sys.version.split()[0]},
        "settings": {"models": args.models, "configs": args.configs, "compile_models": args.compile_models,
                     "image_size": args.image_size, "batch": args.batch, "warmup": args.warmup,
                     "repeats": args.repeats, "min_time_s": args.min_time,
                     "cudnn_benchmark": device.type == "cuda", "smoke": args.smoke,
                     "ratio": "ours/torchvision images/s, median of per-round ratios (> 1: ours faster)"},
        "rows": rows,
        "ratio": {f"{kind}_{stat}": round(fn(v), 4) for kind, v in all_ratios.items()
                  for stat, fn in (("min", min), ("median", statistics.median))},
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"vs_torchvision-{device.type}.json"
    write_json(out, result)
    print(f"ratio ours/torchvision: train min {result['ratio']['train_min']:.3f} median "
          f"{result['ratio']['train_median']:.3f}; infer min {result['ratio']['infer_min']:.3f} median "
          f"{result['ratio']['infer_median']:.3f}\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
