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
    # A-Fast-RCNN Table 1: VGG baseline/ASTN/ASDN/full + ResNet baseline/full; Table 3: 2
    assert sum(n.startswith("ia_t4_") for n in names) == 12
    assert sum(n.startswith("ia_t5_") for n in names) == 2
    assert sum(n.startswith("ia_t6_") for n in names) == 12
    assert sum(n.startswith("afast_t1_") for n in names) == 6
    assert sum(n.startswith("afast_t3_") for n in names) == 2


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
    assert re.search(r"Table \d", header)
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
