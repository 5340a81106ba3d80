"""Activation memory and step time with and without per-block activation checkpointing.

Memory: activation memory, parameters excluded on both sides. On CUDA, the peak allocated
memory of one forward + backward above what was allocated before it (the parameters), which
still includes the gradients backward allocates, equally on both sides (74 MiB for resnet1202); on CPU
(where no allocator statistics exist), the bytes of tensors autograd saves for backward, counted
through ``torch.autograd.graph.saved_tensors_hooks``, with the parameters' storages skipped - the
activation memory that checkpointing removes. (Every convolution saves its weight for backward; in
a checkpointed block that happens only during the recomputation, outside the count, so counting
the weights would charge them to the baseline alone and inflate the ratio: resnet1202 carries
74 MiB of them.)

Time: forward + backward, eagerly, and the same with torch's hook-based checkpoint, which the
model uses only where the reentrant one cannot go (``hook_based_step_s``). With ``--fused`` also
the whole SGD step as the fast recipe runs it (``TrainStep``: one CUDA graph on a GPU), where the
recomputation's extra kernel launches cost nothing on the host: deep CIFAR nets at batch 128 are
launch-bound.

    python benchmarks/bench_checkpointing.py                      # resnet1202 + preact_resnet1001, CPU
    python benchmarks/bench_checkpointing.py --device cuda --batch 128 --blocks 1 4 --fused
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import torch

from resnet_lab.measure import saved_tensor_bytes  # also used by `resnet-lab compare`
from resnet_lab.models import create_model
from resnet_lab.models import resnet as resnet_module
from resnet_lab.runtime import hardware_info
from resnet_lab.files import write_json
from resnet_lab.training.graphed_step import TrainStep


def median_seconds(run, cuda: bool, repeats: int) -> float:
    """Median wall time of ``run()`` over ``repeats`` calls after one warm-up call (which, for a
    graphed step, also captures the graph)."""
    times = []
    for i in range(repeats + 1):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_seconds(model, x, repeats: int) -> float:
    return median_seconds(lambda: model(x).sum().backward(), x.is_cuda, repeats)


def fused_step_seconds(model, x, repeats: int) -> tuple[float, str | None]:
    """Median time of the whole SGD step, captured as a CUDA graph where there is one, and why
    capture failed (None: it did not), in which case the step ran eagerly."""
    step = TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                     torch.nn.functional.cross_entropy)
    y = torch.zeros(len(x), dtype=torch.long, device=x.device)
    return median_seconds(lambda: step(x, y, 0.01), x.is_cuda, repeats), step.capture_error


def measure(name: str, batch: int, device: str, repeats: int, blocks: int, fused: bool = False,
            memory_only: bool = False) -> dict:
    row = {"model": name, "batch": batch, "blocks_per_checkpoint": blocks}
    for ckpt in (0, blocks):
        torch.manual_seed(0)
        model = create_model(name, checkpointing=ckpt).to(device).train()
        x = torch.randn(batch, 3, 32, 32, device=device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            model(x).sum().backward()
            mem = torch.cuda.max_memory_allocated() - base
        else:
            mem = saved_tensor_bytes(model, x, skip_parameters=True)  # activations only, on both sides
        key = "checkpointed" if ckpt else "baseline"
        row[f"{key}_activation_mib"] = round(mem / 2**20, 2)
        if memory_only:
            continue
        row[f"{key}_step_s"] = step_seconds(model, x, repeats)
        if ckpt:  # the same step with torch's hook-based checkpoint, which the model picks only where it must
            with mock.patch.object(resnet_module, "_reentrant_checkpoint_fits", lambda x: False):
                row["hook_based_step_s"] = step_seconds(model, x, repeats)
        if fused:
            row[f"{key}_fused_step_s"], row[f"{key}_capture_error"] = fused_step_seconds(model, x, repeats)
    row["memory_reduction_x"] = round(row["baseline_activation_mib"] / row["checkpointed_activation_mib"], 2)
    if memory_only:
        return row
    if fused:
        row["extra_fused_step_time_pct"] = round(
            100 * (row["checkpointed_fused_step_s"] / row["baseline_fused_step_s"] - 1), 1)
    row["extra_step_time_pct"] = round(100 * (row["checkpointed_step_s"] / row["baseline_step_s"] - 1), 1)
    row["extra_step_time_hook_based_pct"] = round(100 * (row["hook_based_step_s"] / row["baseline_step_s"] - 1), 1)
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["resnet1202", "preact_resnet1001"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--blocks", type=int, nargs="+", default=[1],
                   help="blocks per checkpointed run; one row per value (e.g. 1 4)")
    p.add_argument("--fused", action="store_true", help="also time the whole SGD step as a CUDA graph (TrainStep)")
    p.add_argument("--memory-only", action="store_true",
                   help="skip the step timings: memory is deterministic, "
                        "timings on a busy CPU take long and mean little")
    p.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.models, args.batch, args.repeats, args.fused = ["resnet20"], 2, 1, True
    load_before = os.getloadavg()  # step times on a CPU shared with other jobs run slower and noisier
    result = {"benchmark": "checkpointing",
              "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "memory": "peak allocated above the parameters (cuda)" if args.device == "cuda"
                        else "bytes saved for backward, parameters excluded (cpu)",
              "settings": {"models": args.models, "batch": args.batch, "repeats": args.repeats,
                           "blocks": args.blocks, "fused": args.fused, "memory_only": args.memory_only,
                           "smoke": args.smoke},
              "hardware": hardware_info(args.device),
              "rows": [measure(m, args.batch, args.device, args.repeats, k, args.fused, args.memory_only)
                       for m in args.models for k in args.blocks]}
    result["load_average_1min"] = {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)}
    out = args.out or Path(__file__).parent / "results" / f"checkpointing-{args.device}.json"
    write_json(out, result)
    for row in result["rows"]:
        print(f"{row['model']} (checkpoint every {row['blocks_per_checkpoint']} block(s)): "
              f"activations {row['baseline_activation_mib']} -> {row['checkpointed_activation_mib']} MiB "
              f"({row['memory_reduction_x']}x less)"
              + ("" if args.memory_only else f", step time {row['extra_step_time_pct']:+}% "
                 f"(hook-based checkpoint {row['extra_step_time_hook_based_pct']:+}%)")
              + (f", fused step {row['extra_fused_step_time_pct']:+}%" if args.fused and not args.memory_only else ""))
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
