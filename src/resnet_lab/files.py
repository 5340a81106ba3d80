"""Writing files so that a kill at any instant never leaves half of one: the ground floor that
checkpoints, run records, reports and benchmark results all write through."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path


def as_path(value, name: str, give: str | None = None) -> Path:
    """A path argument from Python as a ``Path``: anything else (None, a number) is refused in one
    line, not as a TypeError from inside pathlib. With ``give`` (what to give instead), an empty string
    is refused too: ``Path('')`` is the current folder, never what an unset shell variable meant."""
    from .errors import UserError, shown

    if not isinstance(value, (str, os.PathLike)):
        raise UserError(f"{name} is a file or folder path (a str or Path), got {shown(value)}")
    if give is not None and os.fspath(value) == "":
        raise UserError(f"{name} is empty (an unset shell variable?); give {give}")
    return Path(value)


def shell_arg(value: str | Path) -> str:
    """``value`` as typed in a shell command that a message suggests, inside its single quotes
    ('resnet-lab report DIR'): as it is when it needs no quoting, else in double quotes, so that a path
    with spaces can be pasted as it is shown."""
    text = str(value)
    if re.fullmatch(r"[\w@%+=:,./-]+", text):
        return text
    return '"' + re.sub(r'([\\"$`])', r"\\\1", text) + '"'


def runs_inside(folder: Path) -> str | None:
    """For a message about ``folder`` given where one run goes: the run directories (a config.json) one or
    two levels inside it, as a sweep's or an experiment's --out holds them ('give one of them: A, B (and 6
    more)'); None when it holds none."""
    if not folder.is_dir():
        return None
    runs = sorted({str(p.parent) for pattern in ("*/config.json", "*/*/config.json") for p in folder.glob(pattern)})
    if not runs:
        return None
    more = f" (and {len(runs) - 2} more)" if len(runs) > 2 else ""
    sweep = "; a sweep goes on when its command is run again" if (folder / "sweep.json").exists() else ""
    return f"{folder} holds runs, not one: give one of them ({', '.join(runs[:2])}{more}){sweep}"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename over ``path``, fsync the folder.

    A kill at any instant leaves either the old file or the new one, never half of one. An
    ``OSError`` names ``path`` (a failed write, a full disk, names no file of its own).
    """
    try:
        _write_then_rename(Path(path), data)
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _write_then_rename(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0666 so the umask applies as to any other file: mkstemp's 0600 hid runs from a
    # TensorBoard server or a teammate. O_EXCL: never write into someone else's file.
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, value) -> None:
    """Indented JSON, written atomically: a run killed mid-write keeps the previous file."""
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def output_folder(out_dir: str | Path, results: str, what: str, experiment: str | None = None) -> Path:
    """``out_dir`` made (if missing) for an experiment's outputs, ``results`` (its JSON) among them: a
    folder holding no other command's files that the outputs would replace (a training run's or another
    command's ``report.html``; given ``experiment``, another experiment's ``results``). Its own earlier
    outputs are replaced."""
    from .errors import UserError, writing

    out = as_path(out_dir, "out_dir")
    if not str(out_dir).strip():  # Path("") is the current folder: an unset variable would write the outputs there
        raise UserError(f"out_dir is empty ({out_dir!r}); give a folder to write to")
    if (out / "report.html").exists() and not (out / results).exists():
        raise UserError(f"{out} holds a report.html that is not an earlier {what}'s (a training run's or another "
                        "command's), which these outputs would replace; give another out_dir")
    try:
        theirs = json.loads((out / results).read_text()).get("experiment") if experiment else None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        theirs = None  # missing or damaged: nothing worth keeping
    if isinstance(theirs, str) and theirs != experiment:
        raise UserError(f"{out} holds the results of a {theirs} experiment ({results}), which these outputs would "
                        "replace; give another out_dir")
    with writing(out, "out_dir"):
        out.mkdir(parents=True, exist_ok=True)
    return out


def try_lock(path: str | Path) -> int | None:
    """An exclusive lock on ``path`` (a file, created if missing, or a folder: no file is added) for
    as long as the returned descriptor is open, or None while another process holds it. The kernel
    releases it when its holder dies."""
    import fcntl

    fd = os.open(path, os.O_RDONLY) if Path(path).is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
