"""Image-folder data sets (PATH/train/<class>/*, PATH/val/<class>/*) decoded by DataLoader workers."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from resnet_lab.data.dataset import check_global_batch, stratified_holdout
from resnet_lab.data.preprocess import float_pixels_refused, load_image
from resnet_lab.errors import UserError, first_line
from resnet_lab.text import counted

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHOW_BAD = 5  # how many bad paths a warning names


def default_workers() -> int:
    """DataLoader workers when none are asked for: up to 4, within this process's share of the
    CPUs (more workers than cores slow decoding down, and torch warns about it)."""
    from ..runtime import cpu_cores

    return max(1, min(4, cpu_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))


@dataclass
class FolderDataset:
    """File lists of an image-folder data set; images are decoded later, in loader workers.

    `train_files`/`val_files` are (path, class index) pairs. `bad_files` are files that PIL
    could not verify; they are excluded and summarised in `warnings`.
    """

    name: str
    root: Path
    classes: list[str]
    train_files: list[tuple[str, int]]
    val_files: list[tuple[str, int]]
    bad_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    hflip: bool = True
    in_channels: int = 3
    image_size: int = 224  # default training resolution; make_folder_loaders takes any size
    eval_split: str = "val"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def description(self) -> str:
        text = (
            f"{self.name}: {len(self.train_files):,} train / {len(self.val_files):,} {self.eval_split} images, "
            f"{self.num_classes} classes"
        )
        if self.bad_files:
            text += f", {counted(len(self.bad_files), 'unreadable file')} excluded"
        return text

    def with_holdout(self, k: int, seed: int = 0) -> "FolderDataset":
        """Use `k` training files (stratified, chosen by `seed`) as the evaluation split."""
        n = len(self.train_files)
        if not 0 < k < n:
            raise UserError(
                f"--val-split {k} is out of range: the training folder has {n:,} images; "
                f"use a number between 1 and {n - 1}"
            )
        keep, held = stratified_holdout(np.array([c for _, c in self.train_files]), k, seed)
        return FolderDataset(
            name=f"{self.name} [val {k} held out of train, seed {seed}]",
            root=self.root,
            classes=self.classes,
            train_files=[self.train_files[i] for i in keep],
            val_files=[self.train_files[i] for i in held],
            bad_files=self.bad_files,
            warnings=self.warnings,
            mean=self.mean,
            std=self.std,
            hflip=self.hflip,
            image_size=self.image_size,
            eval_split="val",
        )


def load_folder(path: str | Path) -> FolderDataset:
    """Scan PATH/train and PATH/val, verify every image once, and drop the unreadable ones.

    Verifying up front (in threads: it is I/O bound) means a corrupt file is reported before
    training instead of crashing a worker in the middle of an epoch.
    """
    root = Path(path).expanduser()
    layout = "expected PATH/train/<class>/<images> and PATH/val/<class>/<images>"
    if root.exists() and not root.is_dir():  # not "not found": the file is there
        raise UserError(f"folder:{root} is a file, not a folder of images; give the folder that holds train/ and "
                        "val/, or npz:PATH for an .npz file")
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}; {layout}")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise UserError(f"{root} has no '{split}' folder; {layout}")
    classes = _class_dirs(root / "train")
    if not classes:
        raise UserError(f"{root / 'train'} has no class folders; {layout}")
    unknown = sorted(set(_class_dirs(root / "val")) - set(classes))
    if unknown:
        raise UserError(
            f"{root / 'val'} has class folders not in train ({', '.join(unknown[:SHOW_BAD])}); "
            f"rename or remove them so val classes match train classes"
        )
    index = {c: i for i, c in enumerate(classes)}
    candidates = {
        split: [(str(p), index[c]) for c in _class_dirs(root / split) for p in _image_files(root / split / c)]
        for split in ("train", "val")
    }
    all_paths = [p for split in candidates.values() for p, _ in split]
    with ThreadPoolExecutor(max_workers=min(32, 4 * (os.cpu_count() or 1))) as pool:
        kinds = dict(zip(all_paths, pool.map(_image_kind, all_paths)))
    floats = [p for p in all_paths if kinds[p] == "float"]
    if floats:
        raise float_pixels_refused(floats)
    bad = [p for p in all_paths if kinds[p] == "unreadable"]
    files = {split: [(p, c) for p, c in items if kinds[p] == "ok"] for split, items in candidates.items()}

    for split in ("train", "val"):
        present = {c for _, c in files[split]}
        for c in _class_dirs(root / split):
            if index[c] not in present:
                raise UserError(
                    f"class folder {root / split / c} has no readable images; add images or remove the folder"
                )
    if not files["val"]:
        raise UserError(f"{root / 'val'} has no readable images; {layout}")
    notes = []
    if bad:
        shown = ", ".join(bad[:SHOW_BAD]) + (", ..." if len(bad) > SHOW_BAD else "")
        notes.append(f"{counted(len(bad), 'unreadable image file')} excluded: {shown}")
    return FolderDataset(
        name=f"folder:{root.name}",
        root=root,
        classes=classes,
        train_files=files["train"],
        val_files=files["val"],
        bad_files=bad,
        warnings=notes,
    )


def _class_dirs(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        return []
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def _image_files(class_dir: Path) -> list[Path]:
    # Only names PIL knows how to open: notes or checksums next to the images are ignored,
    # while a corrupt file with an image extension is caught by the verification. Hidden files
    # and everything in hidden folders (.ipynb_checkpoints, .thumbnails: copies of the images)
    # are left out, as hidden class folders are: they would count an image twice. A broken link
    # (its target moved) is kept, to be reported as unreadable rather than vanish without a word.
    # Linked subfolders are followed (rglob skipped their images without a word), each real folder once;
    # a link up the tree (to the split or the class itself, a loop) is not: it would read other classes.
    extensions = Image.registered_extensions()
    files, seen, top = [], set(), os.path.realpath(class_dir)
    for folder, subfolders, names in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen or (real != top and os.path.commonpath([real, top]) == real):
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        for name in names:
            p = Path(folder) / name
            if (not name.startswith(".") and p.suffix.lower() in extensions
                    and (p.is_file() or (p.is_symlink() and not p.exists()))):
                files.append(p)
    return sorted(files)


def _image_kind(path: str) -> str:
    """``"ok"``, ``"float"`` (floating-point pixels: refused) or ``"unreadable"`` (left out, with a note)."""
    try:
        with Image.open(path) as im:
            mode, image_format = im.mode, im.format
            im.verify()
        if not _verified_whole(path, image_format):
            with Image.open(path) as im:
                im.load()
        return "float" if mode == "F" else "ok"
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files; all mean "unusable"
        return "unreadable"


def _verified_whole(path: str, image_format: str | None) -> bool:
    """Whether verify() has shown the file complete. It reads PNG and WebP to their checksums, but only
    the header of a JPEG, GIF, BMP or TIFF: one cut short (an interrupted copy) passed, then failed to
    decode mid-epoch and ended the run. A JPEG that ends in its end-of-image marker is whole (the marker
    cannot occur inside its data), so only the rare others are decoded here."""
    if image_format in ("PNG", "WEBP"):
        return True
    if image_format in ("JPEG", "MPO"):
        with open(path, "rb") as f:
            f.seek(-2, os.SEEK_END)
            return f.read() == b"\xff\xd9"
    return False


class UnreadableImageError(UserError):
    """An image that passed the check when the data set was built but fails to decode now.

    DataLoader re-raises a worker's exception as ``type("Caught ... Original Traceback ...")``;
    keeping only the original message's line lets the CLI still print one line.
    """

    def __init__(self, message: str) -> None:
        if "\nOriginal Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


class ImageFileDataset(Dataset):
    """(path, label) pairs decoded by PIL (16-bit grayscale scaled to 8 bits) and passed through `transform`.

    A file that fails to decode here (verify() does not catch every truncated file) raises
    UnreadableImageError: substituting another image would count it twice in an evaluation.
    """

    def __init__(self, files: list[tuple[str, int]], transform) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        path, label = self.files[index]
        try:
            image = load_image(path, "RGB")
        except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
            reason = first_line(e)
            raise UnreadableImageError(
                f"cannot decode image {path} ({reason}) although it passed the check when the data set was "
                f"loaded; replace or delete the file and run again"
            ) from None
        return self.transform(image), label


class ShardSampler(Sampler[int]):
    """Evaluation order for one rank: indices rank, rank+W, ... (no shuffle, no padding).

    DistributedSampler pads by repeating images, which would count them twice in a metric.
    """

    def __init__(self, n: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, n, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class EpochDataLoader(DataLoader):
    """A DataLoader with `set_epoch`, which reseeds the sampler's per-epoch shuffle."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


