"""Property tests: malformed data files give a usable data set or a one-line UserError, never
another exception (a traceback for the user).

Generated per run: 200 npz array sets (wrong dtypes, shapes and ranks, NaN/Inf pixels,
negative/huge/uint64 labels, mismatched lengths, empty arrays, missing and extra keys,
object arrays), 60 damaged npz files (truncated or with flipped bytes) and 30 image folders
with damaged files: 290 cases, about 10-20 s on 2 cores.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from resnet_lab.data import InMemoryDataset, load_data
from resnet_lab.data.folder import ImageFileDataset
from resnet_lab.errors import UserError

SETTINGS = dict(deadline=None, derandomize=True,  # the same cases every run: CI cannot flake
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
KEYS = ("x_train", "y_train", "x_test", "y_test")

PIXEL_DTYPES = ["uint16", "int64", "float32", "float64", "complex64", "bool", "<U2", "S2", "int8"]
LABEL_DTYPES = ["float64", "float32", "bool", "complex64", "<U2", "uint8"]
HOSTILE_LABELS = [-1, 99, 10**5, 10**7, 2**40, 2**63 - 1, 2**63 + 5, 2**64 - 1]


# Each mutation changes the array under `key` (one of KEYS) in place.
def _retype(draw, arrays, key):  # wrong dtype, same shape; floats include NaN and Inf
    dtypes = PIXEL_DTYPES if key.startswith("x") else LABEL_DTYPES
    arrays[key] = draw(hnp.arrays(np.dtype(draw(st.sampled_from(dtypes))), np.shape(arrays[key])))


def _reshape(draw, arrays, key):  # any rank 0-5, sides 0-13: too small, empty, wrong channels or length
    arrays[key] = draw(hnp.arrays(np.uint8 if key.startswith("x") else np.int64,
                                  hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=13),
                                  elements=st.integers(0, 9)))


def _hostile_labels(draw, arrays, key):  # negative, huge, uint64 above 2**63, in a wide integer dtype
    y = arrays[key]
    if key.startswith("x") or y.dtype.kind not in "iu" or y.ndim != 1 or not len(y):
        return
    y = y.astype(object)
    y[draw(st.integers(0, len(y) - 1))] = draw(st.sampled_from(HOSTILE_LABELS))
    dtype = np.uint64 if min(y) >= 0 and draw(st.booleans()) else np.int64
    arrays[key] = np.array([v if np.iinfo(dtype).min <= v <= np.iinfo(dtype).max else 0 for v in y], dtype=dtype)


def _drop(draw, arrays, key):
    del arrays[key]


def _objects(draw, arrays, key):  # saved with pickle by np.savez; must be refused, not unpickled
    arrays[key] = np.array([{}, "x"], dtype=object)


def _classes(draw, arrays, key):
    arrays["classes"] = np.array([f"c{i}" for i in range(draw(st.integers(0, 12)))])


def _extra(draw, arrays, key):
    arrays["extra"] = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0)))


MUTATIONS = [_retype, _reshape, _hostile_labels, _hostile_labels, _drop, _objects, _classes, _extra]


@st.composite
def npz_arrays(draw) -> dict[str, np.ndarray]:
    """A valid data set (gray or RGB, 8-10 px, labels 0..9) with 1-3 mutations applied."""
    n_train, n_test = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    size = (draw(st.integers(8, 10)), draw(st.integers(8, 10)), *draw(st.sampled_from([(), (1,), (3,)])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *size), dtype=np.uint8),
        "y_train": np.array(draw(st.lists(st.integers(0, 9), min_size=n_train, max_size=n_train))),
        "x_test": rng.integers(0, 256, (n_test, *size), dtype=np.uint8),
        "y_test": np.array(draw(st.lists(st.integers(0, 9), min_size=n_test, max_size=n_test))),
    }
    for mutate in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        present = [k for k in KEYS if k in arrays]
        if present:
            mutate(draw, arrays, draw(st.sampled_from(present)))
    return arrays


def _check(path: Path) -> None:
    """Load `path`: a sane data set or a one-line UserError; anything else fails the test."""
    try:
        ds = load_data(f"npz:{path}")
    except UserError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert isinstance(ds, InMemoryDataset)
    _, c, h, w = ds.x_train.shape
    assert c in (1, 3) and min(h, w) >= 8 and len(ds.x_train) > 0 and len(ds.x_test) > 0
    assert 0 < ds.num_classes <= 100_000 and len(ds.classes) == ds.num_classes
    assert int(ds.y_train.max()) == ds.num_classes - 1 and int(ds.y_train.min()) >= 0
    assert 0 <= int(ds.y_test.min()) and int(ds.y_test.max()) < ds.num_classes
    assert all(np.isfinite(ds.mean)) and all(np.isfinite(ds.std))


@settings(max_examples=200, **SETTINGS)
@given(arrays=npz_arrays())
def test_any_npz_arrays_load_sanely_or_give_one_line(tmp_path, arrays):
    path = tmp_path / "fuzz.npz"
    np.savez(path, **arrays)
    _check(path)


def _valid_npz_bytes() -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x_train=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8), y_train=np.arange(6) % 3,
                        x_test=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8), y_test=np.arange(2))
    return buffer.getvalue()


VALID_NPZ = _valid_npz_bytes()


@settings(max_examples=60, **SETTINGS)
@given(cut=st.integers(0, len(VALID_NPZ)), flips=st.lists(st.tuples(st.integers(0, len(VALID_NPZ) - 1),
                                                                     st.integers(1, 255)), max_size=4))
def test_damaged_npz_files_load_sanely_or_give_one_line(tmp_path, cut, flips):
    data = bytearray(VALID_NPZ)
    for at, xor in flips:
        data[at] ^= xor
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(data[:cut] if cut < len(VALID_NPZ) else data))
    _check(path)


def _png_bytes(mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (10, 9), 7).save(buffer, format="PNG")
    return buffer.getvalue()


GOOD_IMAGES = [_png_bytes("RGB"), _png_bytes("L"), _png_bytes("I;16")]
damaged_image = st.builds(lambda good, cut: good[:cut], st.sampled_from(GOOD_IMAGES),
                          st.integers(0, 200)) | st.binary(max_size=64)


@settings(max_examples=30, **SETTINGS)
@given(files=st.lists(st.tuples(st.sampled_from(["train", "val"]), st.sampled_from(["a", "b"]),
                                st.one_of(st.sampled_from(GOOD_IMAGES), damaged_image)), min_size=1, max_size=8))
def test_image_folders_with_damaged_files_load_sanely_or_give_one_line(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("folder")
    for i, (split, cls, data) in enumerate(files):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        (root / split / cls / f"{i}.png").write_bytes(data)
    try:
        ds = load_data(f"folder:{root}")
    except UserError as e:
        assert "\n" not in str(e) and str(e)
        return
    kept = ds.train_files + ds.val_files
    assert len(kept) + len(ds.bad_files) == len(files) and not {p for p, _ in kept} & set(ds.bad_files)
    for item in range(len(kept)):  # each kept file decodes, or says which one cannot
        try:
            image, label = ImageFileDataset(kept, np.asarray)[item]
            assert image.shape == (9, 10, 3) and label == kept[item][1]
        except UserError as e:
            assert "\n" not in str(e) and kept[item][0] in str(e)
