"""The long fuzz run (``benchmarks/fuzz.sh``) learns how many examples each test tried from here."""

from __future__ import annotations

import os

from fuzz.harness import write_counts


def pytest_sessionfinish(session, exitstatus) -> None:
    log = os.environ.get("IADET_FUZZ_LOG")
    if log:
        write_counts(log)