def folder_transforms(image_size: int, mean, std, hflip: bool = True, augment: bool = True):
    """(train, eval) torchvision transforms: random-resized crop (+ flip) / resize + center crop.
    ``augment=False`` (``--no-augment``): training images are prepared as evaluation images are,
    with no random crop or flip."""
    from torchvision import transforms as T

    # Resize the shorter side to size*256/224, the usual ImageNet evaluation ratio.
    evaluation = [
        T.Resize(max(image_size, round(image_size * 256 / 224))),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(mean, std),
    ]
    if not augment:
        return T.Compose(evaluation), T.Compose(evaluation)
    train = [T.RandomResizedCrop(image_size)]
    if hflip:
        train.append(T.RandomHorizontalFlip())
    train += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(train), T.Compose(evaluation)


def make_folder_loaders(
    ds: FolderDataset,
    batch_size: int,
    image_size: int,
    workers: int | None,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    augment: bool = True,
) -> tuple[EpochDataLoader, EpochDataLoader]:
    """(train_loader, val_loader) for a FolderDataset; `batch_size` is the GLOBAL batch size.

    The train order is a seeded per-epoch shuffle (call `train_loader.set_epoch(e)`), sharded
    across ranks by DistributedSampler (each rank gets batch_size / world_size per step,
    incomplete last batch dropped). Validation is sharded without padding or shuffling.
    ``workers=None``: ``default_workers()``. ``augment=False``: no random crop or flip in training.
    """
    check_global_batch(batch_size, world_size)
    workers = default_workers() if workers is None else workers
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world size {world_size}")
    train_tf, eval_tf = folder_transforms(image_size, ds.mean, ds.std, ds.hflip, augment)
    train_set = ImageFileDataset(ds.train_files, train_tf)
    val_set = ImageFileDataset(ds.val_files, eval_tf)
    # Explicit num_replicas/rank: works without an initialised process group.
    train_sampler = DistributedSampler(
        train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    common = dict(
        batch_size=batch_size // world_size,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )
    train_loader = EpochDataLoader(
        train_set,
        sampler=train_sampler,
        drop_last=True,
        # Worker RNG seeds (crops, flips) derive from this generator: reproducible runs.
        generator=torch.Generator().manual_seed(seed),
        **common,
    )
    val_loader = EpochDataLoader(val_set, sampler=ShardSampler(len(val_set), rank, world_size), **common)
    return train_loader, val_loader
