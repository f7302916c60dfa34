"""The training loop and its hooks on a toy model: seconds, no detector.

:class:`iadet.engine.train_loop.Trainer` runs ``model(images, targets) -> loss dict``, sums it,
steps the optimiser (unless the method freezes the detector), ticks the scheduler, and calls each
hook's ``before_step`` / ``after_step`` in order; what a hook keeps goes to the checkpoint's
method section and comes back.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from iadet.engine.train_loop import HookBase, NonFiniteLoss, Trainer
from iadet.modeling.methods import RoIMethod


class Toy(nn.Module):
    """A loss dict as a detector returns it: ``loss_a = (w x - y)^2``, ``loss_b = |w|`` (x from the batch)."""

    def __init__(self, nan_at: int | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0]))
        self.calls = 0
        self.nan_at = nan_at

    def forward(self, images, targets):
        self.calls += 1
        x = torch.stack(images).mean()
        a = (self.w * x - 1.0).pow(2).sum()
        if self.nan_at is not None and self.calls == self.nan_at:
            a = a * math.nan
        return {"loss_a": a, "loss_b": self.w.abs().sum()}


def data():
    """Endless batches ``(epoch, position, images, targets)``, 4 per epoch."""
    step = 0
    while True:
        images = [torch.full((1,), float(step % 3 + 1))]
        yield step // 4, step % 4, images, [{}]
        step += 1


class Recorder(HookBase):
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log, self.restored = name, log, None

    def before_train(self) -> None:
        self.log.append((self.name, "before_train", self.trainer.iter))

    def before_step(self) -> None:
        self.log.append((self.name, "before_step", self.trainer.iter))

    def after_step(self) -> None:
        self.log.append((self.name, "after_step", self.trainer.iter))

    def after_train(self) -> None:
        self.log.append((self.name, "after_train", self.trainer.iter))

    def state_dict(self) -> dict[str, Any]:
        return {"extra": {self.name: self.trainer.iter}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.restored = state["extra"][self.name]


class FreezesAt(RoIMethod):
    """A method whose steps in ``frozen`` freeze the detector (as ASDN pre-training does)."""

    def __init__(self, frozen: set[int]) -> None:
        super().__init__()
        self.frozen = frozen

    def detector_frozen_at(self, iteration: int) -> bool:
        return iteration in self.frozen


def trainer(model: nn.Module, hooks=(), method=None, max_iters: int = 6, start_iter: int = 0) -> Trainer:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0 if i < 3 else 0.1)
    return Trainer(
        model,
        method,
        optimizer,
        scheduler,
        torch.amp.GradScaler("cpu", enabled=False),
        data(),
        device=torch.device("cpu"),
        max_iters=max_iters,
        start_iter=start_iter,
        hooks=list(hooks),
    )


def test_steps_hooks_in_order_and_the_update_is_sgd_on_the_summed_dict():
    log: list = []
    model = Toy()
    t = trainer(model, [Recorder("a", log), Recorder("b", log)], max_iters=3)
    w = model.w.item()
    expected = []
    for step in range(3):  # plain SGD on loss_a + loss_b, by hand
        x, lr = float(step % 3 + 1), 0.1
        w -= lr * (2 * (w * x - 1.0) * x + math.copysign(1.0, w))
        expected.append(w)
    t.train()
    assert model.w.item() == pytest.approx(expected[-1], rel=1e-6)
    assert log[:2] == [("a", "before_train", 0), ("b", "before_train", 0)]
    assert log[2:6] == [
        ("a", "before_step", 0),
        ("b", "before_step", 0),
        ("a", "after_step", 1),
        ("b", "after_step", 1),
    ]
    assert log[-2:] == [("a", "after_train", 3), ("b", "after_train", 3)]
    assert t.iter == 3 and not t.interrupted
    assert set(t.step.losses) == {"loss_a", "loss_b"} and t.step.epoch == 0 and t.step.position == 3


def test_the_scheduler_follows_the_iterations_and_a_stop_ends_after_the_step():
    model = Toy()

    class StopAt(HookBase):
        def after_step(self) -> None:
            self.trainer.stop_requested = self.trainer.iter == 4

    t = trainer(model, [StopAt()], max_iters=10)
    t.train()
    assert t.iter == 4 and t.interrupted and model.calls == 4
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # past the step at 3


def test_a_frozen_step_moves_nothing_and_the_clock_still_ticks():
    model = Toy()
    method = FreezesAt({1, 2})
    weights = []

    class Watch(HookBase):
        def after_step(self) -> None:
            weights.append((self.trainer.trains_detector, model.w.item()))

    trainer(model, [Watch()], method=method, max_iters=4).train()
    assert [trains for trains, _ in weights] == [True, False, False, True]
    assert weights[1][1] == weights[0][1] == weights[2][1] != weights[3][1]


def test_a_non_finite_loss_stops_at_the_next_check_naming_its_iteration():
    model = Toy(nan_at=3)
    t = trainer(model, max_iters=6)
    with pytest.raises(NonFiniteLoss, match=r"non-finite loss at iteration 3: loss_a=nan, loss_b="):
        t.train()
    assert t.iter == 6  # no hook read a value before the end: the check came there

    class EveryStep(HookBase):
        def after_step(self) -> None:
            self.trainer.check_finite()

    t = trainer(Toy(nan_at=2), [EveryStep()], max_iters=6)
    with pytest.raises(NonFiniteLoss, match="iteration 2"):
        t.train()
    assert t.iter == 2


def test_what_hooks_keep_goes_to_the_checkpoint_and_comes_back():
    log: list = []
    first = trainer(Toy(), [Recorder("a", log)], method=RoIMethod(), max_iters=2)
    first.train()
    state = first.method_state()
    assert state["extra"] == {"a": 2} and state["name"] == "none" and "_extra_state" in state["state"]
    hook = Recorder("a", log)
    resumed = trainer(Toy(), [hook], method=RoIMethod(), max_iters=4, start_iter=2)
    resumed.load_method_state(state)
    assert hook.restored == 2 and resumed.method.iteration == 2
