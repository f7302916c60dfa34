"""Tests of the IA training option method.save_attention_every and its recorder (Fig. 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from iadet.config import load_config, method_params
from iadet.config.schema import ModelConfig
from iadet.engine.checkpoint import load_file
from iadet.engine.training_run import train
from iadet.errors import ConfigError
from iadet.modeling.detector import build_model
from iadet.modeling.methods import build_method
from iadet.modeling.methods.inverted_attention import (
    AttentionRecorder,
    AttentionRecording,
    snapshot_attention,
)
from iadet.visualization.attention import roi_attention

from conftest import make_voc, tiny_overrides


def _train(root: Path, out: Path, *extra: str) -> dict:
    overrides = tiny_overrides(root, 5) + [
        "method.name=ia",
        "train.deterministic=true",
        "train.eval_at_end=false",
        "train.checkpoint_every=100",
        *extra,
    ]
    train(load_config(None, overrides), out, quiet=True)
    return load_file(out / "checkpoint.pth")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("evolution")
    root = make_voc(base / "voc", n_train=8, n_test=2)
    recorded = _train(
        root, base / "recorded", "method.save_attention_every=2", "method.save_attention_rois=3"
    )
    plain = _train(root, base / "plain")
    return recorded, plain


@pytest.mark.slow
def test_snapshots_land_in_the_checkpoint(runs) -> None:
    recorded, _ = runs
    state = recorded["method"]["extra"]["attention_evolution"]
    # iterations 0, 2, 4 (every 2) and 4 is also the last of 5: no duplicate
    assert [s["iteration"] for s in state["snapshots"]] == [0, 2, 4]
    assert state["every"] == 2 and state["boxes"].shape == (3, 4) and state["labels"].shape == (3,)
    assert all(im.dtype == torch.uint8 and im.shape[0] == 3 for im in state["images"])
    assert int(state["image_index"].max()) < len(state["images"])
    for snapshot in state["snapshots"]:
        assert snapshot["attention"].shape == (3, 7, 7) and snapshot["probability"].shape == (3,)
        assert ((snapshot["probability"] > 0) & (snapshot["probability"] < 1)).all()
    # the model changes between snapshots, so do the maps
    assert not torch.equal(state["snapshots"][0]["attention"], state["snapshots"][-1]["attention"])


@pytest.mark.slow
def test_recording_does_not_change_training(runs) -> None:
    recorded, plain = runs
    assert plain["method"]["extra"] == {}
    for key, value in plain["model"].items():
        assert torch.equal(value, recorded["model"][key]), key


def test_option_off_hooks_nothing_and_bad_values_are_refused() -> None:
    model = small_model()
    method = build_method(method_params({"name": "ia"}))
    hooks = method.training_hooks(model)
    assert hooks == [] and not model._forward_pre_hooks
    recording = build_method({"name": "ia", "save_attention_every": 2}).training_hooks(model)
    assert [type(h) for h in recording] == [AttentionRecording] and model._forward_pre_hooks
    recording[0].after_train()
    assert not model._forward_pre_hooks
    for bad in ({"save_attention_every": -1}, {"save_attention_rois": 0}):
        with pytest.raises(ConfigError, match="save_attention"):
            build_method(method_params({"name": "ia", **bad}))


def small_model():
    cfg = ModelConfig(
        backbone="tiny",
        min_size=72,
        max_size=96,
        rpn_pre_nms_top_n_train=100,
        rpn_post_nms_top_n_train=50,
        rpn_pre_nms_top_n_test=50,
        rpn_post_nms_top_n_test=20,
        box_batch_size_per_image=16,
    )
    return build_model(cfg, num_classes=3)


def test_recorder_hooks_training_forwards_only_and_restores_its_state() -> None:
    torch.manual_seed(0)
    model = small_model()
    recorder = AttentionRecorder(model, every=3, max_rois=2)
    images = [torch.rand(3, 72, 96), torch.rand(3, 60, 80)]
    targets = [
        {"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])},
        {
            "boxes": torch.tensor([[10.0, 5.0, 50.0, 40.0], [0.0, 0.0, 20.0, 20.0]]),
            "labels": torch.tensor([2, 1]),
        },
    ]
    model.eval()
    model(images)  # an evaluation forward: nothing recorded
    assert recorder.snapshots == []
    model.train()
    for iteration in range(4):
        recorder.start_iteration(iteration, 10)
        model(images, targets)
    assert [s["iteration"] for s in recorder.snapshots] == [0, 3]
    assert recorder.boxes.tolist() == [[4.0, 4.0, 30.0, 30.0], [10.0, 5.0, 50.0, 40.0]]  # the first 2 boxes
    assert recorder.image_index.tolist() == [0, 1] and recorder.labels.tolist() == [1, 2]
    # a snapshot is the attention of those RoIs, as the pictures compute it
    expected = [
        roi_attention(
            model, recorder.images[i].float() / 255, recorder.boxes[i : i + 1], recorder.labels[i : i + 1]
        )
        for i in range(2)
    ]
    snapshot = snapshot_attention(
        model,
        [im.float() / 255 for im in recorder.images],
        recorder.boxes,
        recorder.labels,
        recorder.image_index,
    )
    torch.testing.assert_close(snapshot["attention"], torch.cat([e.attention for e in expected]))
    torch.testing.assert_close(snapshot["probability"], torch.cat([e.probability for e in expected]))

    other = AttentionRecorder(model, every=3, max_rois=2)
    other.load_state_dict(recorder.state_dict())
    assert [s["iteration"] for s in other.snapshots] == [0, 3] and torch.equal(other.boxes, recorder.boxes)
    recorder.remove()
    other.remove()
    assert not model._forward_pre_hooks
