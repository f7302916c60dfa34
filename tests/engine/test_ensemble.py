"""Ensembles (A-Fast-RCNN Sec. 5.4): a model with itself is the model; two hand-set Fast R-CNNs average
to the known probabilities and boxes; Faster R-CNNs score the pooled proposals; `iadet eval` and
`iadet predict` with repeated --checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from iadet.cli import main
from iadet.config import load_config
from iadet.config.config import save_config
from iadet.config.schema import ModelConfig
from iadet.engine.ensemble import EnsembleDetector, load_ensemble
from iadet.errors import ConfigError
from iadet.modeling.detector import build_model

from conftest import CLASSES, make_voc, tiny_overrides

TINY = dict(
    backbone="tiny",
    min_size=64,
    max_size=96,
    rpn_pre_nms_top_n_test=60,
    rpn_post_nms_top_n_test=30,
    box_score_thresh=0.0,  # random weights score low: keep everything for the comparison
)


def _model(detector: str = "faster_rcnn", seed: int = 0, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(detector=detector, **{**TINY, **kw}), 3).eval()


def _images() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.rand(3, 72, 96, generator=g), torch.rand(3, 60, 80, generator=g)]


def _proposals() -> list[torch.Tensor]:
    base = torch.tensor(
        [[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 90.0, 60.0], [0.0, 0.0, 70.0, 55.0], [50.0, 20.0, 75.0, 45.0]]
    )
    return [base.clone(), base[:3].clamp(max=59.0)]


def _sorted(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detections in a canonical order (score, then label, then box), so equal sets compare equal."""
    keys = torch.cat([out["scores"][:, None], out["labels"][:, None].float(), out["boxes"]], 1)
    order = sorted(range(len(keys)), key=lambda i: tuple((-keys[i]).tolist()))
    order = torch.tensor(order, dtype=torch.int64)
    return out["boxes"][order], out["scores"][order], out["labels"][order]


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x["scores"]) == len(y["scores"]) > 0
        bx, sx, lx = _sorted(x)
        by, sy, ly = _sorted(y)
        torch.testing.assert_close(sx, sy, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bx, by, atol=1e-3, rtol=1e-5)
        assert torch.equal(lx, ly)


@pytest.mark.parametrize("detector", ["faster_rcnn", "fast_rcnn"])
def test_an_ensemble_of_a_model_with_itself_is_the_model(detector: str):
    model = _model(detector)
    ensemble = EnsembleDetector([model, model]).eval()
    kwargs = {"proposals": _proposals()} if detector == "fast_rcnn" else {}
    with torch.inference_mode():
        alone = model(_images(), **kwargs)
        both = ensemble(_images(), **kwargs)
    _assert_same(both, alone)
    assert ensemble.needs_proposals == (detector == "fast_rcnn")
    assert {"boxes", "labels", "scores"} == set(both[0])


def _hand_set(model: torch.nn.Module, probabilities: list[float], deltas: dict[int, list[float]]) -> None:
    """Constant outputs for every RoI: class probabilities ``probabilities`` and, per class, raw
    regression ``deltas`` (torchvision's, i.e. already times the coder weights 10, 10, 5, 5)."""
    predictor = model.roi_heads.box_predictor
    with torch.no_grad():
        predictor.cls_score.weight.zero_()
        predictor.cls_score.bias.copy_(torch.tensor(probabilities).log())
        predictor.bbox_pred.weight.zero_()
        predictor.bbox_pred.bias.zero_()
        for label, values in deltas.items():
            predictor.bbox_pred.bias[4 * label : 4 * label + 4] = torch.tensor(values)


def test_two_hand_set_fast_rcnns_average_probabilities_and_regressions():
    a, b = _model("fast_rcnn", seed=1), _model("fast_rcnn", seed=2)
    # per RoI: A says class 1 at 0.7, B class 2 at 0.8; A moves class 1 right by 0.1 w, B left by 0.1 w;
    # B widens class 2 by 2 (dw = log 2, times the coder's 5), A leaves it
    _hand_set(a, [0.1, 0.7, 0.2], {1: [1.0, 0.0, 0.0, 0.0]})
    _hand_set(b, [0.1, 0.1, 0.8], {1: [-1.0, 0.0, 0.0, 0.0], 2: [0.0, 0.0, 5 * math.log(2.0), 0.0]})
    image = [torch.rand(3, 80, 100, generator=torch.Generator().manual_seed(0))]
    proposal = torch.tensor([[20.0, 10.0, 60.0, 50.0]])  # 40 x 40, centre (40, 30)
    with torch.inference_mode():
        (out,) = EnsembleDetector([a, b]).eval()(image, proposals=[proposal])
        (alone,) = a(image, proposals=[proposal])
    by_label = {int(lab): (float(s), box) for lab, s, box in zip(out["labels"], out["scores"], out["boxes"])}
    assert set(by_label) == {1, 2}
    assert by_label[1][0] == pytest.approx(0.4, abs=1e-5)  # (0.7 + 0.1) / 2
    assert by_label[2][0] == pytest.approx(0.5, abs=1e-5)  # (0.2 + 0.8) / 2
    torch.testing.assert_close(by_label[1][1], proposal[0], atol=1e-3, rtol=0)  # the shifts cancel
    half = 20 * math.sqrt(2.0)  # mean dw = log(2) / 2: the width times sqrt(2), about the centre
    torch.testing.assert_close(
        by_label[2][1], torch.tensor([40 - half, 10.0, 40 + half, 50.0]), atol=1e-3, rtol=0
    )
    # and A alone: its own probabilities and its shift
    a_by_label = {
        int(lab): (float(s), box) for lab, s, box in zip(alone["labels"], alone["scores"], alone["boxes"])
    }
    assert a_by_label[1][0] == pytest.approx(0.7, abs=1e-5)
    torch.testing.assert_close(a_by_label[1][1], torch.tensor([24.0, 10.0, 64.0, 50.0]), atol=1e-3, rtol=0)


