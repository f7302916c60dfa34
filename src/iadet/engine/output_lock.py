"""``OUTPUT/.lock``: one training run per output directory, with a dead run's lock taken over."""

from __future__ import annotations

import os
from pathlib import Path

from iadet.errors import TrainingError
from iadet.lock_owner import owner_gone, this_process


class OutputLock:
    """``OUTPUT/.lock`` held for the run: a second run on the same directory is refused."""

    def __init__(self, output: Path, enabled: bool) -> None:
        self.path = output / ".lock"
        self.enabled = enabled
        self.held = False

    def __enter__(self) -> OutputLock:
        if not self.enabled:
            return self
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.path.read_text(encoding="utf-8", errors="replace").strip()
                if owner_gone(owner):
                    self.path.unlink(missing_ok=True)  # left behind by a run that was killed
                    continue
                raise TrainingError(
                    f"{self.path.parent}: another run is writing to this directory (lock held by {owner or '?'}); "
                    f"remove {self.path} if that run is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(this_process())
            self.held = True
            return self
        raise TrainingError(f"{self.path}: cannot take the output lock")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
