"""``iadet visualize asdn`` (A-Fast-RCNN Fig. 3) on an ASDN trained a few iterations on the toy data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from iadet.cli import main
from iadet.config import load_config
from iadet.engine.loading import load_detector
from iadet.engine.training_run import train
from iadet.modeling.methods.asdn import hardest_windows
from iadet.modeling.methods.probes import gt_probabilities, pool_rois
from iadet.visualization.asdn import load_adversary
from iadet.visualization.heatmaps import HEADER_HEIGHT, LABEL_WIDTH, PAD, TITLE_HEIGHT

from conftest import make_voc, tiny_overrides

pytestmark = pytest.mark.slow


def expected_size(rows: int, columns: int, tile: int) -> tuple[int, int]:
    width = LABEL_WIDTH + columns * (tile + PAD) + PAD
    return width, TITLE_HEIGHT + HEADER_HEIGHT + rows * (tile + PAD) + PAD


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("visualize-asdn")
    root = make_voc(base / "voc", n_train=8, n_test=3)
    stages = ["method.warmup_iters=1", "method.pretrain_iters=2"]
    for name, extra in (("asdn", ["method.name=asdn", *stages]), ("none", [])):
        train(
            load_config(None, tiny_overrides(root, 4) + ["train.eval_at_end=false", *extra]),
            base / name,
            quiet=True,
        )
    return base, root


def test_figure_three_of_a_trained_asdn(runs, tmp_path: Path) -> None:
    base, root = runs
    out = tmp_path / "fig3"
    checkpoint = str(base / "asdn" / "model_final.pth")  # the ASDN is found in checkpoint.pth beside it
    assert main(["visualize", "asdn", "--checkpoint", checkpoint, "--split", "test", "--objects", "2",
                 "--max-images", "2", "--size", "64", "--output", str(out)]) == 0  # fmt: skip
    pictures = sorted(out.glob("asdn_*.png"))
    assert len(pictures) == 2
    for picture in pictures:
        width, height = Image.open(picture).size
        assert (width, height) in {expected_size(rows, 4, 64) for rows in (1, 2)}


def test_the_loaded_asdn_is_the_trained_one_and_the_window_is_the_hardest(runs) -> None:
    base, _ = runs
    model, cfg = load_detector(base / "asdn" / "checkpoint.pth")
    method = load_adversary(base / "asdn" / "checkpoint.pth", model, cfg)
    saved = torch.load(base / "asdn" / "checkpoint.pth", weights_only=True)["method"]["state"]
    assert all(torch.equal(v, method.state_dict()[k]) for k, v in saved.items() if k != "_extra_state")
    image = torch.rand(3, 64, 80)
    boxes, labels = torch.tensor([[4.0, 6.0, 40.0, 50.0]]), torch.tensor([1])
    features = pool_rois(model, [image], [boxes])
    window, p_min = hardest_windows(features, labels, model.roi_heads.score_fn, method.windows(7, 7))
    for w in method.windows(7, 7):  # no window leaves a lower probability
        p = gt_probabilities(features * (~w).float(), labels, model.roi_heads.score_fn)
        assert p_min <= p + 1e-6


def test_a_run_without_asdn_is_refused_in_one_line(runs, tmp_path: Path, capsys) -> None:
    base, _ = runs
    code = main(["visualize", "asdn", "--checkpoint", str(base / "none" / "model_final.pth"), "--split", "test",
                 "--output", str(tmp_path / "o")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and "has no ASDN" in err and "Traceback" not in err
