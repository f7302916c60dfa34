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
    """A problem with the user's input, reported as one line."""

    exit_code = 2


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
