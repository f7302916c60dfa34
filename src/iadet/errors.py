"""User-facing errors.

Every problem caused by the user's input (a broken annotation, a missing file, an unknown
config key, a truncated checkpoint, ...) is raised as an :class:`IadetError` whose message is
one line naming the culprit. The CLI prints it as ``iadet: error: <message>`` and exits with
status 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class IadetError(Exception):
    """A problem with the user's input, reported as one line.

    The message is kept on one line whatever it quotes from a file (a class name holding a line end,
    an override with a carriage return): control characters and line separators are shown escaped
    (:func:`printable`).
    """

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (printable(args[0]), *args[1:])
        super().__init__(*args)


class ConfigError(IadetError):
    """An unknown config key, a value of the wrong type, an unknown method name."""


class DataError(IadetError):
    """A dataset problem: broken XML, missing image, bad box, unknown class, ..."""


class CheckpointError(IadetError):
    """A truncated checkpoint, or one that does not fit the model."""


class OutputError(IadetError):
    """An output path that cannot be written: an existing file where a directory goes, a read-only directory."""


class TrainingError(IadetError):
    """Training cannot go on (a non-finite loss, a locked output directory, ...)."""

    exit_code = 1


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def printable(text: str) -> str:
    """``text`` with every non-printable character (line ends, tabs, NUL, U+2028, ...) escaped as
    ``repr`` would show it, so that it stays on one line of a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def reason(exc: BaseException, limit: int = 120) -> str:
    """The first line of ``exc``'s message (its type name when empty), cut to ``limit`` characters, with
    control characters escaped: a third-party reader's message may quote bytes of the file, and the
    error it goes into must stay one line."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
