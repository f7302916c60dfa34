"""Fast R-CNN on precomputed proposals: scaling with the image, flipping with it, no RPN, the proposal
file read in training and evaluation, and a clear failure for a missing image id."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection.transform import resize_boxes

from iadet.cli import main
from iadet.config import load_config
from iadet.config.schema import ModelConfig
from iadet.data.dataset import DetectionDataset
from iadet.data.proposals import Proposals, save_proposals
from iadet.data.voc import open_voc
from iadet.engine.inference import predict
from iadet.errors import ConfigError
from iadet.modeling.detector import build_model
from iadet.modeling.fast_rcnn import FastRCNN

from conftest import read_jsonl, tiny_overrides

TINY = ModelConfig(
    backbone="tiny", detector="fast_rcnn", min_size=64, max_size=96, box_batch_size_per_image=16
)


def grid_proposals(width: int, height: int, step: int = 12, size: int = 24) -> np.ndarray:
    """Dense square proposals: enough for the toy objects to be found."""
    boxes = [
        (x, y, min(x + s, width - 1), min(y + s, height - 1))
        for s in (size, 2 * size)
        for y in range(0, height - 8, step)
        for x in range(0, width - 8, step)
    ]
    return np.asarray(boxes, np.float32)


def write_proposals(root: Path, path: Path, skip: str | None = None) -> Path:
    boxes = {}
    for split in ("trainval", "test"):
        for r in open_voc(root, split).records:
            if r.image_id != skip:
                boxes[r.image_id] = grid_proposals(r.width, r.height)
    return save_proposals(boxes, path)


def test_no_rpn_parameters_and_faster_rcnn_keys_otherwise():
    fast = build_model(TINY, 3)
    faster = build_model(replace(TINY, detector="faster_rcnn"), 3)
    assert isinstance(fast, FastRCNN)
    assert [k for k in faster.state_dict() if not k.startswith("rpn.")] == list(fast.state_dict())
    assert not hasattr(fast, "rpn")


def test_proposals_are_scaled_like_the_image_capped_and_clipped():
    model = build_model(replace(TINY, rpn_post_nms_top_n_test=3), 3).eval()
    boxes = torch.tensor(
        [[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 99.0, 49.0], [50.0, 10.0, 60.0, 12.0], [1, 1, 2, 2]]
    )
    out = model.prepare_proposals([boxes], [(50, 100)], [(64, 128)])[0]
    expected = resize_boxes(boxes[:3], [50, 100], [64, 128])
    torch.testing.assert_close(out, expected.clamp(max=torch.tensor([128.0, 64.0, 128.0, 64.0])))
    model.train()
    assert len(model.prepare_proposals([boxes], [(50, 100)], [(64, 128)])[0]) == 4  # training keeps 2000


def test_eval_detections_come_from_the_given_proposals():
    """One proposal per image: at most one detection per class, each regressed from it."""
    torch.manual_seed(0)
    model = build_model(replace(TINY, box_score_thresh=0.0), 3).eval()
    image = torch.rand(3, 60, 80)
    with torch.no_grad():
        one = model([image], proposals=[torch.tensor([[10.0, 10.0, 40.0, 40.0]])])[0]
        many = model([image], proposals=[torch.from_numpy(grid_proposals(80, 60))])[0]
    assert 1 <= len(one["boxes"]) <= 2  # two classes
    assert len(many["boxes"]) > 2
    with pytest.raises(ConfigError, match="needs precomputed proposals"):
        model([image])


def test_proposals_flip_with_the_image(voc_root: Path):
    split = open_voc(voc_root, "trainval")
    record = split.records[0]
    boxes = np.array([[0, 0, 10, 20], [5, 5, 60, 40]], np.float32)
    dataset = DetectionDataset(
        split.records, train=True, proposals=Proposals({record.image_id: boxes}).for_record
    )
    _, plain = dataset[(0, False)]
    _, flipped = dataset[(0, True)]
    width = record.width
    for key in ("boxes", "proposals"):
        a, b = plain[key], flipped[key]
        torch.testing.assert_close(b[:, [0, 2]], width - a[:, [2, 0]])
        torch.testing.assert_close(b[:, [1, 3]], a[:, [1, 3]])


@pytest.mark.slow
def test_train_and_evaluate_on_a_proposal_file(shared_voc: Path, tmp_path: Path):
    proposals = write_proposals(shared_voc, tmp_path / "grid.npz")
    out = tmp_path / "run"
    args = ["train", "--config", "quick", "--output", str(out), "--quiet"]
    for o in [
        *tiny_overrides(shared_voc, 3),
        "model.detector=fast_rcnn",
        f"data.proposals={proposals}",
        "method.name=ia",
    ]:
        args += ["--set", o]
    assert main(args) == 0
    rows = [r for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert len(rows) == 3 and "loss_objectness" not in rows[0]
    assert all(np.isfinite(r["loss"]) for r in rows)
    summary = json.loads((out / "eval.json").read_text())
    assert 0.0 <= summary["mAP"] <= 1.0


def test_missing_image_id_fails_clearly(voc_root: Path, tmp_path: Path, capsys):
    missing = open_voc(voc_root, "trainval").records[3].image_id
    proposals = write_proposals(voc_root, tmp_path / "p.npz", skip=missing)
    args = ["train", "--config", "quick", "--output", str(tmp_path / "run"), "--quiet"]
    for o in [*tiny_overrides(voc_root, 2), "model.detector=fast_rcnn", f"data.proposals={proposals}"]:
        args += ["--set", o]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"no proposals for image '{missing}' of split trainval" in err
    assert str(proposals) in err


def test_fast_rcnn_without_a_proposal_file_is_a_config_error(voc_root: Path, tmp_path: Path):
    config = load_config("quick", [*tiny_overrides(voc_root, 2), "model.detector=fast_rcnn"])
    from iadet.engine.training_run import train

    with pytest.raises(ConfigError, match="needs data.proposals=FILE"):
        train(config, tmp_path / "run", quiet=True)


def test_predict_checks_every_test_image_has_proposals(voc_root: Path, tmp_path: Path):
    split = open_voc(voc_root, "test")
    model = build_model(TINY, 3)
    with pytest.raises(ConfigError, match="needs precomputed proposals"):
        predict(model, split, torch.device("cpu"), num_workers=0)
    partial = Proposals(
        {r.image_id: grid_proposals(r.width, r.height) for r in split.records[1:]}, source="p.pkl"
    )
    with pytest.raises(
        Exception, match=f"no proposals for image '{split.records[0].image_id}' of split test"
    ):
        predict(model, split, torch.device("cpu"), num_workers=0, proposals=partial)
    full = Proposals({r.image_id: grid_proposals(r.width, r.height) for r in split.records})
    predictions = predict(model, split, torch.device("cpu"), num_workers=0, proposals=full)
    assert set(predictions) == {r.image_id for r in split.records}
