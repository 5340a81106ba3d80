"""The one exception type that means "the user asked for something impossible"."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


class UserError(ValueError):
    """Bad input from the user: the CLI prints the message on one line and exits with status 2.

    The message must say what is wrong and how to fix it. A ``ValueError``, so that library
    callers who catch bad values the usual way catch it too.
    """


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (or its type): the reason in a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def writing(path, flag: str = "--out"):
    """Turn an OSError while writing ``path`` (a folder, a read-only place, a file as parent) into one line."""
    try:
        yield
    except OSError as exc:
        # mkdir under a regular file says only "File exists": name the file in the way instead.
        blocker = next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocker} is a file, not a folder" if blocker else (exc.strerror or type(exc).__name__)
        raise UserError(f"cannot write {flag} {path}: {reason}; choose a path you can write to") from None
