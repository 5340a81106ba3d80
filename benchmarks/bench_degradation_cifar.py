"""The degradation experiment on real CIFAR-10: plain vs residual nets of depth 20 and 56.

Reads the shared CIFAR-10 copy next to the checkout (``../shared/data``), trains plain20,
resnet20, plain56 and resnet56 with one recipe on whatever device is available, and writes
the final errors, the measured findings and the hardware to
``results/degradation-<data>-<device>.json`` (plus the full report next to it with ``--report DIR``).

    python benchmarks/bench_degradation_cifar.py                  # cifar10-small, 6 epochs (2 idle CPU cores: ~10 min)
    python benchmarks/bench_degradation_cifar.py --full --epochs 20 --device cuda
    python benchmarks/bench_degradation_cifar.py --smoke --out /tmp/d.json   # tiny, for the tests
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import torch

from resnet_lab.data import load_data
from resnet_lab.data import limit_dataset
from resnet_lab.experiments.degradation import run_degradation
from resnet_lab.runtime import pick_device
from resnet_lab.files import write_json

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="cifar10-full.npz (50k/10k) instead of cifar10-small (10k/2k)")
    p.add_argument("--data", help="any data spec instead (default: npz:<repo>/../shared/data/cifar10-small.npz)")
    p.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, help="default: 6 on CPU (about 10 min on 2 idle cores), 30 on a GPU")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--recipe", default="default")
    p.add_argument("--limit", type=int, help="use at most N training images (and N/5 test images)")
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny run for the test suite: depths 8 14, 1 epoch, 256 images")
    p.add_argument("--out", type=Path, help="JSON path (default: results/degradation-<data>-<device>.json)")
    p.add_argument("--report", type=Path, metavar="DIR", help="also write results.json, figures and report.html here")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    if args.smoke:
        args.depths, args.epochs, args.limit, args.batch_size = [8, 14], 1, 256, 64
    device = pick_device(args.device)
    if args.epochs is None:
        args.epochs = 6 if device.type == "cpu" else 30
    path = SHARED / ("cifar10-full.npz" if args.full else "cifar10-small.npz")
    spec = args.data or f"npz:{path}"
    data_tag = "custom" if args.data else ("cifar10full" if args.full else "cifar10small")
    if args.smoke or args.limit:
        data_tag += f"-limit{args.limit}"

    t0 = time.perf_counter()
    dataset = load_data(spec)
    load_s = time.perf_counter() - t0
    if args.limit:
        dataset = limit_dataset(dataset, train=args.limit, test=max(1, args.limit // 5), seed=0)
    log = (lambda *_: None) if args.quiet else (lambda m: print(m, flush=True))
    result = run_degradation(args.depths, data=spec, seeds=args.seeds, recipe=args.recipe, epochs=args.epochs,
                             device=str(device), batch_size=args.batch_size, dataset=dataset, log=log)
    summary = {
        "benchmark": "degradation_cifar", "date": date.today().isoformat(), "data": spec,
        "data_description": result["settings"]["data_description"], "load_s": round(load_s, 2),
        "settings": result["settings"], "hardware": result["hardware"],
        "run_time_s": round(result["run_time_s"], 1),
        "networks": [{k: n[k] for k in ("model", "depth", "shortcut", "params", "final_train_error",
                                        "final_test_error", "final_train_error_std", "final_test_error_std",
                                        "train_error", "test_error", "time_s")} for n in result["networks"]],
        "findings": {k: v for k, v in result["findings"].items()},
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"degradation-{data_tag}-{device.type}.json"
    write_json(out, summary)
    if args.report:
        from resnet_lab.experiments.degradation import write_degradation_outputs

        write_degradation_outputs(result, args.report)
    for n in summary["networks"]:
        print(f"{n['model']:>10}: final training error {100 * n['final_train_error']:.2f}%, "
              f"test error {100 * n['final_test_error']:.2f}% ({n['time_s']:.0f} s)")
    for line in summary["findings"]["text"][:1]:
        print(line)
    print(f"run time {summary['run_time_s']} s on {summary['hardware'].get('gpu') or summary['hardware']['cpu']} "
          f"(torch {torch.__version__}); wrote {out}")
    return summary


if __name__ == "__main__":
    main()
