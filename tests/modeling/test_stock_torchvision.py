"""No lock-in: weights trained with any method load with strict=True into stock torchvision and detect the same."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet50
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn,
)

from iadet.cli import main
from iadet.config.schema import ModelConfig
from iadet.errors import ConfigError
from iadet.export import stock_code, stock_detector, uses_frozen_bn
from iadet.modeling.attach import list_methods
from iadet.modeling.detector import build_model, detector_kwargs
from iadet.modeling.methods import build_method

from conftest import tiny_overrides

SMALL = dict(
    min_size=64,
    max_size=96,
    rpn_pre_nms_top_n_train=64,
    rpn_post_nms_top_n_train=32,
    box_batch_size_per_image=16,
    box_score_thresh=0.0,  # a barely trained model: compare every detection
    box_detections_per_img=10,
)


def train_one_step(model, detector: str = "faster_rcnn", seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 80, generator=g)]
    target = {
        "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [36.0, 10.0, 70.0, 50.0]]),
        "labels": torch.tensor([1, 2]),
    }
    if detector == "mask_rcnn":
        target["masks"] = torch.zeros(2, 64, 80, dtype=torch.uint8)
        target["masks"][0, 6:40, 4:30] = 1
        target["masks"][1, 10:50, 36:70] = 1
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    sum(model(images, [target]).values()).backward()
    optimizer.step()
    model.eval()


@torch.no_grad()
def same_outputs(ours, stock) -> None:
    """Equal features, RPN outputs, box (and mask) head outputs on fixed RoIs, and detections.

    A barely trained random network's detections may be empty, so the heads are compared on fixed
    RoIs as well.
    """
    image = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(5))
    images, _ = ours.transform([image])
    fa, fb = ours.backbone(images.tensors), stock.backbone(images.tensors)
    for key in fa:
        torch.testing.assert_close(fa[key], fb[key])
    for a, b in zip(ours.rpn.head(list(fa.values())), stock.rpn.head(list(fb.values()))):
        torch.testing.assert_close(a, b)
    rois = [torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 80.0, 60.0]])]
    for heads, features in ((ours.roi_heads, fa), (stock.roi_heads, fb)):
        pooled = heads.box_roi_pool(features, rois, images.image_sizes)
        heads.probe = heads.box_predictor(heads.box_head(pooled))
        if heads.has_mask():
            heads.probe += (
                heads.mask_predictor(
                    heads.mask_head(heads.mask_roi_pool(features, rois, images.image_sizes))
                ),
            )
    for a, b in zip(ours.roi_heads.probe, stock.roi_heads.probe):
        torch.testing.assert_close(a, b)
    da, db = ours([image])[0], stock([image])[0]
    for key in da:
        torch.testing.assert_close(da[key], db[key])


def test_resnet50_fpn_trained_with_ia_loads_into_fasterrcnn_resnet50_fpn():
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet50_fpn", **SMALL)
    ours = build_model(cfg, 3, build_method({"name": "ia"}))
    train_one_step(ours)
    stock = fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3, **detector_kwargs(cfg)
    )
    stock.load_state_dict(ours.state_dict(), strict=True)
    same_outputs(ours, stock.eval())


def test_frozen_bn_weights_load_into_resnet_fpn_backbone_with_frozen_bn(tmp_path: Path):
    """From ImageNet weights (here a random ResNet-50 saved to a file) our model has FrozenBatchNorm, as
    torchvision's constructors with weights_backbone; the stock twin is resnet_fpn_backbone(FrozenBatchNorm2d)."""
    torch.save(resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    cfg = ModelConfig(backbone="resnet50_fpn", backbone_weights=str(tmp_path / "r50.pth"), **SMALL)
    ours = build_model(cfg, 3, build_method({"name": "ia"}))
    train_one_step(ours)
    state = ours.state_dict()
    assert uses_frozen_bn(state)
    stock = stock_detector("resnet50_fpn", "faster_rcnn", 3, frozen_bn=True, **detector_kwargs(cfg))
    stock.load_state_dict(state, strict=True)
    same_outputs(ours, stock.eval())
    # BatchNorm accepts weights without num_batches_tracked, and at inference equals FrozenBatchNorm:
    # the plain constructor takes them too
    plain = fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3, **detector_kwargs(cfg)
    )
    plain.load_state_dict(state, strict=True)
    same_outputs(ours, plain.eval())


