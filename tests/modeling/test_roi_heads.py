"""iadet's RoI heads: torchvision's keys, torchvision's eval path, the method sees the pooled features."""

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn
from torchvision.models.detection.roi_heads import RoIHeads

from iadet.config.schema import ModelConfig
from iadet.modeling.detector import build_model
from iadet.modeling.methods import RoIOutput, build_method
from iadet.modeling.methods.base import RoIMethod
from iadet.modeling.roi_heads import RoIHeadsWithMethod, attach_method

TINY = ModelConfig(backbone="tiny", min_size=64, max_size=96, box_batch_size_per_image=32)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    images = [torch.rand(3, 64, 80, generator=g) for _ in range(2)]
    targets = [
        {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [40.0, 10.0, 70.0, 50.0]]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)},  # no objects
    ]
    return images, targets


class Recorder(RoIMethod):
    def forward(self, features, batch):
        self.seen = (
            features.shape,
            batch.labels.clone(),
            batch.head(features).shape,
            batch.image_index.clone(),
        )
        return RoIOutput(features * 0)


class WithExtras(RoIMethod):
    """Returns a loss of its own and a statistic."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def make_adversary_optimizer(self):
        return torch.optim.SGD([self.weight], lr=0.1)

    def forward(self, features, batch):
        return RoIOutput(
            features, losses={"loss_own": self.weight * 2.0}, stats={"own_rois": float(len(batch.labels))}
        )


def test_state_dict_keys_equal_stock_torchvision():
    ours = build_model(ModelConfig(backbone="resnet50_fpn"), 5, build_method({"name": "ia"}))
    stock = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5)
    assert list(ours.state_dict()) == list(stock.state_dict())
    stock.load_state_dict(ours.state_dict(), strict=True)
    assert isinstance(ours.roi_heads, RoIHeadsWithMethod)


def test_method_is_not_part_of_the_module_tree():
    method = build_method({"name": "ia"})
    model = build_model(TINY, 3, method)
    assert all(m is not method for m in model.modules())
    assert model.roi_heads.roi_method is method


def test_training_with_none_equals_torchvision_roi_heads():
    torch.manual_seed(0)
    ours = build_model(TINY, 3, RoIMethod())
    stock = build_model(TINY, 3, None)
    stock.load_state_dict(ours.state_dict())  # no method: the heads run torchvision's own forward
    images, targets = _inputs()
    torch.manual_seed(1)
    a = ours(images, targets)
    torch.manual_seed(1)
    b = stock(images, targets)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_eval_path_is_torchvision_and_ignores_the_method():
    torch.manual_seed(0)
    model = build_model(TINY, 3, Recorder()).eval()
    images, _ = _inputs()
    with torch.no_grad():
        with_method = model(images)
        model.roi_heads.set_method(None)
        without = model(images)
    assert not hasattr(model.roi_heads.roi_method or Recorder(), "seen")
    for a, b in zip(with_method, without):
        for key in a:
            assert torch.equal(a[key], b[key])


def test_method_sees_pooled_features_labels_and_score_fn():
    torch.manual_seed(0)
    recorder = Recorder()
    model = build_model(TINY, 3, recorder).train()
    images, targets = _inputs()
    losses = model(images, targets)
    shape, labels, logits_shape, image_index = recorder.seen
    assert shape[1:] == (128, 7, 7)
    assert logits_shape == (shape[0], 3)
    assert labels.dtype == torch.int64 and set(labels.unique().tolist()) <= {0, 1, 2}
    assert (labels > 0).any()
    assert set(image_index.tolist()) == {0, 1}
    # the returned (zeroed) features are what the box head trains on: the loss differs from the identity's
    model.roi_heads.set_method(recorder)
    torch.manual_seed(5)
    zeroed = model(images, targets)["loss_classifier"]
    model.roi_heads.set_method(RoIMethod())
    torch.manual_seed(5)
    identity = model(images, targets)["loss_classifier"]
    assert torch.isfinite(losses["loss_classifier"]) and not torch.isclose(zeroed, identity)


def test_heads_with_a_method_are_built_from_torchvisions_sharing_their_modules():
    stock = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5)
    heads = stock.roi_heads
    model = attach_method(stock, RoIMethod())
    assert type(model.roi_heads) is RoIHeadsWithMethod and type(heads) is RoIHeads
    assert model.roi_heads.box_head is heads.box_head and model.roi_heads.box_predictor is heads.box_predictor
    for key in ("score_thresh", "nms_thresh", "detections_per_img"):
        assert getattr(model.roi_heads, key) == getattr(heads, key)
    assert model.roi_heads.proposal_matcher.high_threshold == heads.proposal_matcher.high_threshold
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == heads.fg_bg_sampler.batch_size_per_image
    assert model.roi_heads.box_coder.weights == heads.box_coder.weights


def test_a_methods_losses_train_its_own_parameters_and_its_stats_are_readable():
    torch.manual_seed(0)
    method = WithExtras()
    model = build_model(TINY, 3, method).train()
    images, targets = _inputs()
    loss_dict = model(images, targets)
    # the method's loss never joins the detector's dict: it stepped the method's own optimiser
    assert set(loss_dict) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert method.weight.item() == pytest.approx(1.0 - 0.1 * 2.0) and method.iteration == 1
    stats = method.statistics()
    assert stats["own_rois"] > 0 and stats["loss_own"] == 2.0
    assert all(p.grad is None for p in model.parameters())
