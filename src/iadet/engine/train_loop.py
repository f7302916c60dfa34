"""The training loop: a short :meth:`Trainer.run_step` and hooks for everything that varies.

As detectron2's ``SimpleTrainer`` and ``HookBase``. One step is the loop any user of
:func:`iadet.attach` writes::

    epoch, position, images, targets = next(data)           # the sampler's deterministic order
    trains = method.trains_detector(iteration)               # false while ASDN pre-trains
    loss_dict = model(images, targets)                       # the method acts inside roi_heads and
                                                             #   trains its own adversary there
    sum(loss_dict).backward(); optimizer.step()              # AMP-scaled on CUDA; skipped (and the
    scheduler.step()                                         #   forward run without gradients)
                                                             #   while the detector is frozen

and around it ``before_step`` / ``after_step`` of every hook, in order: attention recording,
metrics logging, periodic evaluation, signals and checkpointing (:mod:`iadet.engine.hooks`).
What a hook must keep across a resume it returns from :meth:`HookBase.state_dict`; the trainer
gathers those and the method's own ``state_dict()`` into the checkpoint's ``adversary`` section.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from iadet.engine import distributed as dist
from iadet.modeling.methods import NonFiniteLoss, RoIMethod
from iadet.training_hooks import HookBase

__all__ = ["LoadedBatch", "HookBase", "NonFiniteLoss", "StepResult", "Trainer"]

LoadedBatch = tuple[int, int, list[Tensor], list[dict[str, Tensor]]]
"""``(epoch, batch index within the epoch, images, targets)``."""


@dataclass
class StepResult:
    """What one step computed, for the hooks that run after it.

    ``losses`` are the detector's loss terms (0-dim tensors), ``loss`` their total; ``stats`` the
    method's statistics of the step (:meth:`RoIMethod.statistics`: its own losses, masked fractions
    ..., floats or 0-dim tensors); ``epoch``
    and ``position`` where the step's batch is in the data order *after* it (``position`` counts
    the batches of ``epoch`` done).
    """

    epoch: int
    position: int
    losses: dict[str, Tensor]
    loss: Tensor
    lr: float
    data_time: float
    time: float = 0.0
    stats: dict[str, float | Tensor] = field(default_factory=dict)


class Trainer:
    """Runs ``max_iters - start_iter`` steps of ``model`` on ``data`` with ``hooks``.

    Attributes hooks may read or set: ``iter`` (steps done), ``max_iters``, ``step`` (the last
    :class:`StepResult`), ``trains_detector`` (the method's answer for this step; the detector's
    update is skipped and its forward runs without gradients when false), ``stop_requested``
    (ends the loop after the current step), ``interrupted`` (the loop ended before ``max_iters``).
    """

    def __init__(
        self,
        model: nn.Module,
        method: RoIMethod | None,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        data: Iterator[LoadedBatch],
        *,
        device: torch.device,
        max_iters: int,
        start_iter: int = 0,
        use_amp: bool = False,
        clip_grad_norm: float | None = None,
        hooks: list[HookBase] = (),
    ) -> None:
        self.model, self.method = model, method
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.data = data
        self.device = device
        self.max_iters, self.iter = max_iters, start_iter
        self.use_amp = use_amp
        self.clip_grad_norm = clip_grad_norm
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.hooks: list[HookBase] = []
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)
        self.step: StepResult | None = None
        # the first step whose loss was not finite (-1: none yet) and its loss terms, kept on the
        # device so that a step does not wait for it (see note_finite / check_finite)
        self._first_bad: Tensor | None = None
        self._bad_terms: Tensor | None = None
        self._bad_names: list[str] = []
        self.trains_detector = True
        self.stop_requested = False
        self.interrupted = False

    # --- the loop ---------------------------------------------------------------------------
    def train(self) -> None:
        """Run the steps; hooks' ``after_train`` run even when a step raises."""
        self.model.train()
        for hook in self.hooks:
            hook.before_train()
        try:
            while self.iter < self.max_iters and not self.stop_requested:
                self.trains_detector = self.method is None or self.method.trains_detector(self.iter)
                for hook in self.hooks:
                    hook.before_step()
                self.run_step()
                for hook in self.hooks:
                    hook.after_step()
            self.check_finite()
            self.interrupted = self.stop_requested
        finally:
            for hook in self.hooks:
                hook.after_train()

    def run_step(self) -> None:
        """One iteration: data, forward, the detector's update, the learning-rate schedule."""
        start = time.perf_counter()
        epoch, position, images, targets = next(self.data)
        data_time = time.perf_counter() - start
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = [{k: v.to(self.device, non_blocking=True) for k, v in t.items()} for t in targets]

        grad = contextlib.nullcontext() if self.trains_detector else torch.no_grad()
        with grad, torch.autocast(self.device.type, enabled=self.use_amp):
            losses = self.model(images, targets)
        loss = sum(losses.values())
        self.step = StepResult(
            epoch=epoch,
            position=position + 1,
            losses=losses,
            loss=loss,
            lr=self.optimizer.param_groups[0]["lr"],
            data_time=data_time,
            stats=self.method.raw_statistics() if self.method is not None else {},
        )
        self._note_finite()

        self.optimizer.zero_grad(set_to_none=True)
        if self.trains_detector:
            self.scaler.scale(loss).backward()
            if self.clip_grad_norm:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.params, self.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        with warnings.catch_warnings():
            # the schedule follows the global iteration, also while the detector is frozen
            # (A-Fast-RCNN's ASDN pre-training), where torch warns that no optimizer.step ran
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            self.scheduler.step()
        self.iter += 1
        self.step.time = time.perf_counter() - start

    def _note_finite(self) -> None:
        """Remember, on the device, the first step whose loss is not finite (no synchronisation)."""
        step = self.step
        terms = torch.stack([v.detach().float().reshape(()) for v in step.losses.values()])
        bad = ~torch.isfinite(step.loss.detach().float())
        if self._first_bad is None or self._bad_terms.shape != terms.shape:
            self._first_bad = torch.full((), -1, dtype=torch.int64, device=terms.device)
            self._bad_terms = torch.zeros_like(terms)
            self._bad_names = list(step.losses)
        first = bad & (self._first_bad < 0)
        self._first_bad = torch.where(first, self.iter + 1, self._first_bad)
        self._bad_terms = torch.where(first, terms, self._bad_terms)

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLoss` naming the first step whose loss was not finite, on every rank.

        The one host-device synchronisation of the check: the hooks call it where they read values
        anyway (a logged row, a checkpoint, an evaluation) and the loop at its end, so that no step
        waits for the device only to learn that its loss is finite. A non-finite loss therefore stops
        the run at the next such point, before any checkpoint holds its weights.
        """
        first = int(self._first_bad) if self._first_bad is not None else -1
        if not dist.any_true(first >= 0, self.device):
            return
        if first < 0:
            raise NonFiniteLoss(f"non-finite loss on another process by iteration {self.iter}")
        values = self._bad_terms.tolist()
        terms = ", ".join(f"{k}={v:.4g}" for k, v in zip(self._bad_names, values))
        raise NonFiniteLoss(f"non-finite loss at iteration {first}: {terms}")

    # --- state ------------------------------------------------------------------------------
    def method_state(self) -> dict[str, Any]:
        """The checkpoint's ``method`` section: the method's ``state_dict()`` (its parameters and its
        training state: clock, stage, optimiser) and its hooks' state (``extra``)."""
        method = self.method
        state: dict[str, Any] = {
            "name": method.params.name if method is not None else None,
            "state": method.state_dict() if method is not None else {},
            "extra": {},
        }
        for hook in self.hooks:
            for key, value in hook.state_dict().items():
                if isinstance(value, dict) and isinstance(state.get(key), dict):
                    state[key].update(value)
                else:
                    state[key] = value
        return state

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`method_state` (also the ``adversary`` section of checkpoints before the methods kept their
        own clock and optimiser: ``{"state", "optimizer", "extra"}``)."""
        if not state:
            return
        method = self.method
        if method is not None:
            saved = dict(state["state"])
            if "_extra_state" not in saved:  # an older checkpoint
                saved["_extra_state"] = {
                    **{
                        k: v
                        for k, v in state.get("extra", {}).items()
                        if k in ("stage", "bounds", "schedule")
                    },
                    "optimizer": state.get("optimizer") or {},
                }
            max_iters = method.max_iters
            method.load_state_dict(saved)
            method.max_iters = max_iters  # this run's length (a resume may extend it)
            method.set_iteration(self.iter)
        for hook in self.hooks:
            hook.load_state_dict(state)
