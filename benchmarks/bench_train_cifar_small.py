"""Accuracy reached per epoch when training on the CIFAR-10 subset in ../shared/data.

    python benchmarks/bench_train_cifar_small.py                    # resnet20, 5 epochs, CPU
    python benchmarks/bench_train_cifar_small.py --model resnet56 --epochs 30 --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from resnet_lab.runtime import hardware_info, pick_device
from resnet_lab.files import write_json
from resnet_lab.training import resolve_config, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=f"npz:{SHARED / 'cifar10-small.npz'}")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--recipe", default="default")
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="resnet8, 1 epoch: for the test suite")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.smoke:
        args.model, args.epochs = "resnet8", 1
    device = pick_device(args.device)
    config = resolve_config(args.recipe, model=args.model, data=args.data, epochs=args.epochs, device=str(device),
                            progress=False, tensorboard=False)
    result = train(config, log=print)
    record = {"benchmark": "train_cifar_small", "model": args.model, "recipe": args.recipe, "data": args.data,
              "data_description": result.data_info["description"], "hardware": hardware_info(device),
              "epochs": [{k: r[k] for k in ("epoch", "train_acc", "test_acc", "images_per_s", "elapsed_s")}
                         for r in result.history]}
    out = args.out or Path(__file__).parent / "results" / f"train_cifar_small-{args.model}-{device.type}.json"
    write_json(out, record)
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
