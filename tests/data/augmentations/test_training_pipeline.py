"""The image-space occlusion baselines as ``iadet train`` runs them (their ``erase``, from
``build_image_augmentation``) on hand-made images: what is erased, what is kept, determinism."""

from __future__ import annotations

import pytest
import torch

from iadet.config import method_params
from iadet.data.augmentations import Cutout, GridMask, HideAndSeek, RandomErasing, build_image_augmentation
from iadet.data.augmentations.base import IMAGE_MEAN
from iadet.data.augmentations.random_erasing import erasing_rectangle
from iadet.data.dataset import DetectionDataset
from iadet.data.records import ImageRecord
from iadet.data.sampler import SampleKey, augmentation_seed
from iadet.errors import ConfigError

IMAGE = torch.full((3, 60, 80), 0.9)  # a flat light image: erased pixels are the ones that change
BOX = torch.tensor([[20.0, 10.0, 50.0, 40.0]])


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _changed(out: torch.Tensor) -> torch.Tensor:
    return (out != IMAGE).any(0)


def _params(name: str, **values):
    return method_params({"name": name, **values})


def test_erasing_rectangle_follows_algorithm_1():
    params = _params("random-erasing")
    for seed in range(200):
        top, left, h, w = erasing_rectangle(_g(seed), 60, 80, params)
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 80
        assert 0.02 * 4800 * 0.7 <= h * w <= 0.4 * 4800 * 1.3  # area in [s_l, s_h] (rounding)
        assert 0.3 / 1.5 <= h / w <= (1 / 0.3) * 1.5  # aspect in [r_1, 1/r_1] (rounding)


@pytest.mark.parametrize("seed", range(20))
def test_object_aware_erasing_stays_inside_the_box_and_keeps_it(seed):
    aug = RandomErasing.from_params(
        _params("random-erasing", mode="object", probability=1.0, fill="zero")
    ).erase
    boxes = BOX.clone()
    out = aug(IMAGE, boxes, _g(seed))
    changed = _changed(out)
    assert changed.any()
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert ys.min() >= 10 and ys.max() < 40 and xs.min() >= 20 and xs.max() < 50
    assert torch.equal(boxes, BOX) and torch.equal(out[:, changed], torch.zeros(3, int(changed.sum())))
    assert out.shape == IMAGE.shape and torch.equal(IMAGE, torch.full((3, 60, 80), 0.9))  # input untouched


