"""The command line: subcommands, JSON output, and one-line errors with exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from resnet_lab.cli.main import COMMANDS, build_parser, main
from resnet_lab.errors import UserError


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_has_help_with_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "examples:" in capsys.readouterr().out


def test_help_and_a_refused_flag_never_import_torch():
    """Every command's choices come from torch-free modules and the packages import their names on
    first use (``lazy.py``), so help and a mistyped flag answer at once, not after torch's ~1.5 s."""
    code = ("import sys\n"
            "from resnet_lab.cli.main import COMMANDS, main\n"
            "for argv in [['--help'], *([c, '--help'] for c in COMMANDS)]:\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "status = main(['train', '--no-such-flag'])\n"
            "print(status, sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "2 []", done.stdout[-2000:] + done.stderr[-2000:]
    assert "unrecognized arguments: --no-such-flag" in done.stderr


def _offered(command: str, flag: str) -> tuple:
    """The values ``resnet-lab COMMAND FLAG`` offers, as its argparse parser holds them."""
    commands = next(a for a in build_parser([command])._actions if isinstance(a, argparse._SubParsersAction))
    return next(a for a in commands.choices[command]._actions if flag in a.option_strings).choices


def test_the_cli_offers_the_optimizers_and_nonfinite_policies_the_library_takes():
    """Each command's choices are the library's: every value offered is accepted, and the library takes
    no value that is not offered (a value added to one side only fails here)."""
    from resnet_lab.diagnostics import POLICIES, GradientMonitor, run_gradient_check
    from resnet_lab.diagnostics.choices import OPTIMIZERS
    from resnet_lab.training import resolve_config

    batch = (torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    for command in ("train", "gradients"):
        assert set(_offered(command, "--optimizer")) == set(OPTIMIZERS), command
    for name in _offered("gradients", "--optimizer"):
        assert resolve_config(optimizer=name).optimizer == name
        assert run_gradient_check(torch.nn.Linear(3, 2), [batch], steps=1, optimizer=name)["steps_run"] == 1
    with pytest.raises(UserError, match="optimizer='lion' is not valid"):
        resolve_config(optimizer="lion")
    with pytest.raises(UserError, match="optimizer='lion' is not valid"):
        run_gradient_check(torch.nn.Linear(3, 2), [batch], steps=1, optimizer="lion")

    assert set(_offered("train", "--on-nonfinite")) == set(POLICIES)
    for policy in _offered("train", "--on-nonfinite"):
        assert resolve_config(on_nonfinite=policy).on_nonfinite == policy
        GradientMonitor(torch.nn.Linear(3, 2), nonfinite=policy).close()
    with pytest.raises(UserError, match="on_nonfinite='ignore' is not valid"):
        resolve_config(on_nonfinite="ignore")


@pytest.mark.parametrize("command,in_memory", [("train", False), ("degradation", False), ("gradients", True),
                                               ("demo", True), ("survey", True)])
def test_data_help_lists_the_data_sets_the_library_names_when_it_refuses_one(command, in_memory, capsys):
    """``--data``'s help is the library's list of specs (the one ``load_data`` names for a misspelt spec,
    without the notes on what a file or folder holds), not a copy typed again in each command."""
    from resnet_lab.data import prepare_data

    with pytest.raises(UserError, match="use one of: ") as refused:
        prepare_data("no-such-data", in_memory=in_memory)
    specs = re.sub(r" \([^)]*\)", "", str(refused.value).split("use one of: ", 1)[1])
    assert "digits, cifar10" in specs and ("folder:PATH" in specs) != in_memory, specs
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help over lines
    data_help = re.search(r"--data DATA (.*?) --", help_text).group(1)
    assert data_help.startswith(specs + " (default digits"), data_help


def test_gradients_text_says_which_figures_are_means_and_which_step_the_verdict_judged(capsys):
    """The table's norms are means over the steps, the verdict's figure is one step's: said, not left
    for a reader to find two different 'global gradient norm' values unexplained."""
    assert main(["gradients", "--model", "resnet8", "--steps", "3", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^global gradient norm \S+ \(mean over the steps, as the table\)$", out, re.M), out
    assert re.search(r"^verdict \(step \d+\): (healthy|vanishing|exploding|nonfinite): ", out, re.M), out


def test_models_json_has_the_documented_keys(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"resnet18", "resnet1202", "plain110", "preact_resnet1001"}
    assert all(set(r) == {"name", "family", "layers", "params", "gflops"} for r in rows)
    r50 = next(r for r in rows if r["name"] == "resnet50")
    assert r50["params"] == 25_557_032 and r50["layers"] == 50 and r50["gflops"] == pytest.approx(8.18, rel=0.01)


def test_summary_names_the_model_as_the_zoo_does_however_it_was_spelt(capsys):
    """'summary " ResNet8"' once headed its output ' ResNet8:', a name 'models' lists nowhere."""
    assert main(["summary", " ResNet8"]) == 0
    assert capsys.readouterr().out.startswith("resnet8: cifar family")


def test_summary_prints_stages_with_shapes(capsys):
    assert main(["summary", "resnet56"]) == 0
    out = capsys.readouterr().out
    assert "layer3" in out and "64x8x8" in out and "853,018" in out


@pytest.mark.parametrize("argv,fragment", [
    (["summary", "resnet21"], "6n+2"),
    (["summary", "resnt56"], "did you mean"),
    (["summary", "resnet20", "--norm", "layer"], "invalid choice"),
    (["models", "--nope"], "unrecognized arguments"),
    (["summary", "resnet20", "--image-size", "0"], "from 8"),  # 0 once meant "native size" silently
    (["summary", "resnet20", "--image-size", "-5"], "from 8"),
    (["summary", "resnet6000000000002"], "10,000 layers"),  # once grew until MemoryError
    (["summary", "resnet20", "--input-size", "3"], "(see 'resnet-lab summary --help')"),  # not the top's help
    (["gradients", "--lr", "nan"], "--lr must be a positive number, got nan"),
    (["summary", "resnet20", "--checkpointing", "0"], "from 1 to 10,000, got '0'"),  # once taken as "off"
    # The demo's data: checked before any work, and its list of choices holds only what the demo takes.
    (["demo", "--data", "foo"], "use one of: digits, cifar10, cifar100, npz:PATH (arrays x_train, y_train, x_test, "
                                "y_test)\n"),
    (["demo", "--data", "folder:x"], "not an image folder"),
    (["gradients", "--lr", "0"], "--lr must be a positive number, got 0.0"),
    (["gradients", "--seed", "99999999999999999999"], "--seed must be an integer from 0 to 4,294,967,295"),  # traceback
    (["gradients", "--groups", "conv=", "--steps", "1"], "groups: 'conv=' names no group; write REGEX=GROUP"),
    (["gradients", "--lr", "1e39"], "lr must be at most 1e+30"),  # once a traceback from the first update
    # once trained each step on the whole data set, said nowhere
    (["gradients", "--batch-size", "5000"], "batch size 5000 is larger than the 1,437 images to train on"),
    # An image format the figures are not written in (it once wrote flow.jpg.png and flow.jpg.svg):
    (["gradients", "--plot", "flow.jpg"], "figures are written as .png, .svg, .pdf, not .jpg; give flow.png"),
    # An empty --plot drew no figure at exit 0; a folder's got its figures beside it (DIR/ -> DIR.png, DIR.svg):
    (["gradients", "--plot", ""], "--plot is empty (an unset shell variable?); give a file such as flow.png"),
    (["gradients", "--plot", "plots/"], "--plot plots/ is a folder; give a file in it, such as plots/flow.png"),
    (["gradients", "--plot", str(Path(__file__).parent)], f"--plot {Path(__file__).parent} is a folder"),
    # Flags the run would ignore are refused rather than recorded as if they applied:
    (["train", "--optimizer", "adam", "--nesterov"], "--nesterov is SGD's momentum"),
    (["train", "--no-augment", "--translate", "8"], "--translate sets the training crop, but --no-augment"),
    (["train", "--schedule", "step", "--milestones", "0.9", "0.1"], "--milestones must increase"),
    # ... and these three trained on at exit 0, the flag recorded in config.json but never used:
    (["train", "--optimizer", "adam", "--momentum", "0.5"], "--momentum is SGD's; --optimizer adam ignores it"),
    (["train", "--milestones", "0.3", "0.6"], "but --schedule is linear, which ignores them: add --schedule step"),
    (["train", "--val-seed", "3"], "but nothing is held out (no --val-split N): add --val-split N or drop --val-seed"),
    # the step schedule has no linear warm-up: the run went at full lr from step 0, config.json saying warmup 0.5
    # (--out /dev/null/x: refused before any work, should the check be missing)
    (["train", "--schedule", "step", "--warmup", "0.5", "--out", "/dev/null/x"],
     "--warmup 0.5 ramps the learning rate up at the start of --schedule cosine, linear or constant, but --schedule "
     "step ignores it"),
    (["train", "--recipe", "paper", "--warmup", "0.1", "--out", "/dev/null/x"], "but --schedule step ignores it"),
    # --no-monitor records nothing: config.json once said monitor_every 1 of a run with no gradients.jsonl
    (["train", "--no-monitor", "--monitor-every", "1", "--out", "/dev/null/x"],
     "--monitor-every sets how often the gradient monitor records, but --no-monitor turns it off: drop one of them"),
    # An empty --out (an unset shell variable) once wrote every command's files into the current folder.
    *[([*command, "--out", ""], "is empty (an unset shell variable?)") for command in (
        ["degradation"], ["survey"], ["compare", "resnet20"], ["demo"], ["sweep"], ["reproduce", "table6"],
        ["export", "--checkpoint", "x"], ["train"])],
    # ... and an empty --resume was the current folder: 'last.pt does not exist; . holds runs, not one'
    (["train", "--resume", ""], "resume is empty (an unset shell variable?)"),
])
def test_bad_input_prints_one_line_and_exits_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv,error", [
    (["--debug", "summary", "resnet21"], "6n\\+2"), (["summary", "resnet21", "--debug"], "6n\\+2"),
    (["reproduce", "table6", "--out", "x", "--data", "foo", "--debug"], "--data must be cifar10"),  # a subcommand's
])
def test_debug_flag_shows_the_traceback_of_the_real_error_before_or_after_the_command(argv, error):
    with pytest.raises(UserError, match=error):  # not "unrecognized arguments: --debug"
        main(argv)


def test_no_command_shows_the_commands_and_fails(capsys):
    assert main([]) == 2  # `resnet-lab $CMD` with CMD unset must not pass in a script
    err = capsys.readouterr().err
    assert "usage: resnet-lab" in err and err.rstrip().endswith("choose one of: " + ", ".join(COMMANDS))


def test_sigterm_outside_a_training_loop_ends_the_command_with_a_line_and_exit_143(monkeypatch, capsys):
    """A command killed by SIGTERM (a scheduler's time limit) used to end without a word."""
    import signal
    import time

    import resnet_lab.models.stats as stats

    def terminated(family):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(stats, "zoo_table", terminated)
    assert main(["models"]) == 143
    assert capsys.readouterr().err == "resnet-lab: terminated (SIGTERM); files already written are kept\n"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back for whoever calls main() next


def test_version_is_the_installed_packages_and_needs_no_torch():
    from importlib.metadata import version

    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "resnet_lab", "--version"], capture_output=True,
                          text=True, check=True)
    assert proc.stdout == f"resnet-lab {version('resnet-lab')}\n"
    assert "| torch\n" not in proc.stderr  # the import-time trace names every module imported


