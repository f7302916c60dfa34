"""The training loop's own hooks, each against a stand-in trainer (engine/hooks.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch

from iadet.engine.hooks import (
    Checkpointer,
    MetricsLogger,
    PeriodicEvaluation,
    StopOnSignal,
    reduce_statistics,
)
from iadet.engine.metrics import MetricsWriter
from iadet.engine.signals import SignalFlag


class _Trainer(SimpleNamespace):
    """What the hooks read of :class:`iadet.engine.train_loop.Trainer`, and a count of finiteness checks."""

    def __init__(self, max_iters: int) -> None:
        super().__init__(
            iter=0, max_iters=max_iters, device=torch.device("cpu"), stop_requested=False, checks=0
        )
        self.step = SimpleNamespace(
            epoch=0,
            position=0,
            losses={"loss_classifier": torch.tensor(0.25), "loss_box_reg": torch.tensor(0.5)},
            loss=torch.tensor(0.75),
            lr=0.01,
            time=0.1,
            data_time=0.01,
            stats={"asdn_rois": 3, "ia_fraction": torch.tensor(0.5)},
        )

    def check_finite(self) -> None:
        self.checks += 1


def _run(hook, trainer: _Trainer, steps: int) -> None:
    hook.trainer = trainer
    hook.before_train()
    for _ in range(steps):
        trainer.iter += 1
        trainer.step.position = trainer.iter
        hook.after_step()
        if trainer.stop_requested:
            break
    hook.after_train()


def test_checkpointer_saves_every_n_steps_and_the_last():
    saved: list[tuple[int, int, int]] = []
    trainer = _Trainer(max_iters=7)
    _run(Checkpointer(3, lambda *args: saved.append(args)), trainer, 7)
    assert saved == [(3, 0, 3), (6, 0, 6), (7, 0, 7)]
    assert trainer.checks == 3  # never a checkpoint without the finiteness check


def test_checkpointer_saves_when_the_loop_is_asked_to_stop():
    saved: list[int] = []
    trainer = _Trainer(max_iters=100)
    hook = Checkpointer(0, lambda it, epoch, position: saved.append(it))
    hook.trainer = trainer
    trainer.iter = 5
    hook.after_step()
    assert saved == []
    trainer.stop_requested = True
    hook.after_step()
    assert saved == [5]


def test_periodic_evaluation_skips_the_last_step_which_is_the_callers():
    calls: list[int] = []
    _run(PeriodicEvaluation(2, calls.append), _Trainer(max_iters=6), 6)
    assert calls == [2, 4]
    calls.clear()
    _run(PeriodicEvaluation(0, calls.append), _Trainer(max_iters=6), 6)
    assert calls == []


def test_stop_on_signal_ends_the_loop_after_the_step_of_the_signal():
    flag = SignalFlag()
    trainer = _Trainer(max_iters=10)
    hook = StopOnSignal(flag)
    hook.trainer = trainer
    hook.after_step()
    assert not trainer.stop_requested
    flag.signal = 15
    hook.after_step()
    assert trainer.stop_requested


def test_reduce_statistics_without_a_process_group_gives_floats():
    assert reduce_statistics({"asdn_rois": 3, "ia_fraction": torch.tensor(0.5)}, torch.device("cpu")) == {
        "asdn_rois": 3.0,
        "ia_fraction": 0.5,
    }


def test_metrics_logger_writes_a_row_every_log_every_steps_and_at_the_last(tmp_path, capsys):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    trainer = _Trainer(max_iters=5)
    _run(MetricsLogger(writer, 2, quiet=False, description="training none"), trainer, 5)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["iter"] for row in rows] == [2, 4, 5]
    assert rows[0] | {"iter": 0} == {
        "type": "train",
        "iter": 0,
        "epoch": 0,
        "loss": 0.75,
        "loss_classifier": 0.25,
        "loss_box_reg": 0.5,
        "lr": 0.01,
        "time": 0.1,
        "data_time": 0.01,
        "asdn_rois": 3.0,
        "ia_fraction": 0.5,
    }
    printed = capsys.readouterr().out.splitlines()  # not a terminal: printed lines instead of a bar
    assert printed[0] == "training none"
    assert printed[1:] == [f"iter {i}/5 loss 0.7500 lr 1.00e-02 0.100s/it" for i in (2, 4, 5)]
    assert trainer.checks == 3


def test_a_quiet_metrics_logger_prints_nothing_but_still_logs(tmp_path, capsys):
    writer = MetricsWriter(tmp_path, tensorboard=False)
    _run(MetricsLogger(writer, 1, quiet=True, description="training none"), _Trainer(max_iters=3), 3)
    assert capsys.readouterr().out == ""
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3
