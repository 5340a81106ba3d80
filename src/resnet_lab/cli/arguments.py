"""Argument types shared by the commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def output_path(text: str) -> Path:
    """``--out``: an empty value (an unset shell variable) is refused, not taken for the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a folder or file to write to")
    return Path(text)


def prepare_output_folder(out: Path, results: str | None = None, what: str = "") -> None:
    """Before any work: ``out`` is a folder this process can write (tried now, then left as it was),
    holding no earlier ``results`` file (an experiment run in one process never replaces an earlier
    one's results; with ``--jobs`` the same command continues its sweep instead, and a changed one
    is refused there)."""
    import tempfile

    from ..errors import UserError, writing

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if results and (out / results).exists():
        raise UserError(f"{out} already holds the results of an earlier {what} ({results}); give another "
                        f"--out, or delete {out} to run it again")
    made = [p for p in (out, *out.parents) if not p.exists()]  # what the probe creates, and removes again
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    for folder in made:  # a refusal later (bad settings) leaves nothing behind; the run makes them again
        folder.rmdir()


def jobs_value(text: str | None) -> int | str | None:
    """``--jobs`` as given on the command line (N or auto; None when absent), for every command that has it."""
    from ..errors import UserError

    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--jobs must be a positive integer or auto, got {text!r}") from None
