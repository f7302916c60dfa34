"""The training loop's own hooks (:class:`~iadet.training_hooks.HookBase`), in the order they run:
:class:`MetricsLogger`, :class:`PeriodicEvaluation`, :class:`StopOnSignal`, :class:`Checkpointer`.

A method trains itself (its clock, its stages, its adversary: :mod:`iadet.modeling.methods.base`);
what it needs of the loop besides, it hands over as hook objects of its own
(:meth:`~iadet.modeling.methods.RoIMethod.training_hooks`: IA's attention recording), which run first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from iadet.engine import distributed as dist
from iadet.engine.metrics import MetricsWriter
from iadet.engine.signals import SignalFlag
from iadet.training_hooks import HookBase

# ----------------------------------------------------------------------------------------------
# what every run has


COUNT_STATS = frozenset({"asdn_rois", "ohem_rois"})
"""Method statistics that count RoIs: summed over DDP ranks (the others are averaged)."""


def reduce_statistics(stats: dict[str, Any], device: torch.device) -> dict[str, float]:
    """A method's statistics of one step over the DDP ranks: the mean of each scalar over the ranks
    that have it (the sum for :data:`COUNT_STATS`), as floats. One gather of the names and one
    all-reduce; without a process group, just the floats."""
    if not dist.is_distributed():
        return {k: float(v) for k, v in stats.items()}
    names = sorted(set().union(*dist.all_gather_object(sorted(stats))))
    values = torch.zeros(2, len(names), dtype=torch.float64, device=device)
    for i, name in enumerate(names):
        if name in stats:
            values[0, i] = float(stats[name])
            values[1, i] = 1.0
    torch.distributed.all_reduce(values)
    return {
        name: float(total if name in COUNT_STATS else total / max(count, 1.0))
        for name, total, count in zip(names, values[0].tolist(), values[1].tolist())
    }


class MetricsLogger(HookBase):
    """Every ``log_every`` steps (and the last), one ``metrics.jsonl`` row: the loss terms and the
    method's statistics over DDP ranks (:func:`reduce_statistics`), the learning rate and timings;
    a tqdm bar on a terminal, a printed line otherwise (unless ``quiet``)."""

    def __init__(self, writer: MetricsWriter, log_every: int, *, quiet: bool, description: str) -> None:
        self.writer = writer
        self.log_every = max(log_every, 1)
        self.quiet = quiet
        self.description = description
        self.show_bar = dist.is_main() and not quiet and sys.stdout.isatty()
        self.bar: tqdm | None = None

    def before_train(self) -> None:
        t = self.trainer
        self.bar = tqdm(
            total=t.max_iters,
            initial=t.iter,
            desc="train",
            unit="it",
            disable=not self.show_bar,
            dynamic_ncols=True,
        )
        if dist.is_main() and not self.quiet and not self.show_bar:
            print(self.description, flush=True)

    def after_step(self) -> None:
        t, step = self.trainer, self.trainer.step
        self.bar.update(1)
        if t.iter % self.log_every and t.iter != t.max_iters:
            return
        t.check_finite()  # no row of a failed run
        if t.device.type == "cuda":
            torch.cuda.synchronize(t.device)
        terms = {"loss": step.loss, **step.losses}
        names = list(terms)
        # under DDP, log the mean over ranks (the loss of the whole global batch)
        values = dist.all_reduce_mean(torch.stack([terms[k].detach().float() for k in names])).tolist()
        stats = reduce_statistics(step.stats, t.device)
        row = {
            "type": "train",
            "iter": t.iter,
            "epoch": step.epoch,
            **dict(zip(names, values)),
            "lr": step.lr,
            "time": step.time,
            "data_time": step.data_time,
            **stats,
        }
        self.writer.log(row)
        self.bar.set_postfix(loss=f"{row['loss']:.3f}", refresh=False)
        if dist.is_main() and not self.quiet and not self.show_bar:
            print(
                f"iter {t.iter}/{t.max_iters} loss {row['loss']:.4f} lr {row['lr']:.2e} {step.time:.3f}s/it",
                flush=True,
            )

    def after_train(self) -> None:
        if self.bar is not None:
            self.bar.close()


class PeriodicEvaluation(HookBase):
    """Calls ``evaluate(iteration)`` every ``every`` steps before the last (the last is the caller's)."""

    def __init__(self, every: int, evaluate: Callable[[int], Any]) -> None:
        self.every = every
        self.evaluate = evaluate

    def after_step(self) -> None:
        t = self.trainer
        if self.every and t.iter % self.every == 0 and t.iter < t.max_iters:
            t.check_finite()
            self.evaluate(t.iter)


class StopOnSignal(HookBase):
    """Ends the loop after the step during which SIGINT/SIGTERM arrived (on any DDP rank)."""

    def __init__(self, flag: SignalFlag) -> None:
        self.flag = flag

    def after_step(self) -> None:
        t = self.trainer
        if dist.any_true(self.flag.signal is not None, t.device):
            t.stop_requested = True


class Checkpointer(HookBase):
    """Writes the training checkpoint (atomically, through ``save``) every ``every`` steps, at the
    last step and when the loop is asked to stop; ``save(iteration, epoch, position)``. The saver
    refuses weights that are not finite (see the trainer), keeping the last good checkpoint."""

    def __init__(self, every: int, save: Callable[[int, int, int], None]) -> None:
        self.every = every
        self.save = save

    def after_step(self) -> None:
        t, step = self.trainer, self.trainer.step
        if t.stop_requested or (self.every and t.iter % self.every == 0) or t.iter >= t.max_iters:
            t.check_finite()  # never the weights of a step whose loss was not finite
            self.save(t.iter, step.epoch, step.position)
