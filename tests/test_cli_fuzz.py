"""Property tests of the CLI's numeric options and model names: whatever a user types, the answer
is either a run that would be valid or exit status 2 with exactly one line on stderr, never a traceback.

``main([...])`` runs in-process. ``train`` never trains: its command is replaced by a dry run that
stops after parsing and ``config_from_args`` (which validates), so every case costs milliseconds.

Generated cases per run: summary options 4 x 40, model names 80, train options 12 x 40: 720 in
all, plus 47 explicit examples (about 20 s on 2 CPU cores). Derandomised: every run tries the same
cases, so CI cannot flake; raise max_examples locally to search further.
"""

from __future__ import annotations

import io
import math
import re
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

import resnet_lab.cli.train as train_cli
from resnet_lab.cli.main import build_parser, main
from resnet_lab.models.registry import MAX_DEPTH

FAST = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# What people type: boundaries, huge and negative numbers, nan/inf/-0, Python-only spellings, words.
NUMBERS = st.one_of(
    st.integers(-3, 300).map(str),
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "Infinity", "-0", "-0.0", "1e309", "0x10", "1_000", " 5 ", "",
                     "five", "1e3", "\u0663", "9" * 5000]),
    st.text(max_size=12),
)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def assert_one_line_refusal(status: int, err: str) -> None:
    assert status == 2, err
    assert err.startswith("resnet-lab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


def parsed(text: str, kind: type):
    """What argparse makes of ``text`` for a ``type=kind`` option, or None where it refuses it."""
    # A value starting with "-" that does not look like a negative number is read as an option.
    if text.startswith("-") and not build_parser()._negative_number_matcher.match(text):
        return None
    try:
        return kind(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------- summary

SUMMARY_RANGES = {"--image-size": (8, 65_536), "--num-classes": (1, 10_000_000), "--in-channels": (1, 100_000),
                  "--checkpointing": (1, 10_000)}  # blocks per recomputed run; 0 once meant "off"


@pytest.mark.parametrize("option", SUMMARY_RANGES)
@FAST
@given(text=NUMBERS)
@example(text="0")  # --image-size 0 once meant "native size" while -5 was refused
@example(text="100000000000000")  # once overflowed torch's shape arithmetic
def test_summary_numeric_options_run_or_are_refused_in_one_line(option, text):
    status, out, err = run_cli(["summary", "resnet8", option, text])
    value, (low, high) = parsed(text, int), SUMMARY_RANGES[option]
    if value is not None and low <= value <= high:
        assert status == 0 and err == "" and "weighted layers 8" in out
    else:
        assert_one_line_refusal(status, err)


# Valid depths stay small (a valid 9998-layer summary takes a minute); past MAX_DEPTH anything goes.
DEPTHS = st.one_of(st.integers(0, 120), st.integers(MAX_DEPTH + 1, 10**40), st.just(6_000_000_000_002))
NAMES = st.one_of(
    st.builds(lambda kind, depth: f"{kind}{depth}",
              st.sampled_from(["resnet", "plain", "preact_resnet", "cifar_resnet"]), DEPTHS),
    st.text(max_size=20),
)


@settings(FAST, max_examples=80)
@given(name=NAMES)
@example(name="resnet6000000000002")  # once grew until MemoryError
@example(name="resnet" + "9" * 5000)  # int() of over 4300 digits is an error of its own
@example(name="resnet21\n")
def test_summary_model_names_run_or_are_refused_in_one_line(name):
    status, out, err = run_cli(["summary", name])
    match = re.fullmatch(r"(?:cifar_)?(?:resnet|plain|preact_resnet)0*(\d+)", name, re.ASCII)
    if match and (len(match.group(1)) > len(str(MAX_DEPTH)) or int(match.group(1)) > MAX_DEPTH):
        assert_one_line_refusal(status, err)
        assert f"{MAX_DEPTH:,} layers" in err
    elif status == 0:
        assert err == "" and f"weighted layers {int(match.group(1))}," in out
    else:
        assert_one_line_refusal(status, err)


# ----------------------------------------------------------------------------- train (parse + validate only)

def finite(low: float, high: float = math.inf, *, high_open: bool = False, low_open: bool = False):
    def ok(v) -> bool:
        return math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    return ok


# option: (argparse type, which parsed values make a valid run). Non-finite floats are never valid:
# inf lr or weight decay turns the weights into NaN at the first step.
TRAIN_OPTIONS = {
    "--epochs": (int, lambda v: v >= 1),
    "--steps": (int, lambda v: v >= 1),
    "--batch-size": (int, lambda v: v >= 1),
    "--lr": (float, finite(0, low_open=True)),
    "--weight-decay": (float, finite(0)),
    "--momentum": (float, finite(0, 1, high_open=True)),
    "--clip-norm": (float, finite(0, low_open=True)),
    "--label-smoothing": (float, finite(0, 1, high_open=True)),
    "--val-split": (int, lambda v: v >= 0),
    "--image-size": (int, lambda v: 8 <= v <= 1024),
    "--rollback-factor": (float, finite(0, 1, low_open=True, high_open=True)),
    "--max-rollbacks": (int, lambda v: v >= 0),
    "--spike-factor": (float, lambda v: v == 0 or finite(1, low_open=True)(v)),
    "--workers": (int, lambda v: v >= 0),
    "--checkpoint-every": (int, lambda v: v >= 0),
}


ROLLBACK_OPTIONS = ("--rollback-factor", "--max-rollbacks", "--spike-factor")


@pytest.fixture(scope="module")
def dry_train():
    """`resnet-lab train` that stops once its config is built and validated; yields the configs built."""
    built = []

    def dry_run(args) -> int:
        built.append(train_cli.config_from_args(args))
        return 0

    with mock.patch.object(train_cli, "run", dry_run):
        yield built


@pytest.mark.parametrize("option", TRAIN_OPTIONS)
@FAST
@given(text=NUMBERS)
@example(text="nan")
@example(text="inf")
@example(text="-0")
def test_train_numeric_options_give_a_valid_config_or_one_line(option, text, dry_train):
    kind, valid = TRAIN_OPTIONS[option]
    policy = ["--on-nonfinite", "rollback"] if option in ROLLBACK_OPTIONS else []  # refused with another policy
    status, _, err = run_cli(["train", "--data", "digits", *policy, option, text])
    value = parsed(text, kind)
    if value is not None and valid(value):
        assert status == 0 and err == "", err
        assert getattr(dry_train[-1], option[2:].replace("-", "_")) == value
    else:
        assert_one_line_refusal(status, err)
