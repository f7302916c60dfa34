"""The training loop's hook protocol, :class:`HookBase` (as detectron2's).

It sits below every other layer so that a training method (:mod:`iadet.modeling.methods`) can hand
the loop hook objects of its own (:meth:`~iadet.modeling.methods.RoIMethod.training_hooks`, e.g.
IA's attention recording) without importing the engine. The loop is
:class:`iadet.engine.train_loop.Trainer`; its own hooks are in :mod:`iadet.engine.hooks`.
"""

from __future__ import annotations

from typing import Any


class HookBase:
    """A participant in the training loop; every method is optional.

    ``self.trainer`` is set when the loop registers the hook: it reads ``trainer.iter`` (steps done),
    ``trainer.max_iters``, ``trainer.model``, ``trainer.step`` (the last step's losses and statistics)
    and may set ``trainer.stop_requested``.
    """

    trainer: Any

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """This hook's part of the checkpoint's ``method`` section (``{"extra": {...}}``, ...)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from the checkpoint's ``method`` section."""