def test_faster_rcnns_score_the_pooled_proposals_of_both():
    a, b = _model(seed=1), _model(seed=2, min_size=80, max_size=120)  # members may resize differently
    ensemble = EnsembleDetector([a, b]).eval()
    seen = []
    hooks = [
        m.roi_heads.box_roi_pool.register_forward_hook(lambda mod, args, out: seen.append(out.shape[0]))
        for m in (a, b)
    ]
    with torch.inference_mode():
        own = [sum(len(p) for p in m.rpn(*_rpn_inputs(m))[0]) for m in (a, b)]
        ensemble(_images())
    for h in hooks:
        h.remove()
    assert seen == [sum(own), sum(own)]  # each member scored the union of both members' proposals


def _rpn_inputs(model):
    image_list, _ = model.transform(_images())
    return image_list, {"0": model.backbone(image_list.tensors)}


def test_members_must_agree():
    with pytest.raises(ConfigError, match="cannot ensemble Fast R-CNN"):
        EnsembleDetector([_model("fast_rcnn"), _model("faster_rcnn")])
    torch.manual_seed(0)
    four = build_model(ModelConfig(**TINY), 4)
    with pytest.raises(ConfigError, match="different numbers of classes"):
        EnsembleDetector([_model(), four])
    with pytest.raises(RuntimeError, match="only predicts"):
        EnsembleDetector([_model()]).train()(_images())


def _saved_run(root: Path, directory: Path, seed: int, classes: tuple[str, ...] = CLASSES) -> Path:
    """A bare state dict with its config.yaml, as a training run leaves them (no training)."""
    overrides = [*tiny_overrides(root), f"data.classes=[{','.join(classes)}]", "model.box_score_thresh=0.0"]
    config = load_config("quick", overrides)
    torch.manual_seed(seed)
    model = build_model(config.model, len(classes) + 1)
    directory.mkdir(parents=True)
    torch.save(model.state_dict(), directory / "model_final.pth")
    save_config(config, directory / "config.yaml")
    return directory / "model_final.pth"


def test_eval_and_predict_with_two_checkpoints(tmp_path: Path):
    root = make_voc(tmp_path / "voc", n_train=1, n_test=2)
    a = _saved_run(root, tmp_path / "a", seed=1)
    b = _saved_run(root, tmp_path / "b", seed=2)
    common = ["--split", "test", "--quiet", "--device", "cpu"]
    assert main(["eval", "--checkpoint", str(a), *common]) == 0
    assert main(["eval", "--checkpoint", str(a), "--checkpoint", str(a), *common]) == 0
    single = json.loads((tmp_path / "a" / "eval.json").read_text())
    self_ensemble = json.loads((tmp_path / "a" / "eval_ensemble.json").read_text())
    assert self_ensemble["mAP"] == pytest.approx(single["mAP"], abs=1e-6)
    assert self_ensemble["ap"] == pytest.approx(single["ap"], abs=1e-6)
    assert self_ensemble["checkpoint"] == [str(a), str(a)]
    assert self_ensemble["method"] == "ensemble(none, none)"

    out = tmp_path / "pair.json"
    assert main(["eval", "--checkpoint", str(a), "--checkpoint", str(b), "--output", str(out), *common]) == 0
    assert 0.0 <= json.loads(out.read_text())["mAP"] <= 1.0

    image = root / "JPEGImages" / "000001.jpg"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(a),
                "--checkpoint",
                str(b),
                str(image),
                "-o",
                str(tmp_path / "p"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "p" / "000001.json").read_text())["image"] == str(image)


def test_checkpoints_of_other_classes_are_refused(tmp_path: Path):
    root = make_voc(tmp_path / "voc", n_train=1, n_test=1)
    a = _saved_run(root, tmp_path / "a", seed=1)
    b = _saved_run(root, tmp_path / "b", seed=1, classes=tuple(reversed(CLASSES)))
    with pytest.raises(ConfigError, match="other classes"):
        load_ensemble([a, b])
    model, _, configs = load_ensemble([a])
    assert not isinstance(model, EnsembleDetector) and len(configs) == 1
