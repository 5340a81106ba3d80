"""The command line: subcommands, JSON output, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from resnet_lab.cli.main import COMMANDS, main


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


def test_models_json_has_the_documented_keys(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"resnet18", "resnet1202", "plain110", "preact_resnet1001"}
    assert all(set(r) == {"name", "family", "layers", "params", "gflops"} for r in rows)
    r50 = next(r for r in rows if r["name"] == "resnet50")
    assert r50["params"] == 25_557_032 and r50["layers"] == 50 and r50["gflops"] == pytest.approx(8.18, rel=0.01)


def test_summary_prints_stages_with_shapes(capsys):
    assert main(["summary", "resnet56"]) == 0
    out = capsys.readouterr().out
    assert "layer3" in out and "64x8x8" in out and "853,018" in out


@pytest.mark.parametrize("argv,fragment", [
    (["summary", "resnet21"], "6n+2"),
    (["summary", "resnt56"], "did you mean"),
    (["summary", "resnet20", "--norm", "layer"], "invalid choice"),
    (["models", "--nope"], "unrecognized arguments"),
])
def test_bad_input_prints_one_line_and_exits_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_debug_flag_shows_the_traceback():
    with pytest.raises(Exception, match="6n\\+2"):
        main(["--debug", "summary", "resnet21"])


def test_python_dash_m_runs_the_cli_and_exits_2_on_bad_input():
    out = subprocess.run([sys.executable, "-m", "resnet_lab", "summary", "resnet20"],
                         capture_output=True, text=True, check=True).stdout
    assert "269,722" in out
    bad = subprocess.run([sys.executable, "-m", "resnet_lab", "summary", "resnet21"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("resnet-lab: error:")


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("resnet-lab")
    out = subprocess.run([str(script), "summary", "plain20"], capture_output=True, text=True, check=True).stdout
    assert "plain20" in out and "269,722" in out
