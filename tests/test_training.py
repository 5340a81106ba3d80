"""Training: recipes, schedules, learning, exact resume after a real kill, atomic checkpoints, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_lab.cli.main import main
from resnet_lab.errors import UserError
from resnet_lab.training import load_checkpoint, lr_factor, resolve_config, train
from resnet_lab.files import atomic_write_bytes

CLI = [sys.executable, "-m", "resnet_lab"]
# A small deterministic run: resnet8 on digits, 2 epochs of 22 steps.
SMALL = ["train", "--model", "resnet8", "--epochs", "2", "--batch-size", "64", "--deterministic",
         "--seed", "3", "--quiet", "--no-tensorboard"]


def run_cli(*args, check=True, **kw):
    proc = subprocess.run(CLI + list(args), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "last.pt")["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


# ----------------------------------------------------------------------------- config and schedules

def test_paper_recipe_is_he_et_al_section_4_2():
    c = resolve_config("paper", model="resnet110")
    assert (c.steps, c.batch_size, c.lr, c.weight_decay, c.momentum) == (64_000, 128, 0.1, 1e-4, 0.9)
    assert c.schedule == "step" and c.warmup_lr == 0.01  # the 0.01 warm-up for 110+ layers
    assert resolve_config("paper", model="resnet56").warmup_lr == 0.0
    # given explicitly, it is taken: --warmup-lr 0 once still trained with the 0.01 warm-up
    assert resolve_config("paper", model="resnet110", warmup_lr=0.0).warmup_lr == 0.0
    assert resolve_config("paper", model="resnet110", warmup_lr=0.02).warmup_lr == 0.02
    # /10 at 32k and /100 at 48k iterations
    assert lr_factor("step", 31_999, 64_000) == 1.0
    assert lr_factor("step", 32_000, 64_000) == pytest.approx(0.1)
    assert lr_factor("step", 48_000, 64_000) == pytest.approx(0.01)


def test_explicit_flags_override_a_recipe_and_lr_scales_with_batch():
    c = resolve_config("paper", epochs=3, batch_size=256, weight_decay=5e-4)
    assert c.epochs == 3 and c.steps is None and c.weight_decay == 5e-4
    assert c.effective_lr == pytest.approx(0.2)
    assert resolve_config("paper", batch_size=256, lr_scaling=False).effective_lr == pytest.approx(0.1)


def test_schedules_shape():
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 50, 100) == pytest.approx(0.5)
    assert lr_factor("linear", 10, 100, warmup=0.2) == pytest.approx(11 / 20)  # still warming up
    assert lr_factor("linear", 20, 100, warmup=0.2) == 1.0 and lr_factor("linear", 100, 100, warmup=0.2) == 0.0
    assert lr_factor("constant", 99, 100) == 1.0


@pytest.mark.parametrize("overrides,fragment", [
    ({"epochs": -1}, "--epochs"), ({"batch_size": 0}, "--batch-size"), ({"lr": 0.0}, "--lr"),
    ({"schedule": "weird"}, "schedule"), ({"warmup": 1.5}, "--warmup"), ({"clip_norm": -1.0}, "--clip-norm"),
    ({"dist_timeout": 1e14}, "--dist-timeout must be at most 1e9 seconds"),  # torchrun: OverflowError from timedelta
])
def test_impossible_values_are_refused(overrides, fragment):
    with pytest.raises(UserError, match=fragment):
        resolve_config("default", **overrides)


def test_a_notebooks_path_numpy_numbers_and_torch_device_become_the_plain_values_config_json_holds(tmp_path):
    import numpy as np

    config = resolve_config("default", model="resnet8", data="digits", image_size=np.int64(16), steps=np.int64(2),
                            batch_size=np.int32(32), lr=np.float32(0.05), seed=np.int64(1), milestones=[0.5],
                            schedule="step", device=torch.device("cpu"), out=tmp_path / "run", progress=False,
                            tensorboard=False, report="none", augment=np.bool_(True),
                            model_options={"zero_init_residual": np.bool_(True), "checkpointing": np.int64(2)})
    assert (config.out, config.device, config.milestones) == (str(tmp_path / "run"), "cpu", (0.5,))
    assert type(config.steps) is int and type(config.lr) is float and config.augment is True
    train(config, log=lambda _: None)  # numpy 2's bool was refused ('got np.True_ (bool)'), in model_options a
    saved = json.loads((tmp_path / "run" / "config.json").read_text())  # TypeError writing config.json
    assert saved["steps"] == 2 and saved["model_options"] == {"zero_init_residual": True, "checkpointing": 2}


@pytest.mark.parametrize("overrides,fragment", [
    ({"epochs": "3"}, "epochs must be an integer, got '3' (str)"), ({"steps": 2.5}, "steps must be an integer"),
    ({"augment": "no"}, "augment must be True or False"),
    ({"model_options": "norm=none"}, "model_options must be a dict"),
])
def test_a_value_of_the_wrong_kind_is_refused_in_one_line(overrides, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        resolve_config("default", **overrides)


# ----------------------------------------------------------------------------- learning

def test_resnet20_on_digits_reaches_97_percent_in_15_epochs(tmp_path):
    """The README's claim: `resnet-lab train --model resnet20 --data digits --epochs 15`."""
    proc = run_cli("train", "--model", "resnet20", "--data", "digits", "--epochs", "15", "--quiet",
                   "--out", str(tmp_path / "run"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 15 and rows[-1]["test_acc"] >= 0.97, proc.stdout
    assert {"epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s",
            "time_s"} <= set(rows[-1])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "resnet20" and config["hardware"]["torch"] == torch.__version__
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*")), "no TensorBoard event file"
    # where the time went: printed and saved, each part measured, training the largest
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert list(timings) == ["startup_s", "setup_s", "train_s", "eval_s", "bookkeeping_s", "report_s"]
    assert all(v > 0 for v in timings.values()) and max(timings, key=timings.get) == "train_s"
    assert f"time: {sum(timings.values()):.1f} s: start-up (imports)" in proc.stdout


def test_the_readme_python_example_is_the_committed_script_and_prints_what_the_readme_shows(tmp_path):
    """`examples/from_python.py` (train() and an experiment from Python) is in the README verbatim, with
    the output recorded in its results file, and it runs here: a run, the experiment's table, its report."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    source = (root / "examples" / "from_python.py").read_text()
    recorded = json.loads((root / "benchmarks" / "results" / "output-from-python-cpu.json").read_text())
    assert f"```python\n{source}```" in readme
    assert f"$ python examples/from_python.py\n{recorded['stdout']}```" in readme
    proc = subprocess.run([sys.executable, str(root / "examples" / "from_python.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root / "src")})
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("resnet8: test accuracy ") and lines[0].endswith("after 33 steps in runs/py-resnet8")
    assert [line.split()[0] for line in lines[3:7]] == ["plain8", "resnet8", "plain14", "resnet14"]
    assert "findings:" in lines and lines[-1] == "report: runs/py-degradation/report.html"
    assert (tmp_path / "runs" / "py-resnet8" / "result.json").exists()
    assert (tmp_path / "runs" / "py-degradation" / "report.html").exists()


def test_small_cifar10_subset_learns_well_above_chance(shared_data_dir):
    data = f"npz:{shared_data_dir / 'cifar10-small.npz'}"
    config = resolve_config("default", model="resnet8", data=data, epochs=2, progress=False, tensorboard=False)
    result = train(config, log=lambda _: None)
    assert result.history[-1]["test_acc"] > 0.25  # chance is 0.10


# ----------------------------------------------------------------------------- resume

@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """The uninterrupted run every interrupted run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("ref") / "run"
    run_cli(*SMALL, "--out", str(out))
    return out


def _start_and_wait(out: Path, min_step: int) -> subprocess.Popen:
    proc = subprocess.Popen(CLI + SMALL + ["--checkpoint-every", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300  # generous: a loaded 2-core machine
    while time.time() < deadline:
        try:
            if (out / "last.pt").exists() and load_checkpoint(out / "last.pt")["step"] >= min_step:
                return proc
        except UserError:  # caught between two writes of the file? it is atomic, so this must not happen
            raise
        time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


def test_sigkill_mid_epoch_then_resume_gives_bit_identical_weights(tmp_path, reference_run):
    out = tmp_path / "run"
    proc = _start_and_wait(out, min_step=25)  # inside epoch 2 (22 steps per epoch)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(out / "last.pt")  # the kill left a loadable checkpoint
    assert 25 <= saved["step"] < 44
    run_cli("train", "--resume", str(out), "--quiet")
    assert_same_weights(weights(out), weights(reference_run))
    assert load_checkpoint(out / "last.pt")["step"] == 44
    assert_same_records(out, reference_run)


# Measured, so they differ between any two runs; everything else in a record must not.
TIMING_KEYS = {"images_per_s", "time_s", "elapsed_s", "run_time_s"}


def assert_same_records(run: Path, reference: Path) -> None:
    """metrics.jsonl and gradients.jsonl hold each epoch and step once, with the reference's values.

    The one exception: the first gradient record after a resume has no update ratio (the weights
    of the previous record are not in the checkpoint), so update ratios are compared where present.
    """
    from resnet_lab.diagnostics.records import read_jsonl

    ours, theirs = read_jsonl(run / "metrics.jsonl"), read_jsonl(reference / "metrics.jsonl")
    assert [r["epoch"] for r in ours] == [r["epoch"] for r in theirs] == [1, 2]
    for a, b in zip(ours, theirs):
        assert ({k: v for k, v in a.items() if k not in TIMING_KEYS}
                == {k: v for k, v in b.items() if k not in TIMING_KEYS})
    ours, theirs = read_jsonl(run / "gradients.jsonl"), read_jsonl(reference / "gradients.jsonl")
    assert [r["step"] for r in ours] == [r["step"] for r in theirs]
    for a, b in zip(ours, theirs):
        assert [a[k] for k in ("loss", "global_grad_norm", "verdict", "reason")] == \
            [b[k] for k in ("loss", "global_grad_norm", "verdict", "reason")]
        for ga, gb in zip(a["groups"], b["groups"]):
            assert ga["update_ratio"] is None or ga["update_ratio"] == gb["update_ratio"]
            assert ({k: v for k, v in ga.items() if k != "update_ratio"}
                    == {k: v for k, v in gb.items() if k != "update_ratio"})


def test_chaos_random_sigkills_then_resume_end_bit_identical(tmp_path, reference_run):
    """Killed at seeded random points (before the first checkpoint, mid-epoch, and as soon as a
    checkpoint write has begun), resumed after each kill: the run ends bit-identical to an
    uninterrupted one, and every checkpoint on disk loads at every moment we look."""
    import random

    rng = random.Random(20261128)
    out = tmp_path / "run"
    targets = sorted(rng.sample(range(1, 36), 5))  # at least 8 steps left to catch a write
    kills, mid_write = 0, 0
    for k, target in enumerate([None] + targets):
        resumable = (out / "config.json").exists()
        argv = ["train", "--resume", str(out), "--quiet"] if resumable else \
            SMALL + ["--checkpoint-every", "1", "--out", str(out)]
        proc = subprocess.Popen(CLI + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            if target is None:
                time.sleep(rng.uniform(0.2, 1.0))  # still importing or setting up: no checkpoint yet
            else:
                _watch_until(out, proc, target, during_write=k % 2 == 1)
        finally:
            proc.kill()
            proc.wait()
        kills += 1
        mid_write += any(out.glob(".last.pt.*.tmp"))
        for name in ("last.pt", "best.pt"):
            if (out / name).exists():
                load_checkpoint(out / name)
    assert kills == 6
    run_cli("train", "--resume", str(out), "--quiet")
    assert_same_weights(weights(out), weights(reference_run))
    assert_same_records(out, reference_run)
    assert not list(out.glob(".*.tmp"))  # what a kill mid-write left is cleared on resume
    print(f"chaos: {kills} kills, {mid_write} of them while a checkpoint was being written")


def _watch_until(out: Path, proc: subprocess.Popen, target: int, during_write: bool) -> None:
    """Return once last.pt holds step >= target, loading every checkpoint on disk at each look;
    with ``during_write``, then as soon as the next checkpoint write has begun (its temp file
    exists: a tight loop of directory listings, since a write lasts milliseconds)."""
    deadline = time.time() + 180
    while time.time() < deadline:
        states = {name: load_checkpoint(out / name) for name in ("last.pt", "best.pt") if (out / name).exists()}
        if "last.pt" in states and states["last.pt"]["step"] >= target:
            break
        assert proc.poll() is None, f"the run ended before step {target}: {proc.stderr.read().decode()[-500:]}"
        time.sleep(0.01)
    else:
        raise AssertionError(f"step {target} was not reached in time")
    while during_write and time.time() < deadline:
        if any(out.glob(".last.pt.*.tmp")):
            return
        assert proc.poll() is None, f"no checkpoint write began after step {target}"


def test_sigterm_saves_at_the_step_boundary_and_resume_continues(tmp_path, reference_run):
    out = tmp_path / "run"
    proc = _start_and_wait(out, min_step=5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert b"interrupted at step" in stderr and b"interrupted" not in stdout  # a notice, so on stderr
    assert load_checkpoint(out / "last.pt")["step"] < 44
    run_cli("train", "--resume", str(out), "--quiet")
    assert_same_weights(weights(out), weights(reference_run))


# ----------------------------------------------------------------------------- checkpoints

def test_an_epoch_without_a_gradient_record_carries_no_norms_of_an_earlier_epoch(tmp_path):
    """The monitor records every 10 steps; an epoch in which it took no record (here the last, 2 steps long)
    has the monitor's verdict in its metrics row but no per-group norms: it used to repeat the previous
    epoch's, which the run's gradient-flow figure and degradation's snapshots then drew as this epoch's."""
    config = resolve_config("default", model="resnet8", data="digits", image_size=8, steps=13, monitor_every=10,
                            out=str(tmp_path / "run"), progress=False, tensorboard=False, report="none")
    result = train(config, log=lambda line: None)
    first, last = result.history
    assert (first["step"], last["step"]) == (11, 13)  # record steps 0 and 10 both fall in the first epoch
    assert first["gradients"]["groups"] and first["gradients"]["step"] == 10
    assert last["gradients"]["verdict"] == first["gradients"]["verdict"]
    assert last["gradients"]["groups"] == [] and last["gradients"]["global_grad_norm"] is None
    assert last["gradients"]["step"] is None
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["gradients"] == last["gradients"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, b"old")

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new" * 1000)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_or_foreign_checkpoints_are_refused(tmp_path, reference_run, capsys):
    good = (reference_run / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "cut.pt")]) == 2
    assert capsys.readouterr().err.count("\n") == 1

    class Payload:  # loading must never unpickle arbitrary objects
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"model": {}, "config": {}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="corrupted or not a resnet-lab checkpoint"):
        load_checkpoint(tmp_path / "evil.pt")


def test_a_model_trained_on_non_square_images_is_fed_that_shape_by_predict_and_export(tmp_path, capsys):
    """npz data of 8x16 images trained and evaluated at 8x16, but predict squashed new images to 8x8
    (the checkpoint held one side) and an ONNX export would have been built for 8x8 inputs."""
    import numpy as np
    import onnx
    from PIL import Image

    from resnet_lab.training.inference import predict_images

    rng = np.random.default_rng(0)
    sizes = {"train": 64, "test": 16}
    arrays = {f"x_{split}": rng.integers(0, 256, (n, 8, 16), dtype=np.uint8) for split, n in sizes.items()}
    arrays |= {f"y_{split}": np.arange(len(arrays[f"x_{split}"])) % 2 for split in ("train", "test")}
    np.savez(tmp_path / "wide.npz", **arrays)
    assert main(["train", "--model", "resnet8", "--data", f"npz:{tmp_path / 'wide.npz'}", "--steps", "1", "--quiet",
                 "--batch-size", "32", "--no-tensorboard", "--report", "none", "--out", str(tmp_path / "run")]) == 0
    info = load_checkpoint(tmp_path / "run" / "last.pt")["data_info"]
    assert info["image_shape"] == [8, 16] and info["image_size"] == 8
    seen = []
    Image.fromarray(arrays["x_test"][0]).resize((48, 24)).save(tmp_path / "new.png")
    import resnet_lab.data as data

    preprocess = data.preprocess_images
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "preprocess_images", lambda paths, **kw: seen.append(preprocess(paths, **kw)) or seen[-1])
        predict_images(tmp_path / "run" / "last.pt", [tmp_path / "new.png"])
    assert seen[0].shape == (1, 1, 8, 16)
    assert main(["export", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "input 'images' N x 1 x 8 x 16" in capsys.readouterr().out
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [1, 8, 16]


def _image_folder(root: Path, shape: tuple[int, int, int]) -> None:
    """``root/{train,val}/{cat,dog}/0.png``: one random image of ``shape`` (H, W, C) per class and split."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / split / c / "0.png")


def test_predict_prepares_an_image_folder_models_images_as_its_validation_images(tmp_path):
    """predict squashed each image to a square while the folder's evaluation resizes and centre-crops it:
    the same validation image got other probabilities from predict than from evaluate."""
    from resnet_lab.data import load_data, make_folder_loaders
    from resnet_lab.models import create_model
    from resnet_lab.training import TrainConfig
    from resnet_lab.training.inference import predict_images

    _image_folder(tmp_path / "imgs", (24, 60, 3))
    ds = load_data(f"folder:{tmp_path / 'imgs'}")
    info = {"spec": f"folder:{tmp_path / 'imgs'}", "name": ds.name, "classes": ds.classes, "mean": list(ds.mean),
            "std": list(ds.std), "in_channels": 3, "image_size": 16, "description": ds.description(),
            "eval_split": "val"}
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=2, in_channels=3).eval()
    torch.save({"model": model.state_dict(), "data_info": info,
                "config": TrainConfig(model="resnet8", data=info["spec"]).to_dict()}, tmp_path / "last.pt")
    x, _ = next(iter(make_folder_loaders(ds, 2, 16, 0, 0)[1]))  # what evaluate feeds the model
    with torch.no_grad():
        expected = torch.softmax(model(x), dim=1)
    got = predict_images(tmp_path / "last.pt", [path for path, _ in ds.val_files], top_k=2)
    for probs, result in zip(expected, got):
        assert {t["index"]: t["prob"] for t in result["top"]} == pytest.approx(dict(enumerate(probs.tolist())))


def test_evaluate_on_an_image_folder_normalises_with_the_checkpoints_statistics(tmp_path):
    """A model trained on in-memory data and evaluated on an image folder was fed the images normalised with
    ImageNet's mean and std, not the statistics it was trained with."""
    from resnet_lab.data import load_data, make_folder_loaders
    from resnet_lab.models import create_model
    from resnet_lab.training import TrainConfig
    from resnet_lab.training.inference import evaluate_checkpoint

    _image_folder(tmp_path / "imgs", (16, 16, 3))
    info = {"spec": "npz:pets.npz", "name": "pets", "classes": ["cat", "dog"], "mean": [0.1, 0.2, 0.3],
            "std": [0.05, 0.1, 0.2], "in_channels": 3, "image_size": 16, "description": "pets", "eval_split": "test"}
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=2, in_channels=3).eval()
    torch.save({"model": model.state_dict(), "data_info": info,
                "config": TrainConfig(model="resnet8", data=info["spec"], workers=0).to_dict()}, tmp_path / "last.pt")
    ds = load_data(f"folder:{tmp_path / 'imgs'}")
    ds.mean, ds.std = tuple(info["mean"]), tuple(info["std"])
    x, y = next(iter(make_folder_loaders(ds, 2, 16, 0, 0)[1]))
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x), y).item()
    result = evaluate_checkpoint(tmp_path / "last.pt", data=f"folder:{tmp_path / 'imgs'}")
    assert result["test_loss"] == pytest.approx(expected, rel=1e-5)


def test_evaluate_predict_and_export_use_the_checkpoint(tmp_path, reference_run, capsys):
    assert main(["evaluate", "--checkpoint", str(reference_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 360 and 0 <= result["test_acc"] <= 1
    assert (result["weights"], result["tta"]) == ("trained", False)  # what the figure is of
    history = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert result["test_acc"] == pytest.approx(history[-1]["test_acc"])

    from PIL import Image

    from resnet_lab.data import load_data

    ds = load_data("digits")
    Image.fromarray(ds.x_test[0, 0].numpy()).resize((50, 40)).save(tmp_path / "digit.png")
    assert main(["predict", "--checkpoint", str(reference_run), str(tmp_path / "digit.png"), "--json",
                 "--top-k", "3"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(top) == 3 and top[0]["prob"] >= top[1]["prob"] and top[0]["class"] in ds.classes

    out = tmp_path / "w.safetensors"
    assert main(["export", "--checkpoint", str(reference_run / "last.pt"), "--out", str(out)]) == 0
    from safetensors.torch import load_file

    assert_same_weights(load_file(str(out)), weights(reference_run))
    # ... and the export loads back into the zoo's model (it once had no way back for CIFAR nets)
    from resnet_lab.models import create_model

    config = json.loads((reference_run / "config.json").read_text())
    back = create_model(config["model"], num_classes=10, in_channels=1, weights=out, **config["model_options"])
    assert_same_weights(back.state_dict(), weights(reference_run))


def test_the_onnx_export_classifies_the_test_set_as_the_checkpoint_does(tmp_path, reference_run, capsys):
    """`export --out X.onnx`: the model with its normalisation inside takes pixel values in [0, 1];
    onnxruntime on the digits test set gets the run's own final accuracy, image for image."""
    import onnxruntime

    from resnet_lab.data import load_data, resize_dataset

    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(reference_run / "last.pt"), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {out} (ONNX opset ") and "checked with onnxruntime" in line
    info = load_checkpoint(reference_run / "last.pt")["data_info"]
    ds = resize_dataset(load_data("digits"), info["image_size"])
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, len(ds.y_test)):  # any batch size
        logits = session.run(None, {"images": (ds.x_test[:batch].float() / 255).numpy()})[0]
        assert logits.shape == (batch, 10)
    accuracy = (logits.argmax(1) == ds.y_test.numpy()).mean()
    history = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    assert accuracy == pytest.approx(history[-1]["test_acc"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"]) == info["classes"]


def _trained_then_evaluated(tmp_path, capsys, *train_args) -> tuple[dict, dict]:
    """Train a tiny resnet8 run with these flags, then `evaluate --json` it: its last metrics row and the
    evaluation of the same weights."""
    argv = ["train", "--model", "resnet8", *train_args, "--quiet", "--no-tensorboard", "--report", "none",
            "--device", "cpu", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    capsys.readouterr()
    final = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--json"]) == 0
    return final, json.loads(capsys.readouterr().out)


def test_val_seed_holds_out_the_same_images_for_every_seed_and_evaluate_finds_them(tmp_path, capsys):
    """Two seeds with --val-seed 0 are judged on one held-out set; `evaluate` re-draws that set
    from the checkpoint's config (with the run's own seed it would be another 100 images), at the
    --image-size the run trained at (it used to evaluate digits at 32x32 instead)."""
    from resnet_lab.data import load_data

    final, evaluated = _trained_then_evaluated(tmp_path, capsys, "--data", "digits", "--image-size", "16", "--steps",
                                               "2", "--val-split", "100", "--val-seed", "0", "--seed", "1")
    assert evaluated["n"] == 100 and evaluated["test_loss"] == pytest.approx(final["test_loss"], rel=1e-5)
    split = {seed: load_data("digits", val_split=100, seed=seed).x_test for seed in (0, 1)}
    assert not torch.equal(split[0], split[1])  # so the seed that drew it matters
    assert main(["train", "--val-split", "100", "--val-seed", "-1", "--quiet", "--out", str(tmp_path / "bad")]) == 2
    assert "--val-seed must be >= 0" in capsys.readouterr().err


def test_evaluate_computes_in_the_precision_the_run_evaluated_in(tmp_path, capsys):
    """A bf16 run was evaluated in fp32: on digits after 5 epochs, 0.8083 against the run's own 0.8028
    with the same weights."""
    final, evaluated = _trained_then_evaluated(tmp_path, capsys, "--data", "digits", "--steps", "3", "--precision",
                                               "bf16")
    assert evaluated["test_acc"] == final["test_acc"]
    assert evaluated["test_loss"] == pytest.approx(final["test_loss"], rel=1e-6)


def test_evaluate_feeds_non_square_images_at_the_shape_the_run_trained_on(tmp_path, capsys):
    """A run on 16 x 24 npz images was evaluated on them squashed to 16 x 16 (the square of the height):
    another loss than the run's own evaluation, exit 0."""
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {f"x_{split}": rng.integers(0, 256, (n, 16, 24), dtype=np.uint8)
              for split, n in (("train", 64), ("test", 32))}
    arrays.update(y_train=np.arange(64) % 2, y_test=np.arange(32) % 2)
    np.savez(tmp_path / "wide.npz", **arrays)
    final, evaluated = _trained_then_evaluated(tmp_path, capsys, "--data", f"npz:{tmp_path / 'wide.npz'}", "--steps",
                                               "2", "--batch-size", "32")
    assert evaluated["n"] == 32 and evaluated["test_loss"] == pytest.approx(final["test_loss"], rel=1e-5)


def test_evaluate_with_an_empty_data_spec_is_refused_not_run_on_the_runs_own_data(tmp_path, capsys):
    """evaluate --data "$OTHER" with OTHER unset printed the run's own test accuracy at exit 0, a figure
    the caller took for the other data's."""
    _trained_then_evaluated(tmp_path, capsys, "--data", "digits", "--image-size", "8", "--steps", "1")
    for empty in ("", " "):
        assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", empty]) == 2
        err = capsys.readouterr().err
        assert "--data is empty (an unset shell variable?)" in err and len(err.strip().splitlines()) == 1


def test_evaluate_on_other_npz_data_resizes_it_to_the_non_square_shape_the_run_trained_on(tmp_path, capsys):
    """evaluate --data other.npz of 32 x 48 images, for a run on 16 x 24, squashed them to 16 x 16 (the
    square of the height), while predict fed 16 x 24: a figure for distorted images, exit 0."""
    import numpy as np

    from resnet_lab.data import resize

    rng = np.random.default_rng(0)
    for name, (h, w) in (("wide", (16, 24)), ("wider", (32, 48))):
        arrays = {f"x_{split}": rng.integers(0, 256, (n, h, w), dtype=np.uint8) for split, n in (("train", 64),
                                                                                                    ("test", 32))}
        np.savez(tmp_path / f"{name}.npz", **arrays, y_train=np.arange(64) % 2, y_test=np.arange(32) % 2)
    _trained_then_evaluated(tmp_path, capsys, "--data", f"npz:{tmp_path / 'wide.npz'}", "--steps", "1",
                            "--batch-size", "32")
    shapes, resize_images = [], resize.resize_images
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resize, "resize_images", lambda x, size: shapes.append(resize_images(x, size).shape[2:])
                      or resize_images(x, size))
        assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", f"npz:{tmp_path / 'wider.npz'}",
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 32
    assert shapes and all(tuple(shape) == (16, 24) for shape in shapes)


# ----------------------------------------------------------------------------- bad input

def _tree_digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("argv,fragment", [
    (["--epochs", "-2"], "--epochs"),
    (["--batch-size", "0"], "--batch-size"),
    (["--data", "npz:/no/such/file.npz"], "no/such/file.npz"),
    (["--data", "imagenet"], "unknown data set"),
    (["--model", "resnet21"], "6n+2"),
    (["--bogus-flag"], "unrecognized"),
])
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(argv, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--quiet"] + argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_ema_weights_of_a_run_trained_without_ema_are_refused_in_one_line(reference_run, capsys):
    from resnet_lab.cli.main import main

    assert main(["evaluate", "--checkpoint", str(reference_run), "--ema"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trained without --ema" in err


@pytest.mark.parametrize("files,said", [
    (["best.pt", "metrics.jsonl", "config.json"], "a finished run (best.pt)"),  # last.pt deleted to save space
    (["report.html", "result.json"], "a finished run (result.json)"),
    (["report.html", "notes.txt"], "files a run would replace (report.html)"),  # not a run's folder
])
def test_a_new_run_never_writes_over_what_a_folder_without_last_pt_holds(files, said, tmp_path, capsys):
    """With no last.pt, train --out once deleted or replaced best.pt, result.json and report.html (exit 0)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in files:
        (out / name).write_text("kept")
    assert main(["train", "--model", "resnet8", "--data", "digits", "--steps", "1", "--quiet", "--out", str(out)]) == 2
    assert f"{out} already holds {said}; choose another --out" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(files) and all(
        (out / name).read_text() == "kept" for name in files)


def test_an_attempt_that_never_saved_a_checkpoint_is_started_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"model": "resnet8"}')  # killed in its first epoch: settings, records, no weights
    (out / "metrics.jsonl").write_text("")
    assert main(["train", "--model", "resnet8", "--data", "digits", "--steps", "1", "--quiet", "--out", str(out),
                 "--report", "none"]) == 0
    assert json.loads((out / "config.json").read_text())["model"] == "resnet8" and (out / "result.json").exists()


def test_existing_run_is_not_overwritten_and_resume_refuses_another_model(reference_run, capsys):
    before = _tree_digest(reference_run)
    assert main(["train", "--out", str(reference_run), "--quiet", "--epochs", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--resume", str(reference_run), "--model", "resnet32"]) == 2
    assert "is a resnet8 run" in capsys.readouterr().err
    assert _tree_digest(reference_run) == before


def test_all_finite_finds_one_bad_value_among_many_tensors():
    from resnet_lab.training.checkpoint import all_finite

    state = {f"w{i}": torch.ones(3, 3) for i in range(5)} | {"steps": torch.tensor(7), "note": "text"}
    assert all_finite(state) and all_finite({"steps": torch.tensor(1)})
    for bad in (float("nan"), float("inf")):
        broken = dict(state)
        broken["w3"] = torch.ones(3, 3).index_put_((torch.tensor([1]), torch.tensor([2])), torch.tensor(bad))
        assert not all_finite(broken)


@pytest.mark.parametrize("min_s, saved_at", [(0.0, [22, 44, 66]), (1e9, [66])])
def test_checkpoint_min_s_saves_last_at_epoch_ends_no_more_often_than_asked(tmp_path, monkeypatch, min_s, saved_at):
    """Every epoch end by default; with a long interval only the last step, which always saves (a sweep
    reads a run as done from it). The fast recipe asks for at most one save per 30 s."""
    from resnet_lab.training import run_files

    saves = []
    real_save = run_files.save_checkpoint
    monkeypatch.setattr(run_files, "save_checkpoint",
                        lambda path, state: (saves.append((path.name, state["step"])), real_save(path, state))[1])
    config = resolve_config("default", model="resnet8", data="digits", epochs=3, batch_size=64, image_size=16,
                            checkpoint_min_s=min_s, out=str(tmp_path / "run"), progress=False, tensorboard=False)
    train(config, log=lambda *_: None)
    assert [step for name, step in saves if name == "last.pt"] == saved_at
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 66
    assert resolve_config("fast").checkpoint_min_s == 30.0 and resolve_config("paper").checkpoint_min_s == 0.0


def test_train_with_log_none_is_silent_as_the_experiments_are(tmp_path, capsys):
    config = resolve_config("default", model="resnet8", data="digits", image_size=16, steps=2, batch_size=32,
                            out=str(tmp_path / "run"), progress=False, tensorboard=False, report="none")
    result = train(config, log=None)
    assert result.steps == 2 and (tmp_path / "run" / "result.json").exists()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("config", [{"model": "resnet8"}, "resnet8"])
def test_train_given_something_else_than_a_config_says_to_build_one_with_resolve_config(config):
    with pytest.raises(UserError, match=r"train takes a TrainConfig, got (dict|str): build one with resolve_config"):
        train(config, log=None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "run"
    train(resolve_config("default", model="resnet8", data="digits", image_size=16, steps=1, batch_size=32,
                         out=str(out), progress=False, tensorboard=False, report="none"), log=None)
    return out


def test_predict_given_one_path_classifies_that_image_not_each_letter_of_its_name(tmp_path, tiny_run):
    import numpy as np
    from PIL import Image

    from resnet_lab.training.inference import predict_images

    image = tmp_path / "seven.png"
    Image.fromarray(np.full((16, 16), 200, dtype=np.uint8)).save(image)
    listed = predict_images(tiny_run, [str(image)])
    assert predict_images(tiny_run, str(image)) == predict_images(tiny_run, image) == listed
    assert len(listed) == 1


@pytest.mark.parametrize("images,kind", [("PIL", "PngImageFile"), ("array", "list"), ("tensor", "Tensor"),
                                         (None, "NoneType")])
def test_predict_given_an_image_held_in_memory_says_it_takes_file_paths(tmp_path, tiny_run, images, kind):
    """A PIL image, a numpy array or a tensor was a TypeError from inside pathlib ('expected str, bytes or
    os.PathLike object, not list'), None 'NoneType object is not iterable'."""
    import numpy as np
    from PIL import Image

    from resnet_lab.training.inference import predict_images

    pixels = np.full((16, 16), 200, dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "seven.png")
    given = {"PIL": Image.open(tmp_path / "seven.png"), "array": pixels, "tensor": torch.zeros(1, 16, 16),
             None: None}[images]
    with pytest.raises(UserError, match=rf"^images are image file paths \(str or Path\), got a {kind}; save an image"):
        predict_images(tiny_run, given)
    with pytest.raises(UserError, match=rf"got a {kind}"):
        predict_images(tiny_run, [tmp_path / "seven.png", given])


@pytest.mark.parametrize("call, name", [("evaluate", "checkpoint"), ("model", "checkpoint"), ("export", "out"),
                                        ("resume", "resume"), ("report", "run_dir")])
def test_a_path_argument_that_is_not_a_path_is_one_line(tiny_run, call, name):
    """None or a number given for a path was a TypeError from inside pathlib."""
    from resnet_lab.report.train_report import write_run_report
    from resnet_lab.training import export_safetensors
    from resnet_lab.training.inference import evaluate_checkpoint, model_from_checkpoint

    calls = {"evaluate": lambda: evaluate_checkpoint(None), "model": lambda: model_from_checkpoint(5),
             "export": lambda: export_safetensors(tiny_run, None), "resume": lambda: train(None, resume=5),
             "report": lambda: write_run_report(None)}
    with pytest.raises(UserError, match=rf"^{name} is a file or folder path \(a str or Path\), got (None|5)$"):
        calls[call]()


@pytest.mark.parametrize("top_k", [0, -1, 2.5])
def test_predict_refuses_a_top_k_that_is_not_a_positive_integer(tmp_path, tiny_run, top_k):
    from resnet_lab.training.inference import predict_images

    with pytest.raises(UserError, match="top_k must be a positive integer"):
        predict_images(tiny_run, [str(tmp_path / "unread.png")], top_k=top_k)


def test_train_puts_back_the_callers_deterministic_switch_and_random_generators(tmp_path):
    import random

    import numpy as np

    def draws():
        return torch.rand(2).tolist(), np.random.rand(2).tolist(), [random.random(), random.random()]

    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = draws()
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    config = resolve_config("default", model="resnet8", data="digits", image_size=16, steps=2, batch_size=32,
                            deterministic=True, out=str(tmp_path / "run"), progress=False, tensorboard=False,
                            report="none")
    train(config, log=None)
    assert not torch.are_deterministic_algorithms_enabled()
    assert draws() == expected  # the notebook's own random numbers do not restart from the run's seed


def test_train_refuses_val_split_with_a_data_set_given_that_holds_nothing_out(tmp_path):
    from resnet_lab.data import load_data

    config = resolve_config("default", model="resnet8", data="digits", image_size=16, steps=1, val_split=100,
                            out=str(tmp_path / "run"), progress=False, tensorboard=False, report="none")
    with pytest.raises(UserError, match="val_split=100 holds images out as the data is loaded"):
        train(config, dataset=load_data("digits"), log=None)


@pytest.mark.parametrize("dataset,shown", [("digits", "'digits'"),
                                           ((torch.zeros(4, 1, 8, 8), torch.zeros(4)), "a tuple")])
def test_a_data_set_name_or_arrays_given_as_dataset_is_one_line(tmp_path, dataset, shown):
    """train(config, dataset="digits") was an AttributeError ('str' object has no attribute 'num_classes'),
    and so was run_degradation's."""
    from resnet_lab.experiments import run_degradation

    config = resolve_config("default", model="resnet8", data="digits", image_size=16, steps=1,
                            out=str(tmp_path / "run"), progress=False, tensorboard=False, report="none")
    message = rf"^dataset= takes a data set loaded with load_data\(...\), got {re.escape(shown)}; a data set's name"
    with pytest.raises(UserError, match=message):
        train(config, dataset=dataset, log=None)
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match=message):
        run_degradation([8], dataset=dataset, steps=1, image_size=16, log=None)


@pytest.mark.parametrize("keywords,fragment", [
    ({"device": "gpu"}, "unknown device 'gpu'; use cpu, cuda"), ({"batch_size": 64.0}, "batch_size must be a positive"),
])
def test_evaluate_and_predict_check_device_and_batch_size_in_one_line(tiny_run, keywords, fragment):
    from resnet_lab.training.inference import evaluate_checkpoint, predict_images

    with pytest.raises(UserError, match=fragment):
        evaluate_checkpoint(tiny_run, **keywords)
    if "device" in keywords:
        with pytest.raises(UserError, match=fragment):
            predict_images(tiny_run, ["unread.png"], **keywords)
    assert evaluate_checkpoint(tiny_run, device=torch.device("cpu"))["n"] == 360


@pytest.mark.parametrize("use", ["evaluate", "evaluate_flip", "predict", "export", "onnx"])
def test_a_switch_given_a_string_is_refused_not_taken_as_true(tmp_path, tiny_run, use):
    """ema="no" or flip="no" is true to Python: a run with a weight average was evaluated on it (a run without
    one was told to 'drop --ema'), and flip="no" evaluated with flip TTA."""
    from resnet_lab.training import export_safetensors
    from resnet_lab.training.inference import evaluate_checkpoint, predict_images
    from resnet_lab.training.onnx_export import export_onnx

    calls = {"evaluate": lambda: evaluate_checkpoint(tiny_run, ema="no"),
             "evaluate_flip": lambda: evaluate_checkpoint(tiny_run, flip="no"),
             "predict": lambda: predict_images(tiny_run, ["unread.png"], ema="no"),
             "export": lambda: export_safetensors(tiny_run / "last.pt", tmp_path / "w.safetensors", ema="no"),
             "onnx": lambda: export_onnx(tiny_run / "last.pt", tmp_path / "w.onnx", ema="no")}
    name = "flip" if use == "evaluate_flip" else "ema"
    with pytest.raises(UserError, match=f"^{name} must be True or False, got 'no'$"):
        calls[use]()
    assert not list(tmp_path.glob("w.*"))

def test_using_a_checkpoint_leaves_the_callers_random_numbers_alone(tmp_path, tiny_run):
    """evaluate_checkpoint, predict_images and export_safetensors built the model (its random initialisation,
    then overwritten by the weights) from the caller's generator: a notebook's seeded draws after them changed."""
    import numpy as np
    from PIL import Image

    from resnet_lab.training import export_safetensors
    from resnet_lab.training.inference import evaluate_checkpoint, predict_images

    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(image)
    torch.manual_seed(0)
    expected = torch.rand(4)
    for use in (lambda: evaluate_checkpoint(tiny_run), lambda: predict_images(tiny_run, [image]),
                lambda: export_safetensors(tiny_run / "last.pt", tmp_path / "w.safetensors")):
        torch.manual_seed(0)
        use()
        assert torch.equal(torch.rand(4), expected)


def test_evaluate_says_when_its_figure_is_the_weight_average_or_flip_tta(tmp_path, shared_data_dir, capsys):
    """`evaluate --ema --tta` printed the same line and JSON as the trained weights without TTA: a figure
    piped on could pass for the trained weights' own."""
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet8", "--data", f"npz:{shared_data_dir / 'cifar10-small.npz'}", "--steps",
                 "2", "--ema", "0.9", "--image-size", "16", "--quiet", "--no-tensorboard", "--report", "none",
                 "--device", "cpu", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--ema", "--tta"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(" images (weight average, flip TTA)")
    assert main(["evaluate", "--checkpoint", str(run), "--tta", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["weights"], result["tta"]) == ("trained", True)
