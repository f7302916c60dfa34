import torch

from iadet.data.dataset import DetectionDataset
from iadet.data.sampler import TrainBatchSampler, shard
from iadet.data.voc import open_voc


def test_epochs_are_deterministic_and_differ():
    s = TrainBatchSampler([1.5] * 10 + [0.7] * 7, 4, seed=3)
    assert s.epoch(0) == TrainBatchSampler([1.5] * 10 + [0.7] * 7, 4, seed=3).epoch(0)
    assert s.epoch(0) != s.epoch(1)
    assert len(s) == 17 // 4 and all(len(b) == 4 for b in s.epoch(0))


def test_batches_group_by_aspect_ratio_and_cover_distinct_images():
    ratios = [1.5] * 12 + [0.5] * 12
    s = TrainBatchSampler(ratios, 4, seed=0)
    for epoch in range(3):
        batches = s.epoch(epoch)
        seen = [i for b in batches for i, _ in b]
        assert len(seen) == len(set(seen)) == 24
        for b in batches:
            groups = {ratios[i] >= 1 for i, _ in b}
            assert len(groups) == 1


def test_iterate_resumes_at_position():
    s = TrainBatchSampler([1.0] * 9, 2, seed=1)
    full = [x for _, x in zip(range(10), s.iterate())]
    resumed = [x for _, x in zip(range(5), s.iterate(start_epoch=full[5][0], start_batch=full[5][1]))]
    assert resumed == full[5:10]


def test_flip_decisions_are_part_of_the_plan():
    s = TrainBatchSampler([1.0] * 40, 4, seed=0)
    flips = [f for b in s.epoch(0) for _, f in b]
    assert 0 < sum(flips) < len(flips)
    assert not any(f for b in TrainBatchSampler([1.0] * 40, 4, flip=False).epoch(0) for _, f in b)


def test_shard_splits_global_batch():
    batch = [(0, False), (1, True), (2, False), (3, True)]
    assert shard(batch, 0, 2) + shard(batch, 1, 2) == [(0, False), (2, False), (1, True), (3, True)]


def test_dataset_flip_and_difficult(shared_voc):
    ds = open_voc(shared_voc, "trainval")
    record = ds.records[0]
    record.difficult[:] = [True, False]
    train = DetectionDataset(ds.records, train=True)
    image, target = train[0]
    assert image.shape == (3, record.height, record.width) and image.dtype == torch.float32
    assert len(target["boxes"]) == 1  # difficult left out of training
    keep_all = DetectionDataset(ds.records, train=True, use_difficult=True)[0][1]
    assert len(keep_all["boxes"]) == 2
    flipped_image, flipped = train[(0, True)]
    assert torch.equal(flipped_image, image.flip(-1))
    x1, _, x2, _ = target["boxes"][0].tolist()
    assert flipped["boxes"][0, 0].item() == record.width - x2
    assert flipped["boxes"][0, 2].item() == record.width - x1
    record.difficult[:] = False