def test_image_aware_erasing_is_one_rectangle_and_probability_zero_erases_nothing():
    aug = RandomErasing.from_params(
        _params("random-erasing", mode="image", probability=1.0, fill="mean")
    ).erase
    changed = _changed(aug(IMAGE, BOX, _g(1)))
    ys, xs = torch.nonzero(changed, as_tuple=True)
    rect = changed[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert rect.all() and changed.sum() == rect.numel()  # one solid rectangle
    out = aug(IMAGE, BOX, _g(1))
    assert torch.allclose(out[:, changed][:, 0], torch.tensor(IMAGE_MEAN))
    never = RandomErasing.from_params(_params("random-erasing", probability=0.0)).erase
    assert torch.equal(never(IMAGE, BOX, _g(1)), IMAGE)


def test_image_and_object_aware_erases_each_box_independently():
    aug = RandomErasing.from_params(
        _params("random-erasing", mode="object", probability=0.5, fill="zero")
    ).erase
    two = torch.tensor([[0.0, 0.0, 30.0, 30.0], [50.0, 30.0, 80.0, 60.0]])
    hits = torch.zeros(2)
    for seed in range(100):
        changed = _changed(aug(IMAGE, two, _g(seed)))
        hits += torch.tensor([changed[:30, :30].any(), changed[30:, 50:].any()]).float()
    assert 30 < hits[0] < 70 and 30 < hits[1] < 70  # each about half the time


def test_hide_and_seek_hides_whole_grid_cells_with_the_mean():
    aug = HideAndSeek.from_params(_params("hide-and-seek", grid_sizes=[20], hide_prob=0.5)).erase
    out = aug(IMAGE, BOX, _g(0))
    changed = _changed(out)
    cells = changed.view(3, 20, 4, 20).permute(0, 2, 1, 3)  # 3 x 4 cells of 20 x 20
    per_cell = cells.float().mean(dim=(2, 3))
    assert set(per_cell.flatten().tolist()) <= {0.0, 1.0}  # a cell is hidden whole or not at all
    assert 0 < per_cell.sum() < 12
    assert torch.allclose(out[:, changed][:, 0], torch.tensor(IMAGE_MEAN))
    nothing = HideAndSeek.from_params(_params("hide-and-seek", grid_sizes=[0])).erase
    assert torch.equal(nothing(IMAGE, BOX, _g(0)), IMAGE)


def test_hide_and_seek_ragged_border_cells():
    aug = HideAndSeek.from_params(_params("hide-and-seek", grid_sizes=[16], hide_prob=1.0)).erase
    assert _changed(aug(IMAGE, BOX, _g(0))).all()  # 60 x 80 is not a multiple of 16: all covered


def test_cutout_is_one_clipped_square_of_a_third_of_the_shorter_side():
    aug = Cutout.from_params(_params("cutout", fill="zero")).erase
    sizes = set()
    for seed in range(50):
        changed = _changed(aug(IMAGE, BOX, _g(seed)))
        ys, xs = torch.nonzero(changed, as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert changed.sum() == h * w and h <= 20 and w <= 20  # one square, 60 / 3 = 20, maybe clipped
        sizes.add((h, w))
    assert (20, 20) in sizes and len(sizes) > 1  # whole inside, and clipped at the border
    px = Cutout.from_params(_params("cutout", size_px=6, fill="zero")).erase
    assert _changed(px(IMAGE, BOX, _g(3))).sum() <= 36


def test_gridmask_drops_squares_between_kept_stripes():
    aug = GridMask.from_params(
        _params("gridmask", d_min=10, d_max=11, ratio=0.6, probability=1.0, ramp="constant")
    )
    dropped = aug.dropped(60, 80, _g(0))
    # unit 10, stripes ceil(6) = 6 kept: squares of 4 x 4 dropped, 16% of the image
    assert dropped.float().mean() == pytest.approx(0.16, abs=0.03)
    rows = dropped.any(1).nonzero().flatten()
    assert all(((r - rows[0]) % 10) < 4 for r in rows.tolist())
    out = aug.erase(IMAGE, BOX, _g(0))
    assert _changed(out).float().mean() == pytest.approx(0.16, abs=0.03)
    assert torch.allclose(out[:, _changed(out)][:, 0], torch.tensor(IMAGE_MEAN))


def test_gridmask_probability_ramps_with_progress():
    aug = GridMask.from_params(_params("gridmask", probability=0.7))
    assert all(torch.equal(aug.erase(IMAGE, BOX, _g(s), 0.0), IMAGE) for s in range(20))
    applied = sum(not torch.equal(aug.erase(IMAGE, BOX, _g(s), 1.0), IMAGE) for s in range(200))
    assert 110 < applied < 170  # ~0.7 of 200


def test_gridmask_rotation_keeps_the_image_size():
    aug = GridMask.from_params(_params("gridmask", rotate=90, probability=1.0, ramp="constant"))
    assert aug.dropped(60, 80, _g(2)).shape == (60, 80)


@pytest.mark.parametrize("name", ["random-erasing", "hide-and-seek", "cutout", "gridmask"])
def test_same_seed_same_result_other_seed_other_result(name):
    aug = build_image_augmentation(_params(name, **({"ramp": "constant"} if name == "gridmask" else {})))
    outs = [aug(IMAGE, BOX, _g(s), 1.0) for s in range(6)]
    assert torch.equal(outs[0], aug(IMAGE, BOX, _g(0), 1.0))
    assert len({o.sum().item() for o in outs}) > 1


def test_methods_on_roi_features_have_no_image_augmentation():
    for name in ("none", "ia", "asdn", "dropblock"):
        assert build_image_augmentation(_params(name)) is None


def test_bad_values_are_refused_at_load():
    with pytest.raises(ConfigError, match="method.mode"):
        _params("random-erasing", mode="everything")
    with pytest.raises(ConfigError, match="area_min"):
        _params("random-erasing", area_min=0.5, area_max=0.1)
    with pytest.raises(ConfigError, match="method.grid_sizes"):
        _params("hide-and-seek", grid_sizes=[-4])
    with pytest.raises(ConfigError, match="method.fill"):
        _params("cutout", fill="blue")
    with pytest.raises(ConfigError, match="method.d_max"):
        _params("gridmask", d_min=10, d_max=5)


def test_the_dataset_augments_training_samples_from_their_key_only(tmp_path):
    from PIL import Image

    Image.fromarray((torch.full((60, 80, 3), 230, dtype=torch.uint8)).numpy()).save(tmp_path / "a.png")
    record = ImageRecord(
        image_id="a", path=tmp_path / "a.png", width=80, height=60,
        boxes=BOX.numpy().astype("float32"), labels=torch.tensor([1]).numpy(),
        difficult=torch.tensor([False]).numpy(),
    )  # fmt: skip
    aug = build_image_augmentation(_params("cutout"))
    train = DetectionDataset([record], train=True, augment=aug)
    key = SampleKey(0, False, augmentation_seed(0, 3, 0), 0.5)
    image, target = train[key]
    assert _changed_image(image) and torch.equal(image, train[key][0])
    assert torch.equal(target["boxes"], BOX)
    other, _ = train[SampleKey(0, False, augmentation_seed(0, 4, 0), 0.5)]
    assert not torch.equal(image, other)
    clean, _ = DetectionDataset([record], train=False, augment=aug)[0]  # evaluation never augments
    assert not _changed_image(clean)


def _changed_image(image: torch.Tensor) -> bool:
    return bool((image != image[:, :1, :1]).any())


def test_augmentation_seeds_differ_by_run_epoch_and_image():
    seeds = {augmentation_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 3 * 3 * 50
