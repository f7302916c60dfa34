"""End-to-end tests of ``iadet visualize``: each picture is a PNG of the size its layout gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from iadet.cli import main
from iadet.config import load_config
from iadet.engine.training_run import train
from iadet.visualization import attention
from iadet.visualization.heatmaps import HEADER_HEIGHT, LABEL_WIDTH, PAD, TITLE_HEIGHT

from conftest import make_voc, tiny_overrides

pytestmark = pytest.mark.slow


def expected_size(rows: int, columns: int, tile: int) -> tuple[int, int]:
    return LABEL_WIDTH + columns * (tile + PAD) + PAD, TITLE_HEIGHT + HEADER_HEIGHT + rows * (
        tile + PAD
    ) + PAD


def png(path: Path) -> Image.Image:
    assert path.is_file() and path.stat().st_size > 1000
    image = Image.open(path)
    assert image.format == "PNG"
    return image


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("visualize-cli")
    root = make_voc(base / "voc", n_train=8, n_test=3)
    for name, extra in (
        ("none", []),
        ("ia", ["method.name=ia", "method.save_attention_every=2", "method.save_attention_rois=3"]),
    ):
        overrides = tiny_overrides(root, 4) + ["train.eval_at_end=false", *extra]
        train(load_config(None, overrides), base / name, quiet=True)
    return base, root


def test_attention_two_checkpoints_on_ground_truth_objects(runs, tmp_path: Path) -> None:
    base, root = runs
    args = ["visualize", "attention", "--checkpoint", str(base / "none" / "model_final.pth")]
    args += ["--checkpoint", str(base / "ia" / "checkpoint.pth"), "--split", "test", "--data", str(root)]
    args += ["--max-images", "1", "--objects", "2", "--size", "48", "--output", str(tmp_path)]
    assert main(args) == 0
    (path,) = tmp_path.glob("attention_*.png")
    # per object: baseline attention + inverted, IA attention = 3 rows; RoI + 4 channels + overall
    assert png(path).size == expected_size(2 * 3, 6, 48)


def test_attention_on_detections_of_an_image(runs, tmp_path: Path, monkeypatch) -> None:
    base, root = runs

    def fake_detect(model, image, *, score_thresh, max_objects):
        assert image.shape == (3, 72, 96) and max_objects == 3
        return torch.tensor([[2.0, 3.0, 40.0, 30.0]]), torch.tensor([2]), torch.tensor([0.9])

    monkeypatch.setattr(attention, "detect", fake_detect)
    image = root / "JPEGImages" / "000008.jpg"
    args = ["visualize", "attention", "--checkpoint", str(base / "ia" / "model_final.pth"), str(image)]
    args += ["--channels", "2", "--output", str(tmp_path)]
    assert main(args) == 0
    assert png(tmp_path / "attention_000008.png").size == expected_size(2, 4, 112)


def test_strategies(runs, tmp_path: Path) -> None:
    base, root = runs
    args = [
        "visualize",
        "strategies",
        "--checkpoint",
        str(base / "ia" / "model_final.pth"),
        "--split",
        "test",
    ]
    args += ["--data", str(root), "--max-images", "2", "--size", "64", "--output", str(tmp_path)]
    assert main(args) == 0
    paths = sorted(tmp_path.glob("strategies_*.png"))
    assert len(paths) == 2
    for path in paths:
        assert png(path).size == expected_size(2, 6, 64)  # two objects per toy image


def test_evolution(runs, tmp_path: Path) -> None:
    base, _ = runs
    assert main(["visualize", "evolution", "--run", str(base / "ia"), "--output", str(tmp_path)]) == 0
    # 3 RoIs; the RoI crop and the snapshots of iterations 0, 2 and 3 (the last)
    assert png(tmp_path / "evolution.png").size == expected_size(3, 4, 96)
    args = ["visualize", "evolution", "--run", str(base / "ia" / "checkpoint.pth"), "--columns", "2"]
    assert main([*args, "--size", "40", "--output", str(tmp_path / "two")]) == 0
    assert png(tmp_path / "two" / "evolution.png").size == expected_size(3, 3, 40)


def test_evolution_without_snapshots_says_how_to_record_them(runs, tmp_path: Path, capsys) -> None:
    base, _ = runs
    assert main(["visualize", "evolution", "--run", str(base / "none"), "--output", str(tmp_path)]) == 2
    assert "method.save_attention_every" in capsys.readouterr().err
