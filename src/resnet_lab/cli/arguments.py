"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def output_path(text: str) -> Path:
    """``--out``: an empty value (an unset shell variable) is refused, not taken for the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a folder or file to write to")
    return Path(text)


def refuse_to_replace(out: Path, results: str, command: str) -> None:
    """An experiment run in one process never replaces an earlier one's results in ``out`` (with
    ``--jobs`` the same command continues its sweep instead, and a changed one is refused there)."""
    from ..errors import UserError

    if (out / results).exists():
        raise UserError(f"{out} already holds the results of an earlier {command} ({results}); give another "
                        f"--out, or delete {out} to run it again (with --jobs the same command continues instead)")
