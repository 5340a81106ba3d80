"""The model options shared by every command that builds a model."""

from __future__ import annotations

import argparse

from ..models.choices import ACTIVATIONS, INITS, MODEL_OPTIONS, NORMS, SHORTCUTS


def add_model_options(parser: argparse.ArgumentParser, model_flag: bool = True) -> None:
    group = parser.add_argument_group("model")
    if model_flag:
        group.add_argument("--model", help="model name (default resnet20; see 'resnet-lab models')")
    group.add_argument("--shortcut", choices=SHORTCUTS,
                       help="shortcut option (default: A for CIFAR nets, B for ImageNet nets)")
    group.add_argument("--norm", choices=NORMS, help="normalisation layer (default batch)")
    group.add_argument("--activation", choices=ACTIVATIONS, help="activation (default relu)")
    group.add_argument("--init", choices=INITS, help="weight initialisation (default he)")
    group.add_argument("--zero-init-residual", action="store_true", default=None,
                       help="start each residual branch at zero (its last norm's gamma; with --norm none, "
                            "its last conv); residual nets only")
    group.add_argument("--checkpointing", nargs="?", type=int_between(1, 10_000), const=1, default=None, metavar="K",
                       help="activation checkpointing: store only the input of every K blocks (default 1) and "
                            "recompute the rest in backward (less memory, more compute)")


def int_between(low: int, high: int):
    """An argparse type: an integer from ``low`` to ``high``, refused at parse time with the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer from {low:,} to {high:,}, got {text!r}")
        return value

    return parse


def model_options(args: argparse.Namespace) -> dict:
    """The options given on the command line, to pass to ``create_model``."""
    return {k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k, None) is not None}
