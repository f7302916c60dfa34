"""Each rank's share of the training batches, with the position that travels with them (engine/rank_shards.py)."""

from __future__ import annotations

import itertools

import torch
from torch.utils.data import DataLoader, Dataset

from iadet.data.sampler import SampleKey, TrainBatchSampler
from iadet.engine.rank_shards import PositionedSamples, RankShards, collate_positioned

ASPECTS = [0.75, 1.33, 1.0, 0.6, 1.5, 1.2, 0.8, 1.1, 0.9, 1.4, 0.7, 1.25, 1.05]


def _sampler(seed: int = 3) -> TrainBatchSampler:
    return TrainBatchSampler(ASPECTS, batch_size=4, seed=seed)


def _take(shards: RankShards, n: int) -> list:
    return list(itertools.islice(iter(shards), n))


def test_ranks_partition_every_global_batch_and_agree_on_its_position():
    sampler = _sampler()
    world, steps = 2, 2 * len(sampler) + 1  # crosses two epoch boundaries
    per_rank = [_take(RankShards(sampler, 0, 0, rank, world, max_iters=10), steps) for rank in range(world)]
    global_batches = list(itertools.islice(sampler.iterate(0, 0), steps))
    for step, (epoch, batch, indices) in enumerate(global_batches):
        shares = [per_rank[rank][step] for rank in range(world)]
        for share in shares:
            assert {(e, b) for e, b, _ in share} == {(epoch, batch)}
        got = [(key.index, key.flip) for share in shares for _, _, key in share]
        assert sorted(got) == sorted(indices)  # disjoint shares that together are the global batch
        assert len(shares[0]) == len(shares[1]) == len(indices) // world


def test_a_resumed_stream_is_the_tail_of_the_uninterrupted_one():
    sampler = _sampler(seed=11)
    whole = _take(RankShards(sampler, 0, 0, 1, 2, max_iters=20), 3 * len(sampler))
    epoch, batch, _ = whole[len(sampler) + 1][0]
    assert (epoch, batch) == (1, 1)
    resumed = _take(RankShards(sampler, epoch, batch, 1, 2, max_iters=20), len(whole) - len(sampler) - 1)
    assert resumed == whole[len(sampler) + 1 :]


def test_progress_is_the_global_iteration_over_max_iters_and_saturates():
    sampler = _sampler()
    max_iters = len(sampler) + 2
    for step, share in enumerate(_take(RankShards(sampler, 0, 0, 0, 1, max_iters), 2 * len(sampler))):
        for epoch, batch, key in share:
            assert epoch * len(sampler) + batch == step
            assert key.progress == min(step / max_iters, 1.0)


class _IndexDataset(Dataset):
    """``dataset[key]``: an image whose one pixel is the key's index, and a target naming the key."""

    def __len__(self) -> int:
        return len(ASPECTS)

    def __getitem__(self, key: SampleKey):
        return torch.full((1, 1, 1), float(key.index)), {"index": torch.tensor(key.index)}


def test_the_loaded_batch_carries_its_own_position_through_loader_workers():
    sampler = _sampler()
    shards = RankShards(sampler, 1, 1, 0, 1, max_iters=50)
    expected = _take(shards, 5)
    loader = DataLoader(
        PositionedSamples(_IndexDataset()), batch_sampler=shards, collate_fn=collate_positioned, num_workers=2
    )
    for want, (epoch, batch, images, targets) in zip(expected, itertools.islice(loader, 5)):
        assert (epoch, batch) == want[0][:2]
        assert [int(image.item()) for image in images] == [key.index for _, _, key in want]
        assert [int(t["index"]) for t in targets] == [key.index for _, _, key in want]