def test_mask_rcnn_loads_into_maskrcnn_resnet50_fpn():
    cfg = ModelConfig(backbone="resnet50_fpn", detector="mask_rcnn", **SMALL)
    ours = build_model(cfg, 3, build_method({"name": "ia"}))
    train_one_step(ours, "mask_rcnn")
    stock = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3, **detector_kwargs(cfg))
    stock.load_state_dict(ours.state_dict(), strict=True)
    same_outputs(ours, stock.eval())


def test_mobilenet_loads_into_fasterrcnn_mobilenet_v3_large_fpn():
    cfg = ModelConfig(backbone="mobilenet_v3_fpn", **SMALL)
    ours = build_model(cfg, 3, build_method({"name": "ia"}))
    train_one_step(ours)
    stock = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=3, **detector_kwargs(cfg)
    )
    stock.load_state_dict(ours.state_dict(), strict=True)
    same_outputs(ours, stock.eval())


def test_no_method_adds_a_key():
    """Whatever the method (and its adversary), the detector's keys are the stock constructor's."""
    cfg = ModelConfig(backbone="resnet50_fpn", **SMALL)
    stock_keys = list(
        fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3).state_dict()
    )
    for name in list_methods():
        model = build_model(cfg, 3, build_method({"name": name}), max_iters=10)
        assert list(model.state_dict()) == stock_keys, name


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet101_fpn", "resnext101_32x8d_fpn", "resnext101_64x4d_fpn"])
def test_deep_fpn_keys_and_shapes_match_their_stock_constructor(backbone: str):
    ours = build_model(ModelConfig(backbone=backbone, **SMALL), 4).state_dict()
    stock = stock_detector(backbone, "faster_rcnn", 4, frozen_bn=False)
    stock.load_state_dict(ours, strict=True)


def test_no_stock_constructor_is_a_config_error():
    for backbone, detector in (
        ("vgg16", "faster_rcnn"),
        ("resnet50_fpn", "fast_rcnn"),
        ("resnext101_32x4d_fpn", "faster_rcnn"),
    ):
        with pytest.raises(ConfigError, match="no stock torchvision constructor"):
            stock_detector(backbone, detector, 3, frozen_bn=False)


@pytest.mark.slow
def test_export_torchvision_command(shared_voc: Path, tmp_path: Path):
    """``iadet export --format torchvision`` on a real run: the file loads into the code it writes."""
    run = tmp_path / "run"
    args = ["train", "--config", "quick", "--output", str(run), "--quiet"]
    overrides = tiny_overrides(shared_voc, 1) + [
        "model.backbone=resnet50_fpn",
        "model.box_batch_size_per_image=16",
        "method.name=ia",
        "train.eval_at_end=false",
    ]
    for o in overrides:
        args += ["--set", o]
    assert main(args) == 0
    out = tmp_path / "export" / "weights.pth"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "checkpoint.pth"),
                "--format",
                "torchvision",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    code = Path(f"{out}.txt").read_text()
    assert "resnet_fpn_backbone(backbone_name='resnet50'" in code and "num_classes=3" in code
    namespace: dict = {}
    exec(compile(code, "note", "exec"), namespace)  # builds the stock model and loads strictly
    assert namespace["model"].roi_heads.box_predictor.cls_score.out_features == 3


def _as_if_saved_on_a_gpu(path: Path) -> None:
    """Rewrite a ``torch.save`` file's storage locations from ``cpu`` to ``cuda:0`` (what a GPU run
    writes), so that a CPU-only machine can check it loads with ``map_location``."""
    with zipfile.ZipFile(path) as z:
        entries = [(info, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for info, data in entries:
            if info.filename.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            z.writestr(info, data)


def test_stock_code_builds_the_same_model_and_loads_gpu_weights_on_the_cpu(tmp_path: Path):
    code = stock_code("mobilenet_v3_fpn", "faster_rcnn", 5, frozen_bn=False, settings={"min_size": 320})
    assert "torch.load('WEIGHTS', map_location='cpu', weights_only=True)" in code
    ours = build_model(ModelConfig(backbone="mobilenet_v3_fpn", min_size=320), 5)
    weights = tmp_path / "weights.pth"
    torch.save(ours.state_dict(), weights)
    if not torch.cuda.is_available():
        _as_if_saved_on_a_gpu(weights)
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(weights, weights_only=True)  # what the snippet did without map_location
    namespace: dict = {}
    exec(compile(code.replace("'WEIGHTS'", repr(str(weights))), "note", "exec"), namespace)
    assert namespace["model"].transform.min_size == (320,)
    for key, value in ours.state_dict().items():
        assert torch.equal(namespace["model"].state_dict()[key], value), key
