"""No file we read may execute code: planted pickles in the CIFAR cache, weights files,
checkpoints and .npz archives whose unpickling would run a command are refused with a
one-line UserError, and the command never runs (its marker file is never created)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_lab.data import load_data
from resnet_lab.data.cifar import VARIANTS
from resnet_lab.errors import UserError
from resnet_lab.models import create_model
from resnet_lab.training.checkpoint import load_checkpoint


class ShellPayload:
    """Unpickles to os.system(f"touch {marker}"): a plain pickle.load runs the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class ExecPayload(ShellPayload):
    """Unpickles to exec(...): the same attack without a shell."""

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def _batch(n: int, label_key: bytes) -> dict:
    return {b"data": np.zeros((n, 3072), np.uint8), label_key: [0] * n}


def _plant_cifar(root: Path, variant: str, payload) -> None:
    """A complete extracted copy in the official layout, with `payload` as the first train file."""
    v = VARIANTS[variant]
    folder = root / v.folder
    folder.mkdir(parents=True)
    for name in v.required_files:
        content = {b"label_names": [b"a"] * 10, b"fine_label_names": [b"a"] * 100} if name == v.meta_file \
            else _batch(2, v.label_key.encode())
        (folder / name).write_bytes(pickle.dumps(content))
    (folder / v.train_files[0]).write_bytes(pickle.dumps(payload))


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
@pytest.mark.parametrize("payload_type", [ShellPayload, ExecPayload])
@pytest.mark.parametrize("where", ["data-dir", "default-cache"])
def test_planted_cifar_batch_pickle_is_refused_and_never_runs(tmp_path, monkeypatch, variant, payload_type, where):
    """D7: the archive's MD5 was checked but the extracted batches were pickle.load-ed as they were."""
    marker = tmp_path / "pwned"
    root = tmp_path / "cache"
    _plant_cifar(root, variant, payload_type(marker))
    monkeypatch.setenv("RESNET_LAB_DATA", str(root))  # what ~/.cache/resnet-lab resolves to
    with pytest.raises(UserError, match=r"refusing to read .*(data_batch_1|train) .*not an official CIFAR file") as err:
        load_data(variant, data_dir=root if where == "data-dir" else None, download=False)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_payload_hidden_inside_a_real_looking_batch_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _plant_cifar(tmp_path, "cifar10", {b"data": np.zeros((2, 3072), np.uint8), b"labels": ShellPayload(marker)})
    with pytest.raises(UserError, match=r"posix\.system, which no CIFAR file needs"):
        load_data("cifar10", data_dir=tmp_path, download=False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol, numpy_1_names",
                         [(0, False), (2, False), (4, False), (5, False), (0, True), (2, True)])
def test_restricted_unpickler_still_reads_batches_of_every_protocol(tmp_path, protocol, numpy_1_names):
    """The allow-list must keep what real batches need: numpy arrays under NumPy 1 and 2 names
    (the official files are protocol 2, whose text GLOBAL opcodes can be renamed in place)."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in VARIANTS["cifar10"].required_files:
        content = {b"label_names": [b"c"] * 10} if name == "batches.meta" else {b"data": data, b"labels": [3, 7]}
        raw = pickle.dumps(content, protocol=protocol)
        if numpy_1_names:  # how the official (NumPy 1) pickles name the array constructor
            raw = raw.replace(b"numpy._core.", b"numpy.core.")
        (folder / name).write_bytes(raw)
    ds = load_data("cifar10", data_dir=tmp_path, download=False)
    assert torch.equal(ds.x_test.reshape(2, -1), torch.from_numpy(data)) and ds.y_test.tolist() == [3, 7]


def test_malicious_weights_file_is_refused_and_never_runs(tmp_path):
    """create_model(weights=PATH) reads with torch.load(weights_only=True)."""
    marker = tmp_path / "pwned"
    torch.save({"conv1.weight": ShellPayload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(UserError, match=r"cannot read weights from .*evil.pth: "
                                        r".*never loaded because they could run code") as err:
        create_model("resnet18", weights=tmp_path / "evil.pth")
    message = str(err.value)
    assert "\n" not in message and "weights_only" not in message  # never suggest the unsafe load
    assert not marker.exists()


def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"model": ShellPayload(marker), "config": {}}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="evil.pt") as err:
        load_checkpoint(tmp_path / "evil.pt")
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_npz_with_a_pickled_object_array_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "evil.npz", x_train=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8),
             y_train=np.array([ShellPayload(marker)] * 4, dtype=object),
             x_test=rng.integers(0, 256, (2, 8, 8), dtype=np.uint8), y_test=np.zeros(2, np.int64))
    with pytest.raises(UserError, match="'y_train' is not a plain numeric array") as err:
        load_data(f"npz:{tmp_path / 'evil.npz'}")
    assert "allow_pickle" not in str(err.value)
    assert not marker.exists()


def test_a_sweep_spec_cannot_make_a_worker_import_or_call_code_of_its_choosing(tmp_path, capsys):
    """A run's sweep_run.json names its task; only registered names run, never a module path."""
    from resnet_lab.experiments.survey.concurrent import TASK, measure_cell_run
    from resnet_lab.training.sweep.run_state import RESULT_FILE
    from resnet_lab.training.sweep.task import resolve, run_task

    marker = tmp_path / "ran"
    spec = {"task": "os:system", "config": {"0": f"touch {marker}"}}
    threads = torch.get_num_threads()
    assert run_task(tmp_path, spec, "cpu", threads + 1) == 2
    assert torch.get_num_threads() == threads  # refused before the worker's settings are touched
    assert "unknown sweep task 'os:system'" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / RESULT_FILE).exists()
    assert resolve(TASK) is measure_cell_run  # the survey's cells are the registered task
