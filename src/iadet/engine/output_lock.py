"""``OUTPUT/.lock``: one training run per output directory, with a dead run's lock taken over."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from iadet.errors import TrainingError


class OutputLock:
    """``OUTPUT/.lock`` held for the run: a second run on the same directory is refused."""

    def __init__(self, output: Path, enabled: bool) -> None:
        self.path = output / ".lock"
        self.enabled = enabled
        self.held = False

    def __enter__(self) -> OutputLock:
        if not self.enabled:
            return self
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.path.read_text(encoding="utf-8", errors="replace").strip()
                host, _, pid = owner.partition(" ")
                if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
                    self.path.unlink(missing_ok=True)  # left behind by a run that was killed
                    continue
                raise TrainingError(
                    f"{self.path.parent}: another run is writing to this directory (lock held by {owner or '?'}); "
                    f"remove {self.path} if that run is gone"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self.held = True
            return self
        raise TrainingError(f"{self.path}: cannot take the output lock")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
