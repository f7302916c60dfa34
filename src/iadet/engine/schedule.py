"""Learning-rate schedule: linear warm-up, then step decay (the papers' 2e-3 -> 2e-4 after 6 of 8 epochs)."""

from __future__ import annotations

import bisect
from collections.abc import Callable

from iadet.config.schema import TrainConfig


def schedule_length(cfg: TrainConfig, iters_per_epoch: int) -> int:
    """Total training iterations: ``train.max_iters`` or ``train.epochs`` x batches per epoch."""
    if cfg.max_iters is not None:
        return int(cfg.max_iters)
    return max(1, round(cfg.epochs * iters_per_epoch))


def milestones(cfg: TrainConfig, iters_per_epoch: int) -> list[int]:
    """Iterations at which the learning rate is multiplied by ``gamma``."""
    scale = 1 if cfg.max_iters is not None else iters_per_epoch
    return sorted(round(step * scale) for step in cfg.lr_steps)


def lr_factor(cfg: TrainConfig, iters_per_epoch: int) -> Callable[[int], float]:
    """``iteration -> lr / base_lr`` for ``torch.optim.lr_scheduler.LambdaLR``."""
    steps = milestones(cfg, iters_per_epoch)
    warmup = max(int(cfg.warmup_iters), 0)

    def factor(iteration: int) -> float:
        decay = cfg.gamma ** bisect.bisect_right(steps, iteration)
        if iteration < warmup:
            alpha = iteration / warmup
            return decay * (cfg.warmup_factor * (1 - alpha) + alpha)
        return decay

    return factor