def test_python_dash_m_runs_the_cli_and_exits_2_on_bad_input():
    out = subprocess.run([sys.executable, "-m", "resnet_lab", "summary", "resnet20"],
                         capture_output=True, text=True, check=True).stdout
    assert "269,722" in out
    bad = subprocess.run([sys.executable, "-m", "resnet_lab", "summary", "resnet21"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("resnet-lab: error:")


def _run_into_a_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess:
    """``resnet-lab ARGV`` with its stdout a pipe nobody reads any more (`| head` after it exited), block-buffered."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    try:
        return subprocess.run([sys.executable, "-m", "resnet_lab", *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=300)
    finally:
        os.close(write_end)


def test_a_closed_stdout_ends_a_command_quietly_with_141():
    done = _run_into_a_closed_pipe(["models", "--family", "preact"])
    assert done.returncode == 141 and done.stderr == "", done.stderr


def test_a_closed_stdout_does_not_stop_a_training_run(tmp_path):
    out = tmp_path / "run"
    done = _run_into_a_closed_pipe(["train", "--model", "resnet8", "--data", "digits", "--image-size", "16",
                                    "--batch-size", "512", "--epochs", "1", "--quiet", "--report", "none",
                                    "--no-tensorboard", "--out", str(out)])
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert (out / "result.json").is_file() and (out / "timings.json").is_file()


def test_a_stdout_closed_by_the_shell_does_not_fail_a_finished_run(tmp_path):
    """`resnet-lab train ... >&-` trained, wrote every file and then exited 1 with a traceback
    (AttributeError: 'NoneType' object has no attribute 'flush'): Python makes a closed stdout None."""
    out = tmp_path / "run"
    argv = ["train", "--model", "resnet8", "--data", "digits", "--image-size", "16", "--batch-size", "512",
            "--steps", "1", "--quiet", "--report", "none", "--no-tensorboard", "--out", str(out)]
    done = subprocess.run(["sh", "-c", 'exec "$0" -m resnet_lab "$@" >&-', sys.executable, *argv],
                          stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (out / "result.json").is_file()
    bad = subprocess.run(["sh", "-c", 'exec "$0" -m resnet_lab summary resnet21 >&-', sys.executable],
                         stderr=subprocess.PIPE, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("resnet-lab: error: resnet21") and bad.stderr.count("\n") == 1


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("resnet-lab")
    out = subprocess.run([str(script), "summary", "plain20"], capture_output=True, text=True, check=True).stdout
    assert "plain20" in out and "269,722" in out


# ----------------------------------------------------------------------------- checkpoints from a scratch folder

def _state(name: str = "resnet8", **drop_or_replace) -> dict:
    """A small checkpoint as 'resnet-lab train' writes it (resnet8, 1 channel, 10 classes), no training."""
    from resnet_lab.models import create_model
    from resnet_lab.training import TrainConfig

    info = {"spec": "digits", "name": "digits", "classes": [str(i) for i in range(10)], "mean": [0.5], "std": [0.25],
            "in_channels": 1, "image_size": 8, "description": "digits", "eval_split": "test"}
    state = {"model": create_model(name, num_classes=10, in_channels=1).state_dict(),
             "config": TrainConfig(model="resnet8").to_dict(), "data_info": info}
    state.update(drop_or_replace)
    return {k: v for k, v in state.items() if v is not None}


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    torch.save(_state(), tmp_path / "last.pt")
    return tmp_path / "last.pt"


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_folder_of_runs_given_where_one_run_goes_names_the_runs_inside(tmp_path, capsys):
    """A sweep's (or an experiment's) --out given to evaluate, report, export, predict or train --resume was
    refused as 'sw/last.pt does not exist' or 'not a run directory': true, but no help in finding the runs."""
    for name in ("resnet8-seed0", "resnet8-seed1", "resnet14-seed0"):
        (tmp_path / "sw" / name).mkdir(parents=True)
        (tmp_path / "sw" / name / "config.json").write_text('{"model": "resnet8"}')
    (tmp_path / "sw" / "sweep.json").write_text("{}")
    sw = tmp_path / "sw"
    runs = f"{sw} holds runs, not one: give one of them ({sw / 'resnet14-seed0'}, {sw / 'resnet8-seed0'} (and 1 more))"
    for argv in (["evaluate", "--checkpoint", str(sw)], ["report", str(sw)], ["train", "--resume", str(sw)],
                 ["export", "--checkpoint", str(sw), "--out", str(tmp_path / "w.safetensors")],
                 ["predict", "--checkpoint", str(sw), str(tmp_path / "x.png")]):
        assert main(argv) == 2, argv
        _one_line_error(capsys, f"{runs}; a sweep goes on when its command is run again")


@pytest.mark.parametrize("where", ["folder", "under_a_file", "read_only"])
def test_export_to_a_place_that_cannot_be_written_is_one_line(where, checkpoint, tmp_path, monkeypatch, capsys):
    out = {"folder": tmp_path, "under_a_file": checkpoint / "w.safetensors",
           "read_only": tmp_path / "w.safetensors"}[where]
    if where == "read_only":  # root ignores chmod, so make the write itself fail as on a read-only mount
        def denied(path, data):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr("resnet_lab.training.checkpoint.atomic_write_bytes", denied)
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    fragment = {"folder": "is a folder", "under_a_file": "is a file, not a folder", "read_only": "Permission denied"}
    _one_line_error(capsys, fragment[where])


def test_a_checkpoint_or_image_the_machine_refuses_to_read_is_an_os_error_not_a_damaged_file(checkpoint, tmp_path,
                                                                                             monkeypatch, capsys):
    """A checkpoint without read permission was called "truncated, corrupted or not a resnet-lab checkpoint"
    (exit 2), an image "not a valid image file"."""
    from PIL import Image

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    image = tmp_path / "digit.png"
    Image.new("L", (8, 8)).save(image)
    with monkeypatch.context() as patch:  # root ignores chmod: make the read itself fail
        patch.setattr("resnet_lab.training.checkpoint.torch.load", denied)
        assert main(["evaluate", "--checkpoint", str(checkpoint)]) == 1
    _one_line_error(capsys, f"Permission denied: {checkpoint}")
    with monkeypatch.context() as patch:
        patch.setattr("resnet_lab.data.preprocess.Image.open", denied)
        assert main(["predict", "--checkpoint", str(checkpoint), str(image)]) == 1
    _one_line_error(capsys, f"Permission denied: {image}")
    image.write_bytes(image.read_bytes()[:30])  # a damaged image is still bad input
    assert main(["predict", "--checkpoint", str(checkpoint), str(image)]) == 2
    _one_line_error(capsys, "check that it is a valid image file")


def test_export_refuses_weights_that_contradict_the_checkpoint_config(tmp_path, capsys):
    torch.save(_state(model=_state("resnet20")["model"]), tmp_path / "other.pt")  # config says resnet8
    out = tmp_path / "w.safetensors"
    assert main(["export", "--checkpoint", str(tmp_path / "other.pt"), "--out", str(out)]) == 2
    _one_line_error(capsys, "does not fit a resnet8")
    assert not out.exists()


def test_onnx_export_takes_its_format_from_the_suffix_and_refuses_a_contradiction(checkpoint, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "safetensors", "--out",
                 str(tmp_path / "m.onnx")]) == 2
    _one_line_error(capsys, "names a .onnx file but --format is safetensors")
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 0
    import onnx

    model = onnx.load(str(tmp_path / "m.onnx"))  # a model graph, not safetensors under an .onnx name
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["logits"]
    assert json.loads({p.key: p.value for p in model.metadata_props}["classes"]) == [str(i) for i in range(10)]


@pytest.mark.parametrize("name", ["w.pt", "w.pth", "W.PTH"])
def test_export_refuses_a_pytorch_file_name_that_torch_load_could_not_read(name, checkpoint, tmp_path, capsys):
    """`export --out r18.pth` wrote safetensors under a PyTorch name: torch.load and create_model(weights=)
    then failed on the file, after an exit 0."""
    for fmt in ([], ["--format", "onnx"]):
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / name), *fmt]) == 2
        suffix = "onnx" if fmt else "safetensors"
        _one_line_error(capsys, "names a PyTorch file, which torch.load would fail to read: export writes "
                                f".safetensors or .onnx; give --out {tmp_path / Path(name).stem}.{suffix}")
        assert not (tmp_path / name).exists()


@pytest.mark.parametrize("ema", [False, True], ids=["trained", "ema"])
def test_exports_say_whether_they_hold_the_weight_average(ema, tmp_path):
    """An --ema export once carried nothing that told it from an export of the trained weights."""
    import onnx
    from safetensors import safe_open

    from resnet_lab.models import create_model

    torch.save(_state(ema=create_model("resnet8", num_classes=10, in_channels=1).state_dict()), tmp_path / "last.pt")
    flag = ["--ema"] if ema else []
    for suffix in (".safetensors", ".onnx"):
        assert main(["export", "--checkpoint", str(tmp_path / "last.pt"), "--out", str(tmp_path / f"m{suffix}"),
                     *flag]) == 0
    with safe_open(str(tmp_path / "m.safetensors"), framework="pt") as f:
        assert f.metadata()["weights"] == ("ema" if ema else "trained")
    onnx_metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert onnx_metadata["weights"] == ("ema" if ema else "trained")


def test_onnx_export_never_writes_over_a_file_that_is_not_an_onnx_model(checkpoint, capsys):
    before = checkpoint.read_bytes()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(checkpoint)]) == 2
    _one_line_error(capsys, "is not an ONNX model, so writing there would lose it")
    assert checkpoint.read_bytes() == before


def test_onnx_export_without_its_libraries_or_onnxruntime_says_what_to_install(checkpoint, tmp_path, monkeypatch,
                                                                               capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    out = tmp_path / "m.onnx"

    def without(missing: str):
        return lambda name, *rest: None if name == missing else find_spec(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", without("onnxscript"))
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    _one_line_error(capsys, "ONNX export needs onnxscript: pip install 'resnet-lab[onnx]'")
    assert not out.exists()
    monkeypatch.setattr(importlib.util, "find_spec", without("onnxruntime"))
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    assert "not checked: onnxruntime is not installed" in capsys.readouterr().out and out.exists()


def test_an_onnx_model_that_computes_something_else_is_not_written(checkpoint, tmp_path, monkeypatch, capsys):
    """The check before writing can fail: here with a tolerance no model meets (an exporter fault, exit 1)."""
    monkeypatch.setattr("resnet_lab.training.onnx_export.TOLERANCE", -1.0)
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    _one_line_error(capsys, "the ONNX model's logits differ from PyTorch's by")
    assert not out.exists()


def test_export_never_writes_over_a_file_that_is_not_an_earlier_export(checkpoint, tmp_path, capsys):
    before = checkpoint.read_bytes()
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    for target in (checkpoint, tmp_path / "metrics.jsonl"):  # the checkpoint itself, a run's records
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(target)]) == 2
        _one_line_error(capsys, "already exists and is not a .safetensors file")
    assert checkpoint.read_bytes() == before and (tmp_path / "metrics.jsonl").read_text() == "{}\n"
    out = tmp_path / "w.safetensors"
    for _ in range(2):  # an earlier export is replaced
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    capsys.readouterr()


def test_predict_reads_and_classifies_a_batch_at_a_time_with_the_same_answers(checkpoint, tmp_path, monkeypatch):
    """Every image given was once read into one batch: memory grew with the number of files."""
    import numpy as np
    from PIL import Image

    from resnet_lab.training import inference

    images = []
    for i in range(5):
        images.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (8, 8), dtype=np.uint8)).save(images[-1])
    whole = inference.predict_images(checkpoint, images)
    import resnet_lab.data as data

    preprocess, batches = data.preprocess_images, []

    def counted(paths, **options):
        batches.append(len(paths))
        return preprocess(paths, **options)

    monkeypatch.setattr(data, "preprocess_images", counted)
    monkeypatch.setattr(inference, "PREDICT_BATCH", 2)
    chunked = inference.predict_images(checkpoint, images)
    assert batches == [2, 2, 1] and [p["image"] for p in chunked] == [str(i) for i in images]
    for mine, reference in zip(chunked, whole):  # float sums may round otherwise at another batch size
        assert [t["class"] for t in mine["top"]] == [t["class"] for t in reference["top"]]
        assert [t["prob"] for t in mine["top"]] == pytest.approx([t["prob"] for t in reference["top"]], rel=1e-5)


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "x.png"], ["export"]])
def test_a_run_directory_without_last_pt_says_so_and_names_its_best_pt(command, checkpoint, tmp_path, capsys):
    """A run still in its first epoch (or whose last.pt was deleted) was told to 'pass a .pt file or a run directory
    made by resnet-lab train', which it is."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main([command[0], "--checkpoint", str(run), *command[1:]]) == 2
    _one_line_error(capsys, f"run directory {run} holds no last.pt yet")
    checkpoint.rename(run / "best.pt")
    assert main([command[0], "--checkpoint", str(run), *command[1:]]) == 2
    _one_line_error(capsys, f"still training, stopped before, or deleted); pass {run / 'best.pt'}")


@pytest.mark.parametrize("command", [["evaluate"], ["predict", "x.png"], ["export", "--out", "w.safetensors"]])
def test_a_checkpoint_without_data_info_is_refused_in_one_line(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    torch.save(_state(data_info=None), "partial.pt")
    assert main([command[0], "--checkpoint", "partial.pt", *command[1:]]) == 2
    _one_line_error(capsys, "not a complete resnet-lab checkpoint: missing data_info")
    assert not Path("w.safetensors").exists()


@pytest.mark.parametrize("damage", [{"mean": [0.5, 0.5]}, {"std": [0.25] * 3}, {"image_size": 0}])
@pytest.mark.parametrize("command", [["evaluate"], ["predict", "x.png"], ["export", "--out", "w.safetensors"]])
def test_a_checkpoint_whose_data_info_does_not_fit_its_model_is_refused_as_damaged(command, damage, tmp_path,
                                                                                  monkeypatch, capsys):
    """Two means for a 1-channel model were a RuntimeError/ValueError traceback; an image size of 0 blamed the
    image or an --image-size never given."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("L", (8, 8)).save("x.png")
    info = {**_state()["data_info"], **damage}
    torch.save(_state(data_info=info), "damaged.pt")
    assert main([command[0], "--checkpoint", "damaged.pt", *command[1:]]) == 2
    _one_line_error(capsys, "the file is damaged")
    assert not Path("w.safetensors").exists()


def test_random_or_foreign_checkpoints_are_refused_in_one_clean_line(tmp_path, capsys):
    from resnet_lab.training import load_checkpoint

    (tmp_path / "random.pt").write_bytes(bytes(range(256)) * 8)
    torch.save(_state(), tmp_path / "p4.pt", pickle_protocol=4)  # weights_only refuses it, torch warns first
    for name in ("random.pt", "p4.pt"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(UserError):
                load_checkpoint(tmp_path / name)
        assert caught == []
        assert main(["evaluate", "--checkpoint", str(tmp_path / name)]) == 2
        err = _one_line_error(capsys, "truncated, corrupted or not a resnet-lab checkpoint (")
        assert "torch.load" not in err and "Re-running" not in err
        assert err.endswith("give a last.pt or best.pt that 'resnet-lab train' wrote (the run's other one may still "
                            "load)\n")  # the fix, not only the problem


def test_a_checkpoint_cut_short_under_64_kib_is_refused_in_one_line_not_a_traceback(checkpoint, capsys):
    """A .pt cut short to a few KiB keeps its zip header, and torch's reader then seeks before the file's start:
    an OSError (EINVAL) that was taken for the machine refusing the read and shown as a traceback."""
    from resnet_lab.training import load_checkpoint

    cut = checkpoint.with_name("cut.pt")
    cut.write_bytes(checkpoint.read_bytes()[:20_000])
    with pytest.raises(UserError, match="truncated, corrupted or not a resnet-lab checkpoint"):
        load_checkpoint(cut)
    assert main(["evaluate", "--checkpoint", str(cut)]) == 2
    _one_line_error(capsys, f"checkpoint {cut} is truncated, corrupted or not a resnet-lab checkpoint")


def test_a_device_this_machine_lacks_is_refused_in_one_line(checkpoint, monkeypatch, capsys):
    from resnet_lab.runtime import pick_device

    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--device", "mps"]) == 2
    _one_line_error(capsys, "MPS")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="only 1 CUDA GPU"):
        pick_device("cuda:1")
    assert pick_device("cuda:0") == torch.device("cuda:0")
    for name in ("meta", "cpu:1", "gpu"):
        with pytest.raises(UserError, match="unknown device"):
            pick_device(name)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600)])
def test_atomically_written_files_follow_the_umask_like_any_other(umask, mode, checkpoint, tmp_path):
    from resnet_lab.files import atomic_write_text

    old = os.umask(umask)
    try:
        assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "w.safetensors")]) == 0
        atomic_write_text(tmp_path / "metrics.jsonl", "{}\n")
    finally:
        os.umask(old)
    for name in ("w.safetensors", "metrics.jsonl"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name  # mkstemp gave 0600 whatever the umask


@pytest.mark.parametrize("ci", [None, "1"])
def test_ci_entry_point_sets_ci_true_itself(ci, tmp_path):
    """Unset or spelled 1, CI let the shared-data and browser tests skip silently."""
    (tmp_path / "make").write_text('#!/bin/sh\necho "CI=$CI make $*"\n')
    (tmp_path / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    if ci is not None:
        env["CI"] = ci
    run = Path(__file__).resolve().parent.parent / ".ci" / "run"
    out = subprocess.run(["bash", str(run)], env=env, capture_output=True, text=True, check=True).stdout
    assert out == "CI=true make test\n"


@pytest.mark.parametrize("command", [["degradation", "--depths", "8", "--steps", "1"], ["survey", "--depths", "8"],
                                     ["compare", "resnet8"], ["demo"]])
def test_an_unwritable_out_is_refused_before_any_work(command, tmp_path, capsys):
    """degradation once trained every network, then died on the write with a traceback: results lost."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([*command, "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write --out {blocker / 'out'}: {blocker} is a file, not a folder" in err and err.count("\n") == 1


def test_demo_never_writes_over_another_commands_files(tmp_path, capsys):
    """`demo --out RUN` once replaced a training run's report.html with the demo's."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.html").write_text("the run's report")
    (out / "last.pt").write_text("")
    assert main(["demo", "--out", str(out)]) == 2
    assert "holds files that are not a demo's (last.pt)" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "the run's report"
    from resnet_lab.cli.demo import _check_not_foreign

    (out / "last.pt").unlink()
    (out / "degradation").mkdir()  # an earlier demo, stopped before its demo.json: rewritten, not refused
    _check_not_foreign(out)


@pytest.mark.parametrize("command", [["train", "--model", "resnet8", "--steps", "1"], ["degradation", "--steps", "1"]])
def test_an_out_that_is_a_broken_link_is_named_as_such(command, tmp_path, capsys):
    """mkdir says only "File exists" at a link to nothing: the message once said just that."""
    link = tmp_path / "runs"
    link.symlink_to(tmp_path / "gone")
    assert main([*command, "--out", str(link)]) == 2
    _one_line_error(capsys, f"it is a symbolic link to {tmp_path / 'gone'}, which does not exist or loops")


def test_compare_never_replaces_an_earlier_comparison(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "compare.json").write_text("{}")
    assert main(["compare", "resnet8", "--out", str(out)]) == 2
    assert "already holds the results of an earlier comparison" in capsys.readouterr().err
    assert (out / "compare.json").read_text() == "{}"


@pytest.mark.parametrize("command", [["compare", "resnet8"], ["degradation", "--depths", "8", "--steps", "1"],
                                     ["degradation", "--depths", "8", "--steps", "1", "--jobs", "1"],
                                     ["survey", "--depths", "8", "--steps", "1", "--seeds", "1"],
                                     ["reproduce", "table6", "--depths", "8", "--seeds", "0", "--steps", "1"]])
def test_a_second_experiment_into_a_folder_in_use_is_refused(command, tmp_path, capsys):
    """Two experiments into one --out at once both passed the checks (neither had written yet), both exited
    0, and the last to finish replaced the first's results: its report.html over the other's results.json."""
    from resnet_lab.files import try_lock

    out = tmp_path / "exp"
    out.mkdir()
    fd = try_lock(out)  # what the first command holds while it runs
    try:
        assert main([*command, "--out", str(out)]) == 2
    finally:
        os.close(fd)
    _one_line_error(capsys, f"another command is writing into {out} now")
    assert not any(out.iterdir())
    made = tmp_path / "new" / "exp"  # a folder made for a command that was then refused is removed again
    assert main([*command[:2], "--out", str(made), "--device", "nope"]) == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", [["compare", "resnet8"], ["degradation", "--depths", "8"],
                                     ["degradation", "--depths", "8", "--jobs", "2"],
                                     ["survey", "--depths", "8", "--jobs", "2"]])
def test_an_experiment_never_replaces_another_commands_report(command, tmp_path, capsys):
    """compare --out RUN_DIR replaced the training run's report.html with the comparison's (and the
    experiments with --jobs, which may continue their own earlier call in the folder, still do)."""
    run = tmp_path / "r8"
    run.mkdir()
    (run / "report.html").write_text("the run's report")
    assert main([*command, "--out", str(run)]) == 2
    _one_line_error(capsys, "holds a report.html that is not an earlier")
    assert (run / "report.html").read_text() == "the run's report" and sorted(p.name for p in run.iterdir()) == [
        "report.html"]
