"""Deterministic, resumable training batches with aspect-ratio grouping.

Epoch ``e``'s batches are a pure function of ``(seed, e)``: a permutation of the images, split
into landscape and portrait groups (as torchvision's ``GroupedBatchSampler``), each batch
filled from one group; the images left over in both groups are batched together. Every batch
has exactly ``batch_size`` images (the remainder of an epoch is dropped, a different one each
epoch), so DDP ranks always get equal shares: rank ``r`` of ``W`` takes images ``r::W`` of
each global batch. Each image comes with its horizontal-flip decision, drawn from the same
generator. Resuming at ``(epoch, batch)`` therefore replays exactly the same data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch

IndexBatch = list[tuple[int, bool]]
"""One batch of the data order: ``(image index, flipped)`` per image."""


class TrainBatchSampler:
    def __init__(
        self,
        aspect_ratios: Sequence[float],
        batch_size: int,
        *,
        seed: int = 0,
        group_by_aspect_ratio: bool = True,
        flip: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if len(aspect_ratios) < batch_size:
            raise ValueError(f"{len(aspect_ratios)} training images are fewer than one batch of {batch_size}")
        self.groups = (
            [int(r >= 1.0) for r in aspect_ratios] if group_by_aspect_ratio else [0] * len(aspect_ratios)
        )
        self.batch_size = batch_size
        self.seed = seed
        self.flip = flip

    def __len__(self) -> int:
        """Batches per epoch."""
        return len(self.groups) // self.batch_size

    def epoch(self, epoch: int) -> list[IndexBatch]:
        """The global batches of ``epoch``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.groups), generator=g).tolist()
        flips = (
            (torch.rand(len(self.groups), generator=g) < 0.5).tolist() if self.flip else [False] * len(order)
        )
        buckets: dict[int, list[int]] = {}
        batches: list[list[int]] = []
        for i in order:
            bucket = buckets.setdefault(self.groups[i], [])
            bucket.append(i)
            if len(bucket) == self.batch_size:
                batches.append(bucket.copy())
                bucket.clear()
        leftover = [i for i in order if any(i in b for b in buckets.values())]
        while len(leftover) >= self.batch_size and len(batches) < len(self):
            batches.append(leftover[: self.batch_size])
            leftover = leftover[self.batch_size :]
        return [[(i, bool(flips[i])) for i in b] for b in batches[: len(self)]]

    def iterate(self, start_epoch: int = 0, start_batch: int = 0) -> Iterator[tuple[int, int, IndexBatch]]:
        """``(epoch, batch index within epoch, global batch)`` forever, from the given position."""
        epoch, first = start_epoch, start_batch
        while True:
            for b, batch in enumerate(self.epoch(epoch)):
                if b >= first:
                    yield epoch, b, batch
            epoch, first = epoch + 1, 0


class SampleKey(NamedTuple):
    """What the training dataset is asked for: the image, its flip, and its augmentation's seed and progress."""

    index: int
    flip: bool
    seed: int
    """Seed of the image-space augmentation's generator (:func:`augmentation_seed`)."""
    progress: float
    """Fraction of the run done at this sample's iteration, in [0, 1] (for augmentations that ramp)."""


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of image ``index``'s augmentation in ``epoch`` of a run seeded ``seed``.

    A pure function of the three (each image appears once per epoch), so an augmentation drawn
    from it is the same in a resumed run, on any rank and in any loader worker.
    """
    return ((seed * 1_000_003 + epoch) * 2_000_003 + index) % (2**63 - 1)


def sample_keys(batch: IndexBatch, seed: int, epoch: int, iteration: int, max_iters: int) -> list[SampleKey]:
    """The :class:`SampleKey` of each image of a batch drawn at ``(epoch, iteration)``."""
    progress = min(iteration / max(max_iters, 1), 1.0)
    return [SampleKey(i, flip, augmentation_seed(seed, epoch, i), progress) for i, flip in batch]


def shard(batch: IndexBatch, rank: int, world_size: int) -> IndexBatch:
    """This rank's share of a global batch."""
    return batch[rank::world_size]
