"""The learning-rate schedule: its length, its milestones and the factor LambdaLR applies (engine/schedule.py)."""

from __future__ import annotations

import pytest
import torch

from iadet.config.schema import TrainConfig
from iadet.engine.schedule import lr_factor, milestones, schedule_length


def test_epochs_set_the_length_and_milestones_in_epochs():
    cfg = TrainConfig(epochs=8, lr_steps=[6.0], max_iters=None)
    assert schedule_length(cfg, iters_per_epoch=125) == 1000
    assert milestones(cfg, iters_per_epoch=125) == [750]  # the papers' decay after 6 of 8 epochs
    assert schedule_length(TrainConfig(epochs=0.001, max_iters=None), iters_per_epoch=10) == 1  # never empty


def test_max_iters_overrides_epochs_and_milestones_are_then_iterations():
    cfg = TrainConfig(epochs=8, max_iters=1500, lr_steps=[1125, 1400])
    assert schedule_length(cfg, iters_per_epoch=125) == 1500
    assert milestones(cfg, iters_per_epoch=125) == [1125, 1400]


def test_warm_up_is_linear_from_warmup_factor_to_one():
    cfg = TrainConfig(max_iters=1000, lr_steps=[800], warmup_iters=100, warmup_factor=0.001, gamma=0.1)
    factor = lr_factor(cfg, iters_per_epoch=50)
    assert factor(0) == pytest.approx(0.001)
    assert factor(50) == pytest.approx(0.001 * 0.5 + 0.5)
    assert factor(100) == 1.0 and factor(799) == 1.0


def test_decay_applies_from_each_milestone_on():
    cfg = TrainConfig(max_iters=1000, lr_steps=[900, 600], warmup_iters=0, gamma=0.1)  # unsorted on purpose
    factor = lr_factor(cfg, iters_per_epoch=50)
    assert [factor(i) for i in (599, 600, 899, 900, 999)] == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.01])


def test_a_milestone_inside_the_warm_up_decays_the_warm_up_too():
    cfg = TrainConfig(max_iters=100, lr_steps=[10], warmup_iters=20, warmup_factor=0.5, gamma=0.1)
    factor = lr_factor(cfg, iters_per_epoch=10)
    assert factor(10) == pytest.approx(0.1 * (0.5 * 0.5 + 0.5))


def test_lambda_lr_follows_the_factor():
    cfg = TrainConfig(max_iters=10, lr_steps=[6], warmup_iters=4, warmup_factor=0.25, gamma=0.5)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.02)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, iters_per_epoch=5))
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    factor = lr_factor(cfg, iters_per_epoch=5)
    assert seen == pytest.approx([0.02 * factor(i) for i in range(10)])
    assert (
        seen[0] == pytest.approx(0.005) and seen[5] == pytest.approx(0.02) and seen[6] == pytest.approx(0.01)
    )
