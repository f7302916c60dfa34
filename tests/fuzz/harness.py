"""The property every parser of untrusted input is fuzzed for, and the settings of the fuzz tests.

:func:`outcome` calls a parser on one generated input and accepts exactly two endings:

* a result (each test then checks what it can of it: boxes finite and inside the image, ...);
* an :class:`~iadet.errors.IadetError` whose message is one line, of bounded length, naming the file
  (or, for a ``--set`` override, its key): what ``iadet`` prints as ``iadet: error: <message>``.

Anything else fails the example: another exception (the CLI would print ``iadet: internal error``),
a message of several lines or without the culprit, a call that runs longer than :data:`TIMEOUT_S`
(a ``SIGALRM`` interrupts it: a hang), or one that raises the process's peak resident memory by more
than :data:`MEMORY_MIB` (a bomb).

``make test`` runs each fuzz test with a small fixed number of examples (``derandomize=True``: the
same examples on every run, see ``tests/conftest.py``). ``benchmarks/fuzz.sh`` runs the long version:
``IADET_FUZZ_EXAMPLES`` examples per test with random seeds (``--hypothesis-seed``), failures kept in
the Hypothesis database ``IADET_FUZZ_DB`` (replayed first on the next run), and the number of
examples each test tried appended to ``IADET_FUZZ_LOG`` (JSON lines).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from iadet.errors import IadetError

LONG_EXAMPLES = int(os.environ.get("IADET_FUZZ_EXAMPLES", "0"))
"""Examples per test in the long run (``benchmarks/fuzz.sh``); 0: the in-suite count of each test."""
TIMEOUT_S = float(os.environ.get("IADET_FUZZ_TIMEOUT", "5"))
"""Seconds one parser call may take (the hang bound)."""
MEMORY_MIB = 512
"""How far one parser call may raise the process's peak resident memory (the memory bound)."""
MAX_MESSAGE = 600
"""Longest accepted error message (characters): a refused value is shown shortened."""

COUNTS: Counter[str] = Counter()
"""``"<test>:examples"``: examples run; ``"<test>:result"`` / ``"<test>:error"``: how the parser calls ended
(an example may make several calls); written by ``tests/fuzz/conftest.py``."""


def scratch_dir(prefix: str) -> Path:
    """A fresh temporary directory for a fuzz module's files, removed when the process exits (the long run
    writes thousands of examples: nothing may be left behind in the system's temporary directory)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def tried(test: str) -> None:
    """Count one example of ``test`` (call it first in the test's body)."""
    COUNTS[f"{test}:examples"] += 1


def fuzz_settings(examples: int) -> settings:
    """``examples`` fixed examples in the suite; ``IADET_FUZZ_EXAMPLES`` random ones in the long run."""
    quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    if LONG_EXAMPLES:
        db = os.environ.get("IADET_FUZZ_DB")
        return settings(
            max_examples=LONG_EXAMPLES,
            derandomize=False,
            deadline=None,
            database=DirectoryBasedExampleDatabase(db) if db else None,
            suppress_health_check=quiet,
            print_blob=True,
        )
    return settings(
        max_examples=examples, derandomize=True, deadline=None, database=None, suppress_health_check=quiet
    )


class Hang(AssertionError):
    """A parser call ran past :data:`TIMEOUT_S`."""


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextlib.contextmanager
def bounded(what: str) -> Iterator[None]:
    """Fail when the body runs past :data:`TIMEOUT_S` or raises the peak memory by :data:`MEMORY_MIB`."""

    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"{what}: still running after {TIMEOUT_S} s (a hang)")

    before = _peak_rss_mib()
    previous = signal.signal(signal.SIGALRM, alarm)
    started = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, TIMEOUT_S)  # pytest-timeout's alarm, if set
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # give the outer alarm back what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.001))
    grown = _peak_rss_mib() - before
    assert grown < MEMORY_MIB, f"{what}: peak memory grew by {grown:.0f} MiB (bound {MEMORY_MIB} MiB)"


def check_message(message: str, culprits: Iterable[str]) -> None:
    """One line, bounded, naming one of ``culprits`` (a file name, an override's key)."""
    assert message, "an empty error message"
    assert "\n" not in message and "\r" not in message, f"a message of several lines: {message!r}"
    assert len(message) <= MAX_MESSAGE, f"a message of {len(message)} characters: {message[:200]!r}..."
    assert "Traceback" not in message and "internal error" not in message, message
    names = [str(c) for c in culprits if str(c)]
    assert any(name in message for name in names), f"the message names none of {names}: {message!r}"


def outcome(test: str, call: Callable[[], Any], culprits: Iterable[str]) -> Any:
    """``call()``'s result, or None when it raised an :class:`IadetError` that passes :func:`check_message`.

    Any other exception propagates (the example fails, and Hypothesis shrinks it).
    """
    culprits = list(culprits)
    with bounded(test):
        try:
            result = call()
        except IadetError as exc:
            check_message(str(exc), culprits)
            COUNTS[f"{test}:error"] += 1
            return None
    COUNTS[f"{test}:result"] += 1
    return result


def write_counts(path: str | Path) -> None:
    """Append this session's per-test counts (examples; calls that ended in a result / an error) as one JSON line."""
    tests: dict[str, dict[str, int]] = {}
    for key, n in COUNTS.items():
        test, kind = key.rsplit(":", 1)
        tests.setdefault(test, {"examples": 0, "result": 0, "error": 0})[kind] = n
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"seed": os.environ.get("IADET_FUZZ_SEED"), "tests": tests}) + "\n")
