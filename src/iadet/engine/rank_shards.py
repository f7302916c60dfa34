"""Each rank's share of the training sampler's batches, as the DataLoader's batch sampler, with their position.

The position of a batch in the data order, ``(epoch, batch in epoch)``, is what a checkpoint records to resume
exactly. It travels with the batch's samples (:class:`PositionedSamples`, :func:`collate_positioned`), so the
loop reads it off the loaded batch instead of replaying the sampler beside the loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Dataset

from iadet.data.dataset import collate
from iadet.data.sampler import SampleKey, TrainBatchSampler, sample_keys, shard

PositionedKey = tuple[int, int, SampleKey]
"""``(epoch, batch in epoch, key)``: a sample's key and the position of the batch it belongs to."""


class RankShards:
    """A DataLoader batch sampler: this rank's share of each of the sampler's batches, forever, as
    :class:`SampleKey` objects (image, flip, and the seed and progress of its augmentation), each with the
    batch's position."""

    def __init__(
        self, sampler: TrainBatchSampler, epoch: int, batch: int, rank: int, world: int, max_iters: int
    ) -> None:
        self.sampler, self.epoch, self.batch, self.rank, self.world = sampler, epoch, batch, rank, world
        self.max_iters = max_iters

    def __iter__(self) -> Iterator[list[PositionedKey]]:
        per_epoch = len(self.sampler)
        for e, b, batch in self.sampler.iterate(self.epoch, self.batch):
            keys = sample_keys(batch, self.sampler.seed, e, e * per_epoch + b, self.max_iters)
            yield [(e, b, key) for key in shard(keys, self.rank, self.world)]


class PositionedSamples(Dataset):
    """``dataset[key]`` for a :data:`PositionedKey`, with the position in front: ``(epoch, batch, image, target)``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: PositionedKey) -> tuple[Any, ...]:
        epoch, batch, key = item
        return (epoch, batch, *self.dataset[key])


def collate_positioned(
    samples: list[tuple[Any, ...]],
) -> tuple[int, int, list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``(epoch, batch in epoch, images, targets)`` of one loaded batch (its samples share the position)."""
    epoch, batch = samples[0][0], samples[0][1]
    images, targets = collate([sample[2:] for sample in samples])
    return epoch, batch, images, targets
