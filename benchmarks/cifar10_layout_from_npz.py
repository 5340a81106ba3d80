"""Write CIFAR-10's official extracted layout (`cifar-10-batches-py/`) from an .npz copy.

For machines that cannot download the official archive (a lent GPU with no network): with this
folder in the data cache, `resnet-lab train --data cifar10` reads the same files it reads after
its own download, so the benchmark times the user's command, loading included.

The images and labels are the .npz's (uint8 HWC -> the official CHW rows); only the order of
training images across the five batch files follows the .npz, which the training loader
shuffles anyway.

    python benchmarks/cifar10_layout_from_npz.py ../shared/data/cifar10-full.npz /tmp/cifar
    RESNET_LAB_DATA=/tmp/cifar resnet-lab train --recipe fast --data cifar10 ...
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_layout(npz: str | Path, root: str | Path) -> Path:
    """Write ``root/cifar-10-batches-py`` from ``npz`` (x_train, y_train, x_test, y_test); return it."""
    with np.load(npz) as z:
        arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, entries: dict) -> None:
        # Protocol 2 and bytes keys, as in the official Python 2 pickles.
        with open(folder / name, "wb") as f:
            pickle.dump({k.encode(): v for k, v in entries.items()}, f, protocol=2)

    def rows(x: np.ndarray) -> np.ndarray:  # (N, 32, 32, 3) -> (N, 3072): red, green, blue planes
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(len(x), -1)

    batches = zip(np.array_split(rows(arrays["x_train"]), 5), np.array_split(arrays["y_train"], 5))
    for i, (x, y) in enumerate(batches, 1):
        dump(f"data_batch_{i}", {"data": x, "labels": y.tolist()})
    dump("test_batch", {"data": rows(arrays["x_test"]), "labels": arrays["y_test"].tolist()})
    dump("batches.meta", {"label_names": [n.encode() for n in CLASSES]})
    return folder


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("npz", help="an .npz with x_train, y_train, x_test, y_test (e.g. ../shared/data/cifar10-full.npz)")
    p.add_argument("root", help="the data cache folder to write into (use it as RESNET_LAB_DATA or --data-dir)")
    args = p.parse_args()
    print(f"wrote {write_layout(args.npz, args.root)}")
