"""The one exception type that means "the user asked for something impossible"."""

from __future__ import annotations

import functools
import numbers
import os
from contextlib import contextmanager
from pathlib import Path


class UserError(ValueError):
    """Bad input from the user: the CLI prints the message on one line and exits with status 2.

    The message must say what is wrong and how to fix it. A ``ValueError``, so that library
    callers who catch bad values the usual way catch it too.
    """


def shown(value, limit: int = 60) -> str:
    """``value`` for a one-line message: its repr when that is short and on one line; a long string as its start
    and length (a pasted megabyte stays readable); anything else as its kind: a model passed where its name goes
    is 'a ResNet', not the many lines of its repr."""
    text = repr(value)
    if len(text) <= limit and "\n" not in text:
        return text
    if isinstance(value, str):
        return f"{text[:50]}... ({len(value):,} characters)"
    if isinstance(value, (list, tuple)) and value:
        first = ", ".join(shown(v, 30) for v in value[:2])
        return f"a {type(value).__name__} of {len(value)} ({first}{', ...' if len(value) > 2 else ''})"
    return f"a {type(value).__name__}"


def check_positive_int(name: str, value) -> int:
    """``value`` as an int if it is an integer >= 1 (a numpy integer is; a bool is not), else a
    ``UserError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UserError(f"{name} must be a positive integer, got {shown(value)}")
    return int(value)


def is_bool(value) -> bool:
    """True or False, a numpy bool included (``np.True_``, whose type is named ``bool`` from numpy 2 on,
    ``bool_`` before): what a notebook's comparison gives."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"))


def check_bool(name: str, value) -> bool:
    """``value`` as a bool if it is True or False (a numpy bool too), else a ``UserError`` naming ``name``: a
    string such as "no" is true to Python, and would switch on what it was meant to switch off."""
    if not is_bool(value):
        raise UserError(f"{name} must be True or False, got {shown(value)}")
    return bool(value)


def as_python_numbers(value):
    """A numpy scalar or array as the Python numbers it holds (in a list or tuple too); anything else as it is."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(as_python_numbers(v) for v in value)
    return value


def numpy_scalars_as_numbers(function):
    """Call ``function`` with numpy scalars and arrays (``np.int64(8)``, ``np.float32(0.1)``,
    ``np.arange(3)``, a list of them) turned into the Python ints and floats they hold: a notebook's
    computed values then pass the checks ints and floats pass, and the result stays JSON-ready."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*map(as_python_numbers, args), **{k: as_python_numbers(v) for k, v in kwargs.items()})
    return wrapper


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (or its type): the reason in a one-line error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def why_not_writable(path, exc: OSError) -> str:
    """Why ``path`` could not be written, in words: mkdir says only "File exists" under a file or at
    a broken symbolic link."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return f"it is a symbolic link to {os.readlink(path)}, which does not exist or loops"
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    return f"{blocker} is a file, not a folder" if blocker else (exc.strerror or type(exc).__name__)


@contextmanager
def writing(path, flag: str = "--out"):
    """Turn an OSError while writing ``path`` (a folder, a read-only place, a file as parent) into one line."""
    try:
        yield
    except OSError as exc:
        raise UserError(f"cannot write {flag} {path}: {why_not_writable(path, exc)}; choose a path you can "
                        "write to") from None
