"""Scalars a model reports during a training step, for the training loop to log.

The convention of detectron2's ``EventStorage``: the loop opens a storage for each step
(``with EventStorage() as storage:``), code deep inside the model calls :func:`put_scalars`, and
the loop reads ``storage.scalars`` when it logs. Outside such a loop (inference, a user's own
training loop) :func:`put_scalars` does nothing, so the model stays a plain torchvision model.
"""

from __future__ import annotations

from collections.abc import Mapping

_STACK: list[EventStorage] = []


class EventStorage:
    """The scalars put during one step, by name (the last value put under a name wins)."""

    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}

    def put_scalars(self, values: Mapping[str, float]) -> None:
        self.scalars.update({k: float(v) for k, v in values.items()})

    def __enter__(self) -> EventStorage:
        _STACK.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _STACK.remove(self)


def current_storage() -> EventStorage | None:
    """The innermost open storage, if any."""
    return _STACK[-1] if _STACK else None


def put_scalars(values: Mapping[str, float]) -> None:
    """Record ``values`` in the open storage; a no-op when none is open."""
    storage = current_storage()
    if storage is not None and values:
        storage.put_scalars(values)
