"""Who holds a lock file: ``host pid``, written by the holder, and whether that process still runs.

Both of iadet's lock files use it: the output directory's (:mod:`iadet.engine.output_lock`) and the built-in
data and weights cache's (:func:`iadet.data.catalog.make_once`).
"""

from __future__ import annotations

import os
import socket


def this_process() -> str:
    """The owner text of a lock taken by this process: ``"host pid"``."""
    return f"{socket.gethostname()} {os.getpid()}"


def owner_gone(owner: str) -> bool | None:
    """Whether the process an owner text names has ended.

    True: it names a process of this host that no longer runs (killed, crashed); False: that process runs, or
    may (another user's, a number too large to be a process id); None: the text names no process of this host
    (another host, a partial or broken file), so only the caller's own rule (a lock's age, or none) can tell.
    """
    host, _, pid = owner.strip().partition(" ")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False
