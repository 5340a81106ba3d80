"""SIGINT/SIGTERM as a flag that a loop reads at its own safe points (a step boundary, a poll).

``with StopSignals() as stop:`` installs the handlers (in the main thread only: Python allows
no other) and puts the previous ones back on exit. ``stop.signum`` is the first signal received,
``stop.count`` how many arrived. Elsewhere a command runs under ``sigterm_raises()``, so SIGTERM
stops it as Ctrl-C does, with a line, rather than ending the process without a word.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process was (``sigterm_raises``): what stops cleanly on Ctrl-C does on it too."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextmanager
def sigterm_raises():
    """SIGTERM raises ``Terminated`` in the main thread while this is open (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopSignals:
    def __init__(self):
        self.signum, self.count, self._previous = 0, 0, {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = self.signum or signum
        self.count += 1

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
