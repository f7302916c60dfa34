"""Each rank's share of the training sampler's batches, as the DataLoader's batch sampler."""

from __future__ import annotations

from iadet.data.sampler import TrainBatchSampler, sample_keys, shard


class RankShards:
    """A DataLoader batch sampler: this rank's share of each of the sampler's batches, forever, as
    :class:`SampleKey` objects (image, flip, and the seed and progress of its augmentation)."""

    def __init__(
        self, sampler: TrainBatchSampler, epoch: int, batch: int, rank: int, world: int, max_iters: int
    ) -> None:
        self.sampler, self.epoch, self.batch, self.rank, self.world = sampler, epoch, batch, rank, world
        self.max_iters = max_iters

    def __iter__(self):
        per_epoch = len(self.sampler)
        for e, b, batch in self.sampler.iterate(self.epoch, self.batch):
            keys = sample_keys(batch, self.sampler.seed, e, e * per_epoch + b, self.max_iters)
            yield shard(keys, self.rank, self.world)
