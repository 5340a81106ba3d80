"""Argument types and option groups shared by the commands."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ..data.choices import DATA_SETS, IN_MEMORY_DATA_SETS


def output_path(text: str) -> Path:
    """``--out``: an empty value (an unset shell variable) is refused, not taken for the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty (an unset shell variable?); give a folder or file to write to")
    return Path(text)


def add_data_options(parser: argparse.ArgumentParser, in_memory: bool = False) -> None:
    """``--data`` and ``--data-dir``, for every command that trains on a data set of the user's choice
    (``in_memory``: one held in memory, not an image folder)."""
    g = parser.add_argument_group("data")
    g.add_argument("--data", help=f"{IN_MEMORY_DATA_SETS if in_memory else DATA_SETS} (default digits)")
    g.add_argument("--data-dir", help="cache folder for downloaded data sets")


def prepare_output_folder(out: Path, results: str | None = None, what: str = "",
                          continuing: Path | None = None, experiment: str | None = None) -> None:
    """Before any work: ``out`` is a folder this process can write (tried now, then left as it was),
    holding no earlier ``results`` file (an experiment run in one process never replaces an earlier
    one's results; with ``continuing``, ``--jobs``' sweep folder, the same command continues that
    sweep instead, and a changed one is refused there: only results made from a sweep there, and, given
    ``experiment``, results whose ``experiment`` is that one), nor, given ``results``, another command's
    ``report.html``."""
    import json
    import tempfile

    from ..errors import UserError, writing

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if results and (out / "config.json").exists():  # the run's own report and files would mix with the results
        raise UserError(f"--out {out} is a training run's folder; give the {what} a folder of its own")
    ours = bool(results) and (out / results).exists()
    if ours and experiment:
        try:
            theirs = json.loads((out / results).read_text()).get("experiment")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            theirs = None  # damaged: nothing worth keeping, written again from the sweep's runs
        if isinstance(theirs, str) and theirs != experiment:
            raise UserError(f"{out} holds the results of a {theirs} experiment ({results}), which this {what} "
                            "would replace; give another --out")
    if ours and not (continuing is not None and (continuing / "sweep.json").exists()):
        how = " in one process (without --jobs: it has no sweep to continue)" if continuing is not None else ""
        raise UserError(f"{out} already holds the results of an earlier {what} ({results}){how}; give another "
                        f"--out, or delete {out} to run it again")
    if results and not ours and (out / "report.html").exists():  # written after the results: another command's
        raise UserError(f"{out} holds a report.html that is not an earlier {what}'s (a training run's or another "
                        f"command's), which this one would replace; give another --out")
    with _folders_made(out), writing(out):  # a refusal later (bad settings) leaves nothing behind
        tempfile.TemporaryFile(dir=out).close()


@contextlib.contextmanager
def _folders_made(out: Path):
    """``out`` made (with its parents) for the time of the block; the folders it made that are left empty go
    again at its end, deepest first (one with files in it stays, and so do those above it)."""
    from ..errors import writing

    made = [p for p in (out, *out.parents) if not p.exists()]
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    try:
        yield
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break


@contextlib.contextmanager
def output_folder_held(out: Path | None, what: str):
    """``out`` locked (``flock`` on the folder) for the whole command: two experiments into one folder at once
    both passed ``prepare_output_folder``'s checks, both exited 0, and the last to finish replaced the first's
    results (report.html of one, results.json of the other, in between). The second is now refused in one
    line. A folder it made and that is left empty (a refusal) is removed again. Taken before the checks."""
    import os

    from ..errors import UserError
    from ..files import try_lock

    if out is None or (out.exists() and not out.is_dir()):  # no folder, or a file: the checks say what is wrong
        yield
        return
    with _folders_made(out):
        fd = try_lock(out)
        if fd is None:
            raise UserError(f"another command is writing into {out} now (it holds the folder's lock); wait for it "
                            f"to end, or give the {what} another --out")
        try:
            yield
        finally:
            os.close(fd)


def jobs_value(text: str | None) -> int | str | None:
    """``--jobs`` as given on the command line (N or auto; None when absent), for every command that has it."""
    from ..errors import UserError

    if text is None or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--jobs must be a positive integer or auto, got {text!r}") from None


def copy_train_options(parser: argparse.ArgumentParser, title: str, *, only=(), exclude=(),
                       several: bool = False) -> list[str]:
    """`train`'s options (those in ``only``, else all but ``exclude``, by dest) on ``parser`` under
    ``title``, with train's own flags, choices, types and help; with ``several``, those taking one
    value take several here. Returns their dests (also the parser's default ``train_dests``)."""
    from .main import _Parser
    from .train import register as register_train

    train = _Parser(prog="train").add_subparsers(parser_class=_Parser)
    register_train(train)
    group = parser.add_argument_group(title)
    copied = []
    for action in train.choices["train"]._actions:
        if not action.option_strings or (action.dest not in only if only else action.dest in exclude):
            continue
        kwargs = dict(dest=action.dest, default=action.default, help=action.help, metavar=action.metavar)
        if isinstance(action, argparse._StoreAction):
            kwargs.update(type=action.type, choices=action.choices, const=action.const,
                          nargs="+" if several and action.nargs is None else action.nargs)
        else:  # flags (store_true/false, --[no-]cuda-graph): one value for every run
            kwargs.update(action=type(action))
            kwargs.pop("metavar")
        flags = action.option_strings
        if isinstance(action, argparse.BooleanOptionalAction):  # it adds the --no- form itself
            flags = [f for f in flags if not f.startswith("--no-")]
        group.add_argument(*flags, **kwargs)
        copied.append(action.dest)
    parser.set_defaults(train_dests=copied)
    return copied
