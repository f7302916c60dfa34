"""Every YAML in configs/ loads; each paper row names its table and published number and uses the zoo."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torchvision
import yaml

from iadet.config import load_config
from iadet.modeling.backbones import BACKBONES, IMAGENET_WEIGHTS
from iadet.modeling.methods import method_names

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ALL = sorted(CONFIGS.rglob("*.yaml"))
ROWS = sorted(CONFIGS.glob("*.yaml"))


def test_there_is_a_config_per_row():
    names = {p.stem for p in ROWS}
    # IA Table 4: 6 settings x (baseline, IA); Table 5: 1 x 2; Table 6: 6 x 2;
    # A-Fast-RCNN Table 1: AlexNet and VGG baseline/ASTN/ASDN/full + ResNet baseline/full; Table 2:
    # random dropout, hard dropout, fixed ASDN (its FRCN* and joint rows are Table 1's AlexNet
    # baseline and ASDN) and Sec. 5.2.1's jitter for AlexNet and VGG16; Table 3: 2; COCO (Sec. 5.3): 2
    assert sum(n.startswith("ia_t4_") for n in names) == 12
    assert sum(n.startswith("ia_t5_") for n in names) == 2
    assert sum(n.startswith("ia_t6_") for n in names) == 12
    assert sum(n.startswith("afast_t1_") for n in names) == 10
    assert sum(n.startswith("afast_t2_") for n in names) == 5
    assert sum(n.startswith("afast_t3_") for n in names) == 2
    assert sum(n.startswith("afast_coco_") for n in names) == 2


AFAST_ALEXNET = {
    # file stem: (method, published mAP) of A-Fast-RCNN's Tables 1 and 2, AlexNet on VOC2007 test
    "afast_t1_fast_alexnet_07_baseline": ("none", "57.0"),
    "afast_t1_fast_alexnet_07_astn": ("astn", "58.1"),
    "afast_t1_fast_alexnet_07_asdn": ("asdn", "58.5"),
    "afast_t1_fast_alexnet_07_full": ("asdn+astn", "58.9"),
    "afast_t2_fast_alexnet_07_random-dropout": ("random-dropout", "57.3"),
    "afast_t2_fast_alexnet_07_hard-dropout": ("hard-dropout", "57.7"),
    "afast_t2_fast_alexnet_07_fixed-asdn": ("fixed-asdn", "57.5"),
    "afast_t2_fast_alexnet_07_jitter": ("jitter", "57.3"),
}


@pytest.mark.parametrize("stem", sorted(AFAST_ALEXNET))
def test_afast_alexnet_rows(stem: str):
    path = CONFIGS / f"{stem}.yaml"
    config = load_config(str(path))
    method, published = AFAST_ALEXNET[stem]
    assert config.model.backbone == "alexnet" and config.model.detector == "fast_rcnn"
    assert config.method.name == method
    assert f"published {published} mAP" in path.read_text().splitlines()[0]
    assert (config.train.max_iters, config.train.lr_steps, config.train.lr) == (80000, [60000], 0.001)


def test_afast_vgg16_jitter_row():
    config = load_config(str(CONFIGS / "afast_t2_fast_vgg16_07_jitter.yaml"))
    assert (config.model.backbone, config.method.name) == ("vgg16", "jitter")


@pytest.mark.parametrize(
    "variant,method,ap,ap50", [("baseline", "none", "25.7", "42.7"), ("full", "asdn+astn", "27.1", "46.2")]
)
def test_afast_coco_rows(variant: str, method: str, ap: str, ap50: str):
    """Sec. 5.1/5.3: VGG16 Fast R-CNN, trainval35k / minival, 320k iterations, lr 1e-3 -> 1e-4 at 280k,
    2 images x 128 RoIs, proposals from a file; AP and AP50 published."""
    path = CONFIGS / f"afast_coco_fast_vgg16_minival_{variant}.yaml"
    config = load_config(str(path))
    assert (config.model.backbone, config.model.detector, config.method.name) == (
        "vgg16",
        "fast_rcnn",
        method,
    )
    assert (config.data.format, config.data.train_split, config.data.test_split) == (
        "coco",
        "train2017",
        "val2017",
    )
    assert config.data.proposals
    train = config.train
    assert (train.max_iters, train.lr_steps, train.lr, train.gamma) == (320000, [280000], 0.001, 0.1)
    assert (train.batch_size, config.model.box_batch_size_per_image) == (2, 128)
    assert config.eval.metric == "coco"
    first = path.read_text().splitlines()[0]
    assert f"published {ap} AP" in first and f"{ap50} AP50" in first


@pytest.mark.parametrize("path", ALL, ids=[str(p.relative_to(CONFIGS)) for p in ALL])
def test_config_loads(path: Path):
    config = load_config(str(path))
    assert config.model.backbone in BACKBONES
    assert config.method.name in method_names()
    if config.model.detector == "fast_rcnn":
        assert config.data.proposals


@pytest.mark.parametrize("path", ROWS, ids=[p.stem for p in ROWS])
def test_row_names_its_published_number_and_matches_its_file_name(path: Path):
    text = path.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert re.search(r"Table \d|Sec\. \d", header)
    assert re.search(r"published \d+\.\d (mAP|AP)", header), header
    assert f"--config configs/{path.name}" in header
    config = load_config(str(path))
    method = config.method.name
    assert (method == "none") == path.stem.endswith("_baseline")
    detector = path.stem.split("_")[2]
    assert config.model.detector == f"{detector}_rcnn"
    if "_0712_" in path.stem:
        assert config.data.train_split == "VOC2007/trainval+VOC2012/trainval"
    if "_07pp12_" in path.stem:
        assert config.data.train_split == "VOC2007/trainval+VOC2007/test+VOC2012/trainval"
    raw = yaml.safe_load(text)
    assert "_base_" in raw


@pytest.mark.parametrize("path", ROWS, ids=[p.stem for p in ROWS])
def test_imagenet_weights_are_torchvision_names_or_a_documented_file(path: Path):
    config = load_config(str(path))
    weights = config.model.backbone_weights
    assert weights, "the papers start from ImageNet weights"
    expected = IMAGENET_WEIGHTS[config.model.backbone]
    if expected is None:  # ResNeXt-101 32x4d: a converted local file, explained in the header
        assert weights.endswith(".pth") and "--set model.backbone_weights=" in path.read_text()
    else:
        assert weights == expected
        torchvision.models.get_weight(weights)  # a real torchvision name (nothing is downloaded)
