"""Tests for resnet_lab.data: data set loading, validation, caching and the device batch pipeline."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from resnet_lab.data import (
    DeviceLoader,
    FolderDataset,
    InMemoryDataset,
    load_data,
    make_folder_loaders,
    preprocess_images,
)
from resnet_lab.data import cifar
from resnet_lab.data.folder import ImageFileDataset, default_workers
from resnet_lab.errors import UserError

MEAN3, STD3 = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _normalise(x: torch.Tensor, mean=MEAN3, std=STD3) -> torch.Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x.float() / 255 - m) / s


def _epoch(loader: DeviceLoader, start: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(loader.iter_from(start))


# ----------------------------------------------------------------------------- digits & spec


def test_digits_has_fixed_stratified_split_one_channel_32px_and_no_flip():
    a, b = load_data("digits"), load_data()
    assert isinstance(a, InMemoryDataset)
    assert a.x_train.shape == (1437, 1, 32, 32) and a.x_test.shape == (360, 1, 32, 32)
    assert a.x_train.dtype == torch.uint8 and a.y_train.dtype == torch.int64
    assert (a.in_channels, a.image_size, a.num_classes) == (1, 32, 10)
    assert a.hflip is False  # flipped digits are different shapes
    assert int(a.x_train.max()) > 200  # scaled from 0..16 to the full uint8 range
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert torch.bincount(a.y_test).tolist() == torch.bincount(b.y_test).tolist()
    assert min(torch.bincount(a.y_test).tolist()) >= 35  # stratified: every class ~36
    assert a.description() == "digits: 1,437 train / 360 test, 32x32x1, 10 classes"
    # mean/std come from the training images on the [0, 1] scale
    assert a.mean[0] == pytest.approx(a.x_train.double().div(255).mean().item(), abs=1e-9)
    assert a.std[0] == pytest.approx(a.x_train.double().div(255).std(unbiased=False).item(), abs=1e-9)


def test_val_split_holds_out_stratified_training_images_instead_of_test():
    full = load_data("digits")
    ds = load_data("digits", val_split=100, seed=3)
    assert len(ds.x_train) == 1337 and len(ds.x_test) == 100
    assert torch.bincount(ds.y_test).tolist() == [10] * 10
    assert "val" in ds.name and "val" in ds.description()
    # The held-out images come from the training set, not the test set, and leave it.
    held = {bytes(im.numpy()) for im in ds.x_test}
    assert held <= {bytes(im.numpy()) for im in full.x_train}
    assert not held & {bytes(im.numpy()) for im in ds.x_train}
    assert torch.equal(load_data("digits", val_split=100, seed=3).x_test, ds.x_test)
    assert not torch.equal(load_data("digits", val_split=100, seed=4).x_test, ds.x_test)
    with pytest.raises(UserError, match="val-split"):
        load_data("digits", val_split=5000)


def test_unknown_spec_lists_valid_forms():
    with pytest.raises(UserError, match="cifar10.*npz:PATH.*folder:PATH"):
        load_data("mnist")
    with pytest.raises(UserError, match="npz:PATH"):
        load_data("npz:")


# ----------------------------------------------------------------------------- npz


def _save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return f"npz:{path}"


def _valid_arrays(gray: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape = (12, 8, 8) if gray else (12, 8, 8, 3)
    return dict(
        x_train=rng.integers(0, 256, shape, dtype=np.uint8),
        y_train=np.arange(12) % 4,
        x_test=rng.integers(0, 256, (5, *shape[1:]), dtype=np.uint8),
        y_test=np.arange(5) % 3,
    )


def test_npz_roundtrip_grayscale_and_rgb(tmp_path):
    arrays = _valid_arrays(gray=True)
    ds = load_data(_save_npz(tmp_path / "g.npz", **arrays))
    assert ds.x_train.shape == (12, 1, 8, 8) and ds.num_classes == 4 and ds.hflip
    assert torch.equal(ds.x_train[:, 0], torch.from_numpy(arrays["x_train"]))
    rgb = _valid_arrays()
    ds = load_data(_save_npz(tmp_path / "c.npz", **rgb, classes=np.array(["a", "b", "c", "d"])))
    assert ds.x_test.shape == (5, 3, 8, 8) and ds.classes == ["a", "b", "c", "d"]
    assert torch.equal(ds.x_test.permute(0, 2, 3, 1), torch.from_numpy(rgb["x_test"]))  # HWC -> CHW
    assert torch.equal(ds.y_train, torch.from_numpy(rgb["y_train"]))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_test"), "no array 'y_test'"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32) / 255), "x_train has dtype float32"),
        (lambda a: a.update(x_test=a["x_test"][:, :, :, 0, None, None]), "x_test has shape"),
        (lambda a: a.update(x_train=a["x_train"][..., :2]), "x_train has shape"),
        (lambda a: a.update(y_train=np.arange(12) - 1), "y_train has negative label"),
        (lambda a: a.update(y_test=np.array([0, 1, 2, 3, 4])), "y_test has label 4"),
        (lambda a: a.update(y_train=np.arange(11) % 4), "y_train has 11 labels but x_train has 12"),
        (lambda a: a.update(y_train=(np.arange(12) % 4).astype(np.float32)), "y_train has dtype float32"),
        (lambda a: a.update(y_train=np.eye(4, dtype=np.int64)[np.arange(12) % 4]), "y_train has shape"),
    ],
    ids=["missing-key", "float-images", "wrong-ndim", "wrong-channels", "negative-label",
         "test-label-out-of-range", "n-mismatch", "float-labels", "one-hot-labels"],
)
def test_npz_rejects_each_bad_array_with_a_message_naming_it(tmp_path, change, message):
    arrays = _valid_arrays()
    change(arrays)
    with pytest.raises(UserError, match=message):
        load_data(_save_npz(tmp_path / "bad.npz", **arrays))


def test_a_home_relative_data_path_that_training_loads_passes_the_sweeps_and_demos_check(tmp_path, monkeypatch):
    """``--data npz:~/x.npz`` (bash leaves a ~ after a colon as it is): train expands it, while sweep and demo,
    which check the path first, said it did not exist."""
    from resnet_lab.data import prepare_data

    monkeypatch.setenv("HOME", str(tmp_path))
    _save_npz(tmp_path / "x.npz", **_valid_arrays())
    assert load_data("npz:~/x.npz").num_classes == 4
    prepare_data("npz:~/x.npz", in_memory=True)
    with pytest.raises(UserError, match="does not exist"):
        prepare_data("npz:~/y.npz")

def test_npz_missing_or_unreadable_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found.*nope.npz"):
        load_data(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(UserError, match="junk.npz"):
        load_data(f"npz:{tmp_path / 'junk.npz'}")


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.array([0, 1, 2, 2**63 + 5] * 3, dtype=np.uint64),
         r"y_train has label 9223372036854775813; labels must be class indices 0\.\.K-1 with K <= 100,000"),
        (np.array([0, 1, 2, 2**40] * 3, dtype=np.int64), "y_train has label 1099511627776; .*K <= 100,000"),
        (np.array([0, 1, 2, 9_999_999] * 3), "y_train has label 9999999; .*renumber"),
        (np.array([0, 1, 2, 99] * 3), "largest label 99 implies 100 classes but only 4 distinct labels occur"),
        (np.array([0, 1, 2, np.nan] * 3), "y_train has dtype float64, expected integer"),
        (np.array([0.5, 1, 2, 3] * 3), "y_train has dtype float64, expected integer"),
        (np.array([True, False] * 6), "y_train has dtype bool, expected integer"),
    ],
    ids=["uint64-above-2**63", "2**40", "ten-million", "sparse-gaps", "nan", "fractional", "bool"],
)
def test_npz_refuses_labels_that_are_not_sane_class_indices(tmp_path, labels, message):
    """D8: a stray huge label must not wrap negative, build a giant head or exhaust memory."""
    arrays = _valid_arrays()
    arrays["y_train"] = labels
    with pytest.raises(UserError, match=message) as err:
        load_data(_save_npz(tmp_path / "bad.npz", **arrays))
    assert "\n" not in str(err.value)


def test_npz_gaps_in_labels_are_fine_when_the_class_count_stays_reasonable(tmp_path):
    arrays = _valid_arrays()
    arrays["y_train"] = np.array([0, 3, 7, 9] * 3, dtype=np.uint64)  # 10 classes, 4 present
    assert load_data(_save_npz(tmp_path / "gaps.npz", **arrays)).num_classes == 10


def test_npz_object_arrays_are_refused_without_unpickling_or_mentioning_allow_pickle(tmp_path):
    arrays = _valid_arrays()
    arrays["y_train"] = np.array([0, 1, 2, 3] * 3, dtype=object)
    with pytest.raises(UserError, match="'y_train' is not a plain numeric array") as err:
        load_data(_save_npz(tmp_path / "obj.npz", **arrays))
    assert "allow_pickle" not in str(err.value)
    # Unused members are never read, so an extra object array does not matter.
    assert load_data(_save_npz(tmp_path / "extra.npz", **_valid_arrays(),
                               notes=np.array([{}], dtype=object))).num_classes == 4


def test_a_data_set_of_a_single_class_is_refused(tmp_path):
    """One class trained to a loss of 0 from the first step and reported test accuracy 1.0000."""
    x, y = np.zeros((4, 8, 8), np.uint8), np.zeros(4, np.int64)
    np.savez(tmp_path / "one.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    with pytest.raises(UserError, match="has a single class \\('0'\\); a classifier needs at least two"):
        load_data(f"npz:{tmp_path / 'one.npz'}")
    for split in ("train", "val"):
        _png(tmp_path / "imgs" / split / "cat" / "0.png")
    with pytest.raises(UserError, match="has a single class \\('cat'\\); .* add a folder per class"):
        load_data(f"folder:{tmp_path / 'imgs'}")


def test_npz_class_names_that_repeat_are_refused(tmp_path):
    """Ten classes all named 'a' loaded, and predict then named every class 'a'."""
    x, y = np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 2, 0])
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y, classes=np.array(["a", "b", "a"]))
    with pytest.raises(UserError, match="classes names more than one class 'a'; give each class its own name"):
        load_data(f"npz:{tmp_path / 'd.npz'}")


def test_npz_given_a_folder_says_it_is_a_folder_not_that_it_is_missing(tmp_path):
    with pytest.raises(UserError, match="is a folder, not an .npz file; .* or folder:PATH for a folder of images"):
        load_data(f"npz:{tmp_path}")


def test_folder_given_a_file_says_it_is_a_file_not_that_it_is_missing(tmp_path):
    """folder:data.npz was refused as 'image folder not found: data.npz' though the file was right there."""
    path = _save_npz(tmp_path / "data.npz", **_valid_arrays()).removeprefix("npz:")
    with pytest.raises(UserError, match=r"data.npz is a file, not a folder of images; .*or npz:PATH for an .npz"):
        load_data(f"folder:{path}")


def test_a_data_dir_the_data_set_would_ignore_is_refused(tmp_path, capsys):
    """--data-dir is CIFAR's download cache: digits, npz: and folder: read none, and took it silently."""
    from resnet_lab.cli.main import main

    with pytest.raises(UserError, match="--data digits uses none: leave --data-dir out"):
        load_data("digits", data_dir=tmp_path)
    assert main(["train", "--data", "digits", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "--data-dir is the cache folder of the downloaded data sets (cifar10, cifar100)" in capsys.readouterr().err


def test_npz_given_an_npy_or_a_text_file_says_what_it_is(tmp_path):
    """D11 (an .npy was a TypeError traceback) and D18 (a text file suggested allow_pickle=)."""
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(UserError, match=r"x.npy is a single \.npy array, not an \.npz archive; .*np.savez"):
        load_data(f"npz:{tmp_path / 'x.npy'}")
    (tmp_path / "notes.npz").write_text("x_train, y_train\n1, 2\n")
    with pytest.raises(UserError, match=r"notes.npz is not a valid \.npz archive") as err:
        load_data(f"npz:{tmp_path / 'notes.npz'}")
    assert "pickle" not in str(err.value)


@pytest.mark.parametrize("shape", [(12, 1, 1, 3), (12, 7, 8), (12, 8, 4, 1)])
def test_npz_images_smaller_than_8x8_are_refused_like_image_size(tmp_path, shape):
    """D17: 1x1 images trained to a loss of 3.5e7; --image-size and folders require >= 8."""
    arrays = _valid_arrays()
    arrays["x_train"] = np.zeros(shape, np.uint8)
    arrays["x_test"] = np.zeros((5, *shape[1:]), np.uint8)
    with pytest.raises(UserError,
                       match=rf"x_train images are {shape[1]}x{shape[2]} pixels; images must be at least 8x8"):
        load_data(_save_npz(tmp_path / "tiny.npz", **arrays))


def test_shared_cifar10_small_loads_through_npz(shared_data_dir):
    ds = load_data(f"npz:{shared_data_dir / 'cifar10-small.npz'}")
    assert ds.x_train.shape == (10000, 3, 32, 32) and ds.x_test.shape == (2000, 3, 32, 32)
    assert ds.num_classes == 10 and ds.hflip
    assert ds.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.01)
    assert ds.std == pytest.approx((0.2470, 0.2435, 0.2616), abs=0.01)


# ----------------------------------------------------------------------------- CIFAR


def _cifar10_files(n_per_batch: int = 2, n_test: int = 3) -> dict[str, bytes]:
    """A tiny CIFAR-10 in the official layout: pickled dicts with bytes keys."""
    rng = np.random.default_rng(1)
    files = {}
    for name, n in [*((f"data_batch_{i}", n_per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)]}
        files[name] = pickle.dumps(batch)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    files["batches.meta"] = pickle.dumps({b"label_names": names})
    return files


def _write_tree(root: Path, folder: str, files: dict[str, bytes]) -> None:
    (root / folder).mkdir(parents=True)
    for name, data in files.items():
        (root / folder / name).write_bytes(data)


def _tar_gz(path: Path, folder: str, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_extracted_copy_loads_offline_with_chw_pixels(tmp_path):
    files = _cifar10_files()
    _write_tree(tmp_path, "cifar-10-batches-py", files)
    ds = load_data("cifar10", data_dir=tmp_path, download=False)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.hflip
    row = pickle.loads(files["data_batch_2"])[b"data"][1]  # train image 3
    # Official rows are 1024 red, 1024 green, 1024 blue values, each 32x32 row-major.
    assert torch.equal(ds.x_train[3, 0], torch.from_numpy(row[:1024].reshape(32, 32)))
    assert torch.equal(ds.x_train[3, 2], torch.from_numpy(row[2048:].reshape(32, 32)))
    assert ds.y_test.tolist() == pickle.loads(files["test_batch"])[b"labels"]
    assert ds.description().startswith("CIFAR-10: 10 train / 3 test, 32x32x3, 10 classes")


def test_cifar10_cached_archive_is_verified_and_extracted_once(tmp_path, monkeypatch):
    md5 = _tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", _cifar10_files())
    monkeypatch.setitem(cifar.EXPECTED_MD5, "cifar-10-python.tar.gz", md5)
    ds = load_data("cifar10", data_dir=tmp_path, download=False)
    assert len(ds.x_train) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    # Second load uses the extracted copy: the archive is no longer needed.
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    assert torch.equal(load_data("cifar10", data_dir=tmp_path, download=False).x_train, ds.x_train)


def test_cifar10_wrong_checksum_names_the_file_and_says_delete_it(tmp_path):
    _tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", _cifar10_files())
    with pytest.raises(UserError, match="cifar-10-python.tar.gz has the wrong MD5.*delete it"):
        load_data("cifar10", data_dir=tmp_path)
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cifar10_download_is_verified_then_kept(tmp_path, monkeypatch):
    source = tmp_path / "source.tar.gz"
    md5 = _tar_gz(source, "cifar-10-batches-py", _cifar10_files())
    monkeypatch.setitem(cifar.EXPECTED_MD5, "cifar-10-python.tar.gz", md5)
    urls = []
    monkeypatch.setattr(cifar, "_download", lambda url, dest: (urls.append(url), dest.write_bytes(source.read_bytes())))
    cache = tmp_path / "cache"
    ds = load_data("cifar10", data_dir=cache)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert len(ds.x_test) == 3
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_cifar10_real_download_code_fetches_from_a_url(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    md5 = _tar_gz(mirror / "cifar-10-python.tar.gz", "cifar-10-batches-py", _cifar10_files())
    monkeypatch.setitem(cifar.EXPECTED_MD5, "cifar-10-python.tar.gz", md5)
    monkeypatch.setattr(cifar, "BASE_URL", mirror.as_uri() + "/")  # urllib, no network needed
    assert len(load_data("cifar10", data_dir=tmp_path / "cache").x_train) == 10


def test_cifar10_corrupt_download_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "_download", lambda url, dest: dest.write_bytes(b"truncated"))
    with pytest.raises(UserError, match="downloaded cifar-10-python.tar.gz has MD5"):
        load_data("cifar10", data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cifar_offline_with_nothing_cached_says_which_file_goes_where(tmp_path, monkeypatch):
    def offline(url, dest):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(cifar, "_download", offline)
    cache = tmp_path / "cache"
    for download in (True, False):
        with pytest.raises(UserError) as err:
            load_data("cifar10", data_dir=cache, download=download)
        assert str(cache) in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
        assert "\n" not in str(err.value)
    monkeypatch.setenv("RESNET_LAB_DATA", str(tmp_path / "env-cache"))
    with pytest.raises(UserError, match="cifar-100-python.tar.gz.*env-cache"):
        load_data("cifar100", download=False)


@pytest.mark.parametrize("step, cached_archive", [("mkstemp", False), ("mkdtemp", True)], ids=["download", "extract"])
def test_cifar_read_only_data_dir_is_a_one_line_user_error(tmp_path, monkeypatch, step, cached_archive):
    """D6: an existing but unwritable --data-dir gave a PermissionError traceback. Tests run as
    root, where chmod does not stop writes, so the temp-file call is made to fail instead."""
    if cached_archive:
        md5 = _tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", _cifar10_files())
        monkeypatch.setitem(cifar.EXPECTED_MD5, "cifar-10-python.tar.gz", md5)
    monkeypatch.setattr(cifar, "_download", lambda url, dest: pytest.fail("must not download"))

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cifar.tempfile, step, denied)
    with pytest.raises(UserError, match=rf"cannot write to the data folder {tmp_path} \(Permission denied\); "
                                        r"choose a writable --data-dir") as err:
        load_data("cifar10", data_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(2)
    def split(n):
        return pickle.dumps({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                             b"fine_labels": list(range(n)), b"coarse_labels": [0] * n})
    names = [f"class{i}".encode() for i in range(100)]
    _write_tree(tmp_path, "cifar-100-python", {
        "train": split(6), "test": split(4),
        "meta": pickle.dumps({b"fine_label_names": names, b"coarse_label_names": [b"x"] * 20}),
    })
    ds = load_data("cifar100", data_dir=tmp_path, download=False)
    assert ds.num_classes == 100 and ds.y_train.tolist() == list(range(6)) and ds.classes[99] == "class99"


def test_cifar_incomplete_extracted_copy_asks_to_delete_it(tmp_path):
    files = _cifar10_files()
    del files["test_batch"]
    _write_tree(tmp_path, "cifar-10-batches-py", files)
    with pytest.raises(UserError, match="incomplete.*test_batch.*delete"):
        load_data("cifar10", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------- DeviceLoader


def _loader(x, batch_size=8, **kw) -> DeviceLoader:
    kw.setdefault("train", True)
    kw.setdefault("augment", True)
    kw.setdefault("hflip", True)
    # Labels = image index, so every output row says which input image it came from.
    return DeviceLoader(x, torch.arange(len(x)), batch_size, mean=MEAN3, std=STD3, **kw)


def _matches_a_window(out: torch.Tensor, image: torch.Tensor, flips: bool, pad: int = 4,
                      mode: str = "constant") -> bool:
    """Reference: pad the raw image by ``pad`` (``F.pad``'s mode), normalise, compare with every 32x32 window."""
    padded = _normalise(F.pad(image[None].float(), (pad,) * 4, mode=mode))[0]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            window = padded[:, dy : dy + 32, dx : dx + 32]
            if torch.allclose(out, window, atol=1e-5):
                return True
            if flips and torch.allclose(out, window.flip(-1), atol=1e-5):
                return True
    return False


def test_augmented_batches_are_padded_crops_and_flips_of_the_inputs():
    x = _images(40)
    for hflip in (True, False):
        images, idx = next(iter(_loader(x, 16, hflip=hflip)))
        assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
        for out, i in zip(images[:6], idx[:6]):
            assert _matches_a_window(out, x[i], flips=hflip)
        # Augmentation really happens: most images are not the plain centred image.
        moved = sum(not torch.allclose(o, _normalise(x[i : i + 1])[0], atol=1e-5) for o, i in zip(images, idx))
        assert moved >= 12
        # Random pixels: a mirrored crop never equals an unmirrored one, so this counts flips.
        flipped = sum(not _matches_a_window(o, x[i], flips=False) for o, i in zip(images, idx))
        assert (flipped >= 3) if hflip else (flipped == 0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_translate_and_reflect_padding_crop_windows_of_the_padded_image(channels_last):
    """--translate N: windows of the image padded by N; --pad-mode reflect: padded with the image mirrored at
    its border (F.pad's "reflect", torchvision's padding_mode="reflect"), never with black."""
    x = _images(24)
    for pad, mode in ((2, "zeros"), (3, "reflect")):
        images, idx = next(iter(_loader(x, 24, hflip=False, pad=pad, pad_mode=mode, channels_last=channels_last)))
        reference = "reflect" if mode == "reflect" else "constant"
        assert all(_matches_a_window(o, x[i], False, pad, reference) for o, i in zip(images, idx))
        zeros_too = all(_matches_a_window(o, x[i], False, pad) for o, i in zip(images, idx))
        assert zeros_too is (mode == "zeros")  # random pixels: a reflected border is never black
    images, idx = next(iter(_loader(x, 8, hflip=False, pad=0)))  # no translation: the images themselves
    assert torch.allclose(images, _normalise(x[idx].float()), atol=1e-5)


@pytest.mark.parametrize("argv, fragment", [
    (["--translate", "17"], "--translate is a shift in pixels from 0 to 16, got 17"),
    (["--pad-mode", "reflect", "--translate", "16", "--image-size", "16"], "too large for (16, 16) images"),
    (["--pad-mode", "edge"], "invalid choice: 'edge'"),
])
def test_bad_translation_is_one_line_exit_2(argv, fragment, tmp_path, capsys):
    from resnet_lab.cli.main import main

    assert main(["train", "--model", "resnet8", "--data", "digits", "--steps", "1", "--device", "cpu", "--out",
                 str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1


def _flipped_by_image(loader, x) -> dict[int, bool]:
    return {int(i): not _matches_a_window(o, x[i], flips=False) for images, idx in loader for o, i in zip(images, idx)}


def test_alternate_flip_mirrors_every_image_in_every_other_epoch():
    x = _images(40)
    flips = {}
    for mode in ("alternate", "random"):
        loader = _loader(x, 8, flip=mode)
        epochs = []
        for epoch in range(4):
            loader.set_epoch(epoch)
            epochs.append(_flipped_by_image(loader, x))
        flips[mode] = epochs
    alternate = flips["alternate"]
    assert all(alternate[e][i] != alternate[e + 1][i] for e in range(3) for i in range(40))
    assert 10 <= sum(alternate[0].values()) <= 30  # the first epoch's flips are a random half
    # Random flips do repeat: the check above tells the two modes apart.
    assert any(flips["random"][e][i] == flips["random"][e + 1][i] for e in range(3) for i in range(40))
    # Resuming mid-epoch reproduces the same images, flips included.
    loader = _loader(x, 8, flip="alternate")
    loader.set_epoch(3)
    assert torch.equal(list(loader)[2][0], next(loader.iter_from(2))[0])


def test_augmentation_differs_between_batches_and_epochs():
    # 32 copies of one image: the outputs then differ only by their crops and flips.
    loader = _loader(_images(1).expand(32, -1, -1, -1), 8)
    first = [images for images, _ in loader]
    assert not torch.equal(first[0], first[1])
    loader.set_epoch(1)
    assert not torch.equal(next(iter(loader))[0], first[0])


def test_unaugmented_test_loader_gives_exact_images_in_order_and_keeps_last_batch():
    x = _images(10)
    loader = _loader(x, 4, train=False, augment=False)
    batches = _epoch(loader)
    assert [len(t) for _, t in batches] == [4, 4, 2] and len(loader) == 3 and loader.num_samples == 10
    assert torch.cat([t for _, t in batches]).tolist() == list(range(10))
    assert torch.allclose(torch.cat([b for b, _ in batches]), _normalise(x), atol=1e-6)
    train = _loader(x, 4)
    assert len(train) == 2 and train.num_samples == 8  # training drops the partial batch


def test_same_epoch_is_identical_and_iter_from_reproduces_the_tail():
    x = _images(50)
    loader = _loader(x, 8)
    loader.set_epoch(3)
    first, second = _epoch(loader), _epoch(loader)
    resumed = _epoch(loader, 4)
    fresh = _loader(x, 8)
    fresh.set_epoch(3)
    tail = _epoch(fresh, 4)  # a new process resuming at batch 4 of epoch 3
    assert len(first) == 6 and len(tail) == 2 and len(resumed) == 2
    for (a, ya), (b, yb) in zip(first, second):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    for (a, ya), (b, yb) in zip(first[4:], tail):
        assert torch.equal(a, b) and torch.equal(ya, yb)
    loader.set_epoch(4)
    other = _epoch(loader)
    assert not torch.equal(torch.cat([y for _, y in other]), torch.cat([y for _, y in first]))


def test_ranks_get_disjoint_shards_whose_union_is_the_single_process_batch():
    x = _images(37)
    for kw in (dict(), dict(train=False, augment=False)):  # train (drop last) and eval (keep last)
        single = _loader(x, 8, **kw)
        ranks = [_loader(x, 8, rank=r, world_size=2, **kw) for r in range(2)]
        for loader in (single, *ranks):
            loader.set_epoch(2)
        assert len(ranks[0]) == len(ranks[1]) == len(single)
        assert ranks[0].num_samples + ranks[1].num_samples == single.num_samples
        for (xs, ys), (x0, y0), (x1, y1) in zip(_epoch(single), _epoch(ranks[0]), _epoch(ranks[1])):
            assert not set(y0.tolist()) & set(y1.tolist())
            assert torch.equal(torch.cat([y0, y1]), ys)
            assert torch.equal(torch.cat([x0, x1]), xs)  # same crops/flips as one process
        # Resuming one rank mid-epoch gives that rank's tail.
        assert torch.equal(_epoch(ranks[1], 3)[0][0], _epoch(ranks[1])[3][0])
    with pytest.raises(UserError, match="global batch size 6 is not divisible by world size 4"):
        _loader(x, 6, rank=0, world_size=4)


def test_channels_last_and_dtype_options():
    x = _images(12)
    images, _ = next(iter(_loader(x, 4, channels_last=True)))
    assert images.is_contiguous(memory_format=torch.channels_last)
    reference, _ = next(iter(_loader(x, 4)))
    assert torch.equal(images, reference)  # same values, different memory layout
    half, _ = next(iter(_loader(x, 4, dtype=torch.bfloat16)))
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), reference, atol=0.05)


def test_digits_training_loader_crops_without_flips():
    ds = load_data("digits")
    assert ds.hflip is False
    loader = DeviceLoader(ds.x_train[:64], torch.arange(64), 32, mean=ds.mean, std=ds.std,
                          train=True, augment=True, hflip=ds.hflip)
    images, idx = next(iter(loader))
    for out, i in zip(images[:8], idx[:8]):
        padded = ((F.pad(ds.x_train[i].float(), (4, 4, 4, 4)) / 255 - ds.mean[0]) / ds.std[0])
        windows = padded.unfold(1, 32, 1).unfold(2, 32, 1)  # (1, 9, 9, 32, 32)
        assert (windows - out[:, None, None]).abs().amax(dim=(-1, -2)).min() < 1e-5


# ----------------------------------------------------------------------------- folders


def _png(path: Path, size=(40, 36), color=(200, 30, 90)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _folder_tree(root: Path) -> Path:
    for split, n in (("train", 3), ("val", 1)):
        for c, color in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
            for i in range(n):
                _png(root / split / c / f"{i}.png", color=color)
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "train" / "cat" / "notes.txt").write_text("not an image, ignored")
    return root


def test_folder_dataset_excludes_corrupt_files_and_loaders_iterate(tmp_path):
    ds = load_data(f"folder:{_folder_tree(tmp_path / 'imgs')}")
    assert isinstance(ds, FolderDataset)
    assert ds.classes == ["cat", "dog"] and ds.in_channels == 3 and ds.hflip
    assert len(ds.train_files) == 6 and len(ds.val_files) == 2
    assert [Path(p).name for p in ds.bad_files] == ["broken.png"]
    assert "1 unreadable" in ds.warnings[0] and "broken.png" in ds.warnings[0]
    train, val = make_folder_loaders(ds, batch_size=4, image_size=16, workers=0, seed=0)
    train.set_epoch(1)
    batches = list(train)
    assert len(batches) == 1 and batches[0][0].shape == (4, 3, 16, 16)
    (images, labels), = list(val)
    assert images.shape == (2, 3, 16, 16) and sorted(labels.tolist()) == [0, 1]
    # Red cat images normalise to a high red channel; blue dogs to a high blue channel.
    assert images[labels == 0][:, 0].mean() > 1 and images[labels == 1][:, 2].mean() > 1
    # Decoding in worker processes gives the same validation batch.
    _, val_workers = make_folder_loaders(ds, batch_size=4, image_size=16, workers=2, seed=0)
    (images_w, labels_w), = list(val_workers)
    assert torch.equal(images_w, images) and torch.equal(labels_w, labels)
    shards = [make_folder_loaders(ds, 4, 16, 0, seed=0, rank=r, world_size=2)[0] for r in range(2)]
    assert make_folder_loaders(ds, 4, 16, None, seed=0)[0].num_workers == default_workers()
    for s in shards:
        s.set_epoch(1)
    assert not set(shards[0].sampler) & set(shards[1].sampler)


@pytest.mark.parametrize("augment", [False, True])
def test_no_augment_trains_image_folders_without_random_crops_or_flips(tmp_path, augment):
    """--no-augment used to be ignored for image folders: their training images were still cropped
    at random and flipped. Without augmentation each training image is its evaluation view."""
    from resnet_lab.data.folder import folder_transforms
    from resnet_lab.training.config import resolve_config
    from resnet_lab.training.setup import make_loaders

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            for i in range(2):
                path = tmp_path / "imgs" / split / c / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
    ds = load_data(f"folder:{tmp_path / 'imgs'}")
    train, _ = make_loaders(ds, resolve_config(augment=augment, batch_size=4, workers=0), torch.device("cpu"), 16)
    eval_tf = folder_transforms(16, ds.mean, ds.std)[1]
    views = torch.stack([eval_tf(Image.open(p).convert("RGB")) for p, _ in ds.train_files])
    train.set_epoch(0)
    (images, _), = list(train)
    nearest = (images[:, None] - views[None]).abs().flatten(2).amax(-1).amin(-1)  # each image's closest view
    assert bool(nearest.max() < 1e-6) is not augment


def test_flip_none_keeps_the_crops_and_mirrors_nothing_for_npz_and_folder_data(tmp_path):
    """npz: and folder: data were always flipped in training (only --no-augment, which drops the crops too, turned
    it off): wrong for text, digits or maps stored that way. --flip none keeps the crops and mirrors nothing."""
    from resnet_lab.training.config import resolve_config
    from resnet_lab.training.setup import make_loaders

    torch.manual_seed(0)
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    mean, std = (0.5,), (0.25,)
    padded = (F.pad(x.float(), (4, 4, 4, 4)) / 255 - 0.5) / 0.25
    windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # (64, 1, 9, 9, 8, 8): every crop, none mirrored
    for flip, mirrored in (("none", False), ("random", True)):
        loader = DeviceLoader(x, torch.arange(64), 64, mean=mean, std=std, train=True, augment=True, hflip=True,
                              flip=flip)
        images, idx = next(iter(loader))
        unmirrored = [(windows[i] - out[:, None, None]).abs().amax(dim=(-1, -2)).min() < 1e-5
                      for out, i in zip(images, idx)]
        assert all(unmirrored) != mirrored  # random mirrors some of 64 images (all unmirrored: p = 2**-64)

    ds = load_data(f"folder:{_folder_tree(tmp_path / 'imgs')}")
    train, _ = make_loaders(ds, resolve_config(flip="none", workers=0), torch.device("cpu"), 16)
    assert not any(type(t).__name__ == "RandomHorizontalFlip" for t in train.dataset.transform.transforms)
    assert ds.hflip  # the data set itself is left as it was


def test_flip_test_time_augmentation_of_a_run_trained_without_mirrors_is_refused(tmp_path, capsys):
    from resnet_lab.cli.main import main

    np.savez(tmp_path / "d.npz", x_train=np.zeros((8, 8, 8, 3), np.uint8), y_train=np.arange(8) % 2,
             x_test=np.zeros((4, 8, 8, 3), np.uint8), y_test=np.arange(4) % 2)
    assert main(["train", "--data", f"npz:{tmp_path / 'd.npz'}", "--flip", "none", "--tta", "--steps", "1",
                 "--batch-size", "4", "--out", str(tmp_path / "run")]) == 2
    assert "--tta mirrors test images, but --flip none trains without mirrors" in capsys.readouterr().err


def test_alternate_flip_is_refused_where_it_cannot_apply(tmp_path):
    from resnet_lab.training.config import resolve_config
    from resnet_lab.training.setup import make_loaders

    ds = load_data(f"folder:{_folder_tree(tmp_path / 'imgs')}")
    with pytest.raises(UserError, match="--flip alternate needs in-memory data"):
        make_loaders(ds, resolve_config(flip="alternate"), torch.device("cpu"), 16)
    # Where nothing is mirrored, asking for a flip order is a mistake too.
    with pytest.raises(UserError, match="but --no-augment turns augmentation off; drop --flip"):
        make_loaders(ds, resolve_config(flip="alternate", augment=False), torch.device("cpu"), 16)
    with pytest.raises(UserError, match="digits is trained without flips; drop --flip"):
        make_loaders(load_data("digits"), resolve_config(flip="alternate"), torch.device("cpu"), 32)


def test_folder_corrupt_val_image_is_dropped_and_reported_never_replaced(tmp_path):
    """Item 5: a damaged file found when the data set is built is excluded and listed once, so
    no other image stands in for it and evaluation counts each image exactly once."""
    root = _folder_tree(tmp_path / "imgs")
    (root / "val" / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    ds = load_data(f"folder:{root}")
    assert sorted(Path(p).name for p in ds.bad_files) == ["broken.jpg", "broken.png"]
    assert len(ds.warnings) == 1 and "2 unreadable" in ds.warnings[0] and "broken.jpg" in ds.warnings[0]
    assert "2 unreadable files excluded" in ds.description()
    assert sorted(Path(p).parent.name for p, _ in ds.val_files) == ["cat", "dog"]
    _, val = make_folder_loaders(ds, batch_size=8, image_size=16, workers=0, seed=0)
    assert sorted(torch.cat([labels for _, labels in val]).tolist()) == [0, 1]


@pytest.mark.parametrize("split, workers", [("train", 0), ("val", 0), ("val", 2)])
def test_folder_image_that_fails_to_decode_later_raises_one_line_instead_of_substituting(tmp_path, split, workers):
    """Item 5: a file that breaks after the check (or that verify() misses) used to be replaced
    by the next file and its label; now it stops the run with one line naming it."""
    ds = load_data(f"folder:{_folder_tree(tmp_path / 'imgs')}")
    victim = Path(dict(train=ds.train_files, val=ds.val_files)[split][0][0])
    victim.write_bytes(b"\x89PNG\r\n\x1a\n truncated after the check")
    train, val = make_folder_loaders(ds, batch_size=2, image_size=16, workers=workers, seed=0)
    loader = train if split == "train" else val
    loader.set_epoch(0)
    with pytest.raises(UserError, match=rf"cannot decode image {victim} .*replace or delete the file") as err:
        list(loader)
    assert "\n" not in str(err.value)


def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped_to_white(tmp_path):
    """D16: PIL's convert clipped a 16-bit ramp to 255 almost everywhere, so predict saw white."""
    ramp = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    assert Image.open(tmp_path / "ramp.png").mode == "I;16"
    expected = torch.from_numpy((ramp / 257).round()).float() / 255
    gray = preprocess_images([tmp_path / "ramp.png"], image_size=64, in_channels=1, mean=(0.0,), std=(1.0,))
    assert torch.allclose(gray[0, 0], expected, atol=1 / 255)
    rgb = preprocess_images([tmp_path / "ramp.png"], image_size=64, in_channels=3, mean=(0.0,) * 3, std=(1.0,) * 3)
    assert torch.allclose(rgb[0], expected.expand(3, -1, -1), atol=1 / 255)
    # Folder data decodes through the same code.
    image, _ = ImageFileDataset([(str(tmp_path / "ramp.png"), 0)], np.asarray)[0]
    assert abs(image[..., 0].astype(float) / 255 - expected.numpy()).max() <= 1 / 255


def _on_transparent(mode: str, alpha: np.ndarray) -> Image.Image:
    """A black picture whose shape is only in its transparency (``alpha``: 0 transparent, 255 opaque); "P": a
    palette image of two black entries, the first marked transparent (alpha 0 or 255 only)."""
    black = Image.new("L", alpha.shape[::-1])
    if mode == "P":
        image = Image.fromarray((alpha > 0).astype(np.uint8)).convert("P")  # indices 0 and 1
        image.putpalette([0, 0, 0] * 2)
        image.info["transparency"] = 0
        return image
    return Image.merge(mode, [black] * (len(mode) - 1) + [Image.fromarray(alpha)])


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_an_image_with_transparency_is_composited_onto_white_not_read_as_black(tmp_path, mode):
    """Converting to RGB or L dropped the alpha: a black shape on a transparent background (every colour 0) was
    read, and predicted, as an all-black image."""
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255  # an opaque black square ...
    if mode != "P":
        alpha[4:12, 12:] = 128  # ... and a half-transparent band: grey on white
    _on_transparent(mode, alpha).save(tmp_path / "shape.png")
    assert Image.open(tmp_path / "shape.png").has_transparency_data
    expected = torch.from_numpy(255 - alpha.astype(np.float32)) / 255  # black over white, by its opacity
    for channels in (1, 3):
        batch = preprocess_images([tmp_path / "shape.png"], image_size=16, in_channels=channels,
                                  mean=(0.0,) * channels, std=(1.0,) * channels)
        assert batch.max() == 1.0  # not an all-black image
        assert torch.allclose(batch[0], expected.expand(channels, -1, -1), atol=1 / 255)
    # Folder data decodes through the same code.
    image, _ = ImageFileDataset([(str(tmp_path / "shape.png"), 0)], np.asarray)[0]
    assert abs(image[..., 0].astype(np.float32) / 255 - expected.numpy()).max() <= 1 / 255


def test_floating_point_images_are_refused_not_clipped_to_black(tmp_path):
    """PIL's convert clipped a float image's [0, 1] values to 0 or 1 of 255: predict and folder data saw black."""
    float_image = tmp_path / "ramp.tiff"
    Image.fromarray(np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))).save(float_image)
    assert Image.open(float_image).mode == "F"
    with pytest.raises(UserError, match=r"ramp.tiff holds floating-point pixels .*save them as 8- or 16-bit"):
        preprocess_images([float_image], image_size=32, in_channels=1, mean=(0.0,), std=(1.0,))
    root = _folder_tree(tmp_path / "data")
    float_image.rename(root / "train" / "cat" / "ramp.tiff")
    with pytest.raises(UserError, match=r"cat/ramp.tiff holds floating-point pixels"):
        load_data(f"folder:{root}")


def test_folder_layout_errors_are_user_errors(tmp_path):
    root = _folder_tree(tmp_path / "a")
    for p in (root / "val").rglob("*.png"):
        p.unlink()
    with pytest.raises(UserError, match="no readable images"):
        load_data(f"folder:{root}")
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(UserError, match="no 'val' folder"):
        load_data(f"folder:{tmp_path / 'b'}")


# ----------------------------------------------------------------------------- preprocess


def test_preprocess_images_resizes_converts_and_normalises(tmp_path):
    _png(tmp_path / "wide.png", size=(50, 70), color=(255, 0, 51))
    batch = preprocess_images([tmp_path / "wide.png"], image_size=32, in_channels=3, mean=MEAN3, std=STD3)
    assert batch.shape == (1, 3, 32, 32) and batch.dtype == torch.float32
    expected = [(1.0 - 0.4) / 0.2, (0.0 - 0.5) / 0.25, (0.2 - 0.6) / 0.3]
    assert batch.mean(dim=(0, 2, 3)).tolist() == pytest.approx(expected, abs=1e-5)
    gray = preprocess_images([str(tmp_path / "wide.png")] * 2, image_size=8, in_channels=1, mean=(0.5,), std=(0.5,))
    assert gray.shape == (2, 1, 8, 8)
    with pytest.raises(UserError, match="missing.png"):
        preprocess_images([tmp_path / "missing.png"], image_size=32, in_channels=3, mean=MEAN3, std=STD3)
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot read image .*junk.png"):
        preprocess_images([tmp_path / "junk.png"], image_size=32, in_channels=3, mean=MEAN3, std=STD3)
    with pytest.raises(UserError, match="is a folder; give image files"):  # was "image file not found"
        preprocess_images([tmp_path], image_size=32, in_channels=3, mean=MEAN3, std=STD3)
    with pytest.raises(UserError, match=r"an image path is empty \(an unset shell variable\?\)"):
        # predict "$IMAGE" with IMAGE unset was refused as ". is a folder; give image files (e.g. ./*.png)"
        preprocess_images([tmp_path / "wide.png", ""], image_size=32, in_channels=3, mean=MEAN3, std=STD3)


def test_default_workers_stay_within_the_cores_of_each_process(monkeypatch):
    """No more DataLoader workers than cores by default (torch warns, decoding slows), shared
    among the processes torchrun starts on a machine, and never more than 4."""
    import os

    from resnet_lab.data import folder

    for cpus, local_ranks, expected in ((2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 1, 4), (16, 8, 2)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cpus: set(range(n)), raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_ranks))
        assert folder.default_workers() == expected, (cpus, local_ranks)


def test_a_compressed_npz_is_read_from_an_uncompressed_copy_after_the_first_load(tmp_path, monkeypatch):
    """savez_compressed files are inflated once, not at every run; a changed file is read afresh."""
    from resnet_lab.data.cache import uncompressed_copy
    from resnet_lab.data.npz import load_npz

    monkeypatch.setenv("RESNET_LAB_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), "y_train": np.arange(20) % 4,
              "x_test": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), "y_test": np.arange(6) % 4}
    source = tmp_path / "data.npz"
    np.savez_compressed(source, **arrays)
    first = load_npz(source)
    copy = uncompressed_copy(source)
    assert copy.is_file()
    with zipfile.ZipFile(copy) as z:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())
    np.savez(copy, _members=np.array(["x_train", "y_train", "x_test", "y_test"]),
             **{**arrays, "y_train": (np.arange(20) + 1) % 4})  # mark the copy: is it what is read?
    assert (load_npz(source).y_train.numpy() == (np.arange(20) + 1) % 4).all()
    assert torch.equal(first.x_train, load_npz(source).x_train)
    # A changed source has another key: the marked copy is never read for it.
    np.savez_compressed(source, **{**arrays, "y_train": np.arange(20) % 4})
    os.utime(source, ns=(1, 1))
    assert (load_npz(source).y_train.numpy() == np.arange(20) % 4).all()
    # A damaged copy is ignored and rewritten.
    uncompressed_copy(source).write_bytes(b"not a zip")
    assert (load_npz(source).y_train.numpy() == np.arange(20) % 4).all()
    assert zipfile.is_zipfile(uncompressed_copy(source))


def test_a_changed_npz_replaces_its_uncompressed_copy_instead_of_adding_one(tmp_path, monkeypatch):
    """Each version of a compressed npz left a full uncompressed copy in the cache, never removed: a data set
    saved again and again (as while preparing it) filled the disk with copies no load would read again."""
    from resnet_lab.data.npz import load_npz

    monkeypatch.setenv("RESNET_LAB_DATA", str(tmp_path / "cache"))
    arrays = _valid_arrays()
    for version in range(3):
        for name in ("a.npz", "b.npz"):
            np.savez_compressed(tmp_path / name, **arrays)
            os.utime(tmp_path / name, ns=(version, version))
            load_npz(tmp_path / name)
    copies = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(copies) == 2  # the latest version of each source, a copy each
    assert {zipfile.is_zipfile(c) for c in copies} == {True}


def test_a_compressed_npz_loads_without_a_home_folder_for_its_uncompressed_copy(tmp_path, monkeypatch):
    """With HOME unset for a user not in passwd (a container's arbitrary uid), the best-effort copy's path
    raised RuntimeError from Path.home(), and loading the data ended in a traceback."""
    from resnet_lab.data.npz import load_npz

    def no_home(cls):
        raise RuntimeError("Could not determine home directory.")

    for name in ("RESNET_LAB_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", classmethod(no_home))
    np.savez_compressed(tmp_path / "data.npz", **_valid_arrays())
    assert len(load_npz(tmp_path / "data.npz").x_train) == 12


def test_evaluating_on_folders_whose_classes_are_named_otherwise_is_refused(tmp_path, capsys):
    """Same count, other names: the sorted labels move, and the accuracy once came out 0.0 (or 1.0)
    with no warning."""
    import shutil

    from resnet_lab.cli.main import main

    tree = _folder_tree(tmp_path / "imgs")
    assert main(["train", "--model", "resnet8", "--data", f"folder:{tree}", "--steps", "2", "--batch-size", "4",
                 "--image-size", "16", "--quiet", "--no-tensorboard", "--report", "none",
                 "--out", str(tmp_path / "run")]) == 0
    renamed = shutil.copytree(tree, tmp_path / "renamed")
    for split in ("train", "val"):
        (renamed / split / "cat").rename(renamed / split / "zebra")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", f"folder:{renamed}"]) == 2
    err = capsys.readouterr().err
    assert "names its classes differently" in err and "0: cat vs dog; 1: dog vs zebra" in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", f"folder:{tree}"]) == 0
    assert capsys.readouterr().out.startswith("val accuracy ")  # the folder's split, named as train named it


def test_resize_dataset_makes_non_square_images_square():
    """npz images may be H x W with H != W: --image-size H once left them H x W (only the height was compared)."""
    from resnet_lab.data import InMemoryDataset, resize_dataset

    x = torch.zeros(4, 1, 16, 24, dtype=torch.uint8)
    ds = InMemoryDataset("wide", x, torch.tensor([0, 1, 0, 1]), x.clone(), torch.tensor([0, 1, 0, 1]), ["a", "b"])
    resized = resize_dataset(ds, 16)
    assert resized.x_train.shape[2:] == (16, 16) and resized.x_test.shape[2:] == (16, 16)
    square = resize_dataset(resized, 16)
    assert square is resized  # already that size: returned as is


def test_a_loaded_data_set_given_as_the_data_name_is_refused_in_one_line_pointing_to_dataset():
    from resnet_lab.diagnostics import check_model

    ds = load_data("digits")
    for call in (lambda: load_data(ds), lambda: check_model("resnet8", data=ds, steps=1)):
        with pytest.raises(UserError, match="data is named by a string .* got InMemoryDataset; .* dataset="):
            call()


def test_folder_leaves_out_images_in_hidden_folders_inside_a_class(tmp_path):
    """Jupyter's .ipynb_checkpoints or a viewer's .thumbnails hold copies of the images: counted, they
    would train on an image twice and score a validation image twice."""
    root = _folder_tree(tmp_path / "imgs")
    for split in ("train", "val"):
        _png(root / split / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png")
        _png(root / split / "dog" / ".thumbnails" / "deep" / "0.png")
    _png(root / "train" / "cat" / "nested" / "kept.png")  # a plain subfolder is still read
    ds = load_data(f"folder:{root}")
    assert len(ds.val_files) == 2 and len(ds.train_files) == 7
    assert not any("/." in p for p, _ in ds.train_files + ds.val_files)


def test_folder_links_to_images_that_moved_are_reported_as_unreadable_not_dropped_silently(tmp_path):
    """A data set built of links (to spare copying) whose targets moved lost those images without a word:
    fewer images, no note, as if the folder held no more."""
    root = _folder_tree(tmp_path / "imgs")
    (root / "train" / "dog" / "moved.png").symlink_to(tmp_path / "elsewhere" / "gone.png")
    (root / "val" / "cat" / "loop.png").symlink_to(root / "val" / "cat" / "loop.png")
    _png(tmp_path / "kept.png")
    (root / "train" / "dog" / "linked.png").symlink_to(tmp_path / "kept.png")
    ds = load_data(f"folder:{root}")
    assert sorted(Path(p).name for p in ds.bad_files) == ["broken.png", "loop.png", "moved.png"]
    assert "3 unreadable image files excluded" in ds.warnings[0] and "moved.png" in ds.warnings[0]
    assert "linked.png" in {Path(p).name for p, _ in ds.train_files}


def test_folder_follows_a_linked_subfolder_of_a_class_but_not_a_link_up_the_tree(tmp_path):
    """Images in a linked subfolder (class/extra -> another disk) were skipped without a word; following
    links must still not loop, nor read the split's other classes through a link to a parent."""
    root = _folder_tree(tmp_path / "imgs")
    for i in range(2):
        _png(tmp_path / "disk2" / "more" / f"m{i}.png")
    (root / "train" / "cat" / "extra").symlink_to(tmp_path / "disk2" / "more")
    (root / "train" / "cat" / "twice").symlink_to(tmp_path / "disk2" / "more")  # one real folder: read once
    (root / "train" / "dog" / "up").symlink_to(root / "train")
    (root / "train" / "dog" / "self").symlink_to(root / "train" / "dog")
    ds = load_data(f"folder:{root}")
    cats = sorted(Path(p).name for p, c in ds.train_files if c == 0)
    assert cats == ["0.png", "1.png", "2.png", "m0.png", "m1.png"]
    assert sorted(Path(p).name for p, c in ds.train_files if c == 1) == ["0.png", "1.png", "2.png"]


def test_folder_images_cut_short_are_reported_and_skipped_not_left_to_end_the_run(tmp_path):
    """verify() reads only the header of a JPEG, GIF, BMP or TIFF: a file cut short (an interrupted copy) was
    taken, then failed to decode mid-epoch and ended the run; deleting it, as the error said, made the
    run's data differ, so --resume refused it. Such files are now excluded and reported when loading."""
    root = _folder_tree(tmp_path / "imgs")
    picture = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for fmt in ("JPEG", "GIF", "BMP", "TIFF"):
        whole = io.BytesIO()
        Image.fromarray(picture).save(whole, format=fmt)
        (root / "train" / "dog" / f"cut.{fmt.lower()}").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
        (root / "train" / "dog" / f"whole.{fmt.lower()}").write_bytes(whole.getvalue())
    # Bytes after a JPEG's end marker (some cameras append a trailer) do not make it unreadable.
    (root / "val" / "dog" / "trailer.jpeg").write_bytes((root / "train" / "dog" / "whole.jpeg").read_bytes() + b"x" * 9)
    ds = load_data(f"folder:{root}")
    assert sorted(Path(p).name for p in ds.bad_files) == ["broken.png", "cut.bmp", "cut.gif", "cut.jpeg", "cut.tiff"]
    assert "5 unreadable image files excluded" in ds.warnings[0]
    assert {Path(p).name for p, _ in ds.train_files} >= {"whole.jpeg", "whole.gif", "whole.bmp", "whole.tiff"}
    assert "trailer.jpeg" in {Path(p).name for p, _ in ds.val_files}
    train, val = make_folder_loaders(ds, batch_size=2, image_size=16, workers=0, seed=0)
    assert len(list(train)) == 5 and sum(len(y) for _, y in val) == 3
