"""`load_data`: one entry point that turns a data set spec string into a data set."""

from __future__ import annotations

from pathlib import Path

from resnet_lab.data.choices import IN_MEMORY_SPECS, VALID_SPECS
from resnet_lab.data.cifar import VARIANTS, fetch_cifar, load_cifar
from resnet_lab.data.dataset import InMemoryDataset
from resnet_lab.data.digits import load_digits_dataset
from resnet_lab.data.folder import FolderDataset, load_folder
from resnet_lab.data.npz import load_npz
from resnet_lab.errors import UserError


def load_data(
    spec: str = "digits",
    data_dir: str | Path | None = None,
    val_split: int = 0,
    seed: int = 0,
    download: bool = True,
) -> InMemoryDataset | FolderDataset:
    """Load a data set by spec.

    Specs: "digits" (bundled with scikit-learn, no network), "cifar10", "cifar100" (official
    archives, cached in `data_dir` or the default cache folder, downloaded if `download`),
    "npz:PATH", "folder:PATH". With `val_split=K > 0`, K training images (stratified, chosen
    by `seed`) become the evaluation split instead of the test set.
    """
    if val_split < 0:
        raise UserError(f"--val-split must be 0 (use the test set) or a positive count, got {val_split}")
    kind, path = _parse(spec)
    if data_dir is not None and kind not in VARIANTS:  # it would be ignored
        raise UserError(f"--data-dir is the cache folder of the downloaded data sets ({', '.join(VARIANTS)}); "
                        f"--data {spec} uses none: leave --data-dir out")
    if kind in ("npz", "folder"):
        ds = load_npz(path) if kind == "npz" else load_folder(path)
        if ds.num_classes < 2:  # cross-entropy over one class is 0 whatever the weights: nothing would train
            raise UserError(f"{spec} has a single class ({ds.classes[0]!r}); a classifier needs at least two: "
                            f"{'label the images 0..K-1' if kind == 'npz' else 'add a folder per class'}")
    elif kind == "digits":
        ds = load_digits_dataset()
    else:
        ds = load_cifar(kind, data_dir=data_dir, download=download)
    return ds.with_holdout(val_split, seed) if val_split else ds


def prepare_data(spec: str, data_dir: str | Path | None = None, in_memory: bool = False) -> None:
    """What a process that starts training processes checks first: the spec names a data set (one
    held in memory, not an image folder, if ``in_memory``), a file or folder it names exists, and a
    download (CIFAR) is fetched here once, not by each worker."""
    kind, path = _parse(spec, IN_MEMORY_SPECS if in_memory else VALID_SPECS)
    if in_memory and kind == "folder":
        raise UserError(f"--data {spec}: this needs data held in memory, not an image folder; use one of: "
                        f"{IN_MEMORY_SPECS}")
    if kind in ("npz", "folder") and not Path(path).expanduser().exists():  # ~ as load_npz/load_folder read it
        raise UserError(f"--data {spec}: {path} does not exist")
    if kind in VARIANTS:
        fetch_cifar(kind, data_dir=data_dir)


def _parse(spec: str, valid: str = VALID_SPECS) -> tuple[str, str]:
    """``npz:PATH`` -> ("npz", PATH); ``digits`` -> ("digits", ""); anything else is refused."""
    if not isinstance(spec, str):  # a loaded data set, a Path: the spec is a name
        raise UserError(f"data is named by a string ({valid}), got {type(spec).__name__}; where a function "
                        "takes an already loaded data set it goes to dataset=")
    kind, sep, path = spec.strip().partition(":")
    kind = kind.lower()
    if sep and kind in ("npz", "folder"):
        if not path:
            raise UserError(f"'{spec}' has no path after '{kind}:'; use {kind}:PATH")
        return kind, path
    if not sep and (kind == "digits" or kind in VARIANTS):
        return kind, ""
    raise UserError(f"unknown data set '{spec}'; use one of: {valid}")
