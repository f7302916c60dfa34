"""SIGINT and SIGTERM during a training run: a flag the loop reads after each step (so that the run
stops at a step's end and checkpoints), and an exception for the phases that must stop at once.

:class:`~iadet.engine.hooks.StopOnSignal` is the loop hook that reads the flag (over every DDP rank).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from iadet.errors import TrainingError


class Interrupted(TrainingError):
    """SIGINT/SIGTERM during a phase that stops at once instead of at the end of a step (evaluation);
    the exit status is ``128 + signal``, as a shell reports a process killed by it."""

    def __init__(self, signum: int, message: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")


class SignalFlag:
    """Turns SIGINT/SIGTERM into a flag (installed for a whole run, set-up included); a second
    SIGINT stops at once, and so does any signal inside :meth:`immediate` (an evaluation)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}
        self.raise_now = False

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT and not self.raise_now:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal = signum
        if self.raise_now:
            self.raise_now = False
            raise Interrupted(signum)

    @contextlib.contextmanager
    def immediate(self) -> Iterator[None]:
        """Inside, a signal raises :class:`Interrupted` at once (as does one already received):
        for phases that cannot stop at a step's end and checkpoint, such as an evaluation."""
        if self.signal is not None:
            raise Interrupted(self.signal)
        self.raise_now = True
        try:
            yield
        finally:
            self.raise_now = False

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
