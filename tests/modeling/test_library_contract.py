"""The method contract, tested the way a user calls it: every RoI method of :func:`iadet.list_methods`,
attached with :func:`iadet.attach` to a stock torchvision ``FasterRCNN`` and trained by a plain loop
that sums the loss dict, calls ``backward()`` and steps one optimiser over ``model.parameters()``.

A new method is covered here without anyone writing a test for it.
"""

from __future__ import annotations

import io
import re
import types
import warnings

import pytest
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

import iadet

METHODS = iadet.list_methods()
"""Every RoI method of iadet."""
STOCK_KEYS = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
ITERS = 12


def stock_detector(seed: int = 0) -> FasterRCNN:
    """A small stock torchvision Faster R-CNN (the user's model, nothing of iadet's)."""
    torch.manual_seed(seed)
    backbone = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=4, padding=1),
        nn.ReLU(),
    )
    backbone.out_channels = 32
    return FasterRCNN(
        backbone,
        num_classes=3,
        rpn_anchor_generator=AnchorGenerator(((16, 32, 48),), ((0.5, 1.0, 2.0),)),
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
        min_size=96,
        max_size=128,
        rpn_batch_size_per_image=64,
        rpn_pre_nms_top_n_train=256,  # OHEM scores every proposal: keep them few
        rpn_post_nms_top_n_train=128,
        box_batch_size_per_image=32,
        representation_size=128,
    )


def batch(step: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(1000 + step)
    images, targets = [], []
    for _ in range(2):
        image = torch.rand(3, 96, 112, generator=g) * 0.2
        boxes = []
        for k in range(2):
            x, y = (
                8 + 48 * k + int(torch.randint(0, 8, (), generator=g)),
                10 + int(torch.randint(0, 20, (), generator=g)),
            )
            image[k, y : y + 40, x : x + 36] += 0.8
            boxes.append([x, y, x + 36, y + 40])
        images.append(image)
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor([1, 2])})
    return images, targets


def train_steps(model, method, optimizer, steps, *, ask: bool = True) -> list[dict[str, float]]:
    """The user's loop; returns each step's ``method.statistics()``."""
    stats = []
    model.train()
    for step in steps:
        images, targets = batch(step)
        loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        optimizer.zero_grad()
        loss.backward()
        if not ask or method.trains_detector():
            optimizer.step()
        stats.append(method.statistics())
    return stats


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)


def detector_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.fixture(autouse=True)
def _deterministic():
    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    yield
    torch.use_deterministic_algorithms(previous)
    torch.set_num_threads(threads)


ACTED = {
    "ia": lambda s: s.get("ia_masked_fraction", 0) > 0,
    "ia-code": lambda s: s.get("ia_masked_fraction", 0) > 0,
    "asdn": lambda s: s.get("adv_rois", 0) > 0,
    "fixed-asdn": lambda s: s.get("adv_rois", 0) > 0,
    "asdn+astn": lambda s: s.get("adv_rois", 0) > 0 and "astn_abs_angle" in s,
    "astn": lambda s: s.get("adv_rois", 0) > 0 and "astn_abs_angle" in s,
    "random-dropout": lambda s: s.get("adv_rois", 0) > 0,
    "hard-dropout": lambda s: s.get("adv_rois", 0) > 0,
    "jitter": lambda s: s.get("jitter_abs_angle", 0) > 0,
    "ohem": lambda s: 0 < s.get("ohem_rois", 0) <= 2 * 32,  # the hardest 32 per image of all proposals
    "dropblock": lambda s: s.get("dropblock_p", 0) > 0,
}
"""How a method's statistics show that it acted; a method not listed must put some non-zero statistic."""


@pytest.mark.parametrize("name", METHODS)
def test_every_method_trains_in_a_plain_loop(name):
    model = stock_detector()
    method = iadet.attach(model, name, max_iters=ITERS)
    adversary_before = {k: v.detach().clone() for k, v in method.state_dict().items() if k != "_extra_state"}
    optimizer = sgd(model)
    frozen_steps, frozen_unchanged = 0, True
    stats = []
    for step in range(ITERS):
        before = detector_params(model)
        images, targets = batch(step)
        loss_dict = model(images, targets)
        # the loss dict is the detector's own: adding the method's terms could not have moved it
        assert set(loss_dict) == STOCK_KEYS, name
        loss = sum(loss_dict.values())
        own = sum(v for k, v in loss_dict.items() if k in STOCK_KEYS)
        params = [p for p in model.parameters() if p.requires_grad]
        g_sum = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        g_own = torch.autograd.grad(own, params, retain_graph=True, allow_unused=True)
        assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g_sum, g_own))
        optimizer.zero_grad()
        loss.backward()
        if method.trains_detector():
            optimizer.step()
        else:
            frozen_steps += 1
            frozen_unchanged &= all(torch.equal(before[k], v) for k, v in model.named_parameters())
            assert all(p.grad is None or not p.grad.any() for p in params), "frozen stage: zero gradient"
        stats.append(method.statistics())
        assert all(torch.isfinite(torch.tensor(v)) for v in stats[-1].values()), stats[-1]

    assert method.iteration == ITERS
    if name != "none":
        acted = ACTED.get(name, lambda s: any(v for k, v in s.items() if k != "adv_stage"))
        assert any(acted(s) for s in stats), f"{name} never acted: {stats}"
    if name in ("asdn", "fixed-asdn", "asdn+astn"):
        assert frozen_steps > 0 and frozen_unchanged
    adversary_after = {k: v for k, v in method.state_dict().items() if k != "_extra_state"}
    if adversary_before:  # the adversary trained itself, through the method's own optimiser
        assert any(not torch.equal(adversary_before[k], adversary_after[k]) for k in adversary_before)

    # the detector's weights are torchvision's: they load, strict, into the stock constructor
    stock = stock_detector(seed=1)
    stock.load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_resumes_a_method_exactly(name):
    """Six steps, a user's checkpoint (model, optimiser, method, RNG), six more; against a fresh model and
    a fresh attach loading that checkpoint: bit-identical weights, adversary and statistics."""
    model = stock_detector()
    method = iadet.attach(model, name, max_iters=ITERS)
    optimizer = sgd(model)
    torch.manual_seed(7)
    train_steps(model, method, optimizer, range(6))
    buffer = io.BytesIO()  # saved now: state dicts hold the live tensors
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "method": method.state_dict(),
            "rng": torch.get_rng_state(),
        },
        buffer,
    )
    stats = train_steps(model, method, optimizer, range(6, ITERS))

    restored = stock_detector(seed=3)
    resumed = iadet.attach(restored, name, max_iters=ITERS)
    restored_optimizer = sgd(restored)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    restored.load_state_dict(loaded["model"])
    restored_optimizer.load_state_dict(loaded["optimizer"])
    resumed.load_state_dict(loaded["method"])
    torch.set_rng_state(loaded["rng"])
    assert resumed.iteration == 6
    resumed_stats = train_steps(restored, resumed, restored_optimizer, range(6, ITERS))

    assert resumed_stats == stats
    for (k, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), f"{name}: {k} differs after the resume"
    for (k, a), (_, b) in zip(method.state_dict().items(), resumed.state_dict().items()):
        if k != "_extra_state":
            assert torch.equal(a, b), f"{name}: adversary {k} differs after the resume"


def test_a_loop_that_does_not_ask_is_warned_once_and_the_detector_gets_no_gradient():
    model = stock_detector()
    method = iadet.attach(model, "asdn", max_iters=16)  # warm-up 2, pre-training 2 steps
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # no momentum, no weight decay
    train_steps(model, method, optimizer, range(2), ask=False)
    assert method.stage_at(2) == method.stage_at(3) == "pretrain" and method.stage_at(4) != "pretrain"
    before = detector_params(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_steps(model, method, optimizer, range(2, 4), ask=False)
        # steps 2-3 pre-train the ASDN: zero gradient, so plain SGD left the detector as it was ...
        assert all(torch.equal(before[k], v) for k, v in model.named_parameters())
        train_steps(model, method, optimizer, range(4, 6), ask=False)
    messages = [str(w.message) for w in caught if "trains_detector()" in str(w.message)]
    assert len(messages) == 1 and "momentum" in messages[0]
    # ... while the joint steps moved it
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_statistics_and_the_clock_need_no_logging_framework():
    model = stock_detector()
    method = iadet.attach(model, "ia:ramp=triangle", max_iters=10)
    optimizer = sgd(model)
    fractions = [s["ia_masked_fraction"] for s in train_steps(model, method, optimizer, range(10))]
    # the triangle ramp: 0 at the first step, largest at mid-run (0.2 of the RoIs), back down
    assert fractions[0] == 0.0 and max(fractions) == pytest.approx(0.2, abs=0.01)
    assert fractions.index(max(fractions)) in (4, 5, 6) and fractions[-1] < max(fractions)
    method.set_iteration(5)
    assert method.iteration == 5


def test_the_asdn_pretrains_when_the_loop_runs_the_frozen_step_without_gradients():
    model = stock_detector()
    method = iadet.attach(model, "asdn", max_iters=16, warmup_iters=0, pretrain_iters=2)
    before = {k: v.clone() for k, v in method.asdn.state_dict().items()}
    model.train()
    images, targets = batch(0)
    assert not method.trains_detector(method.iteration)  # the next step is frozen: the loop may say so
    with torch.no_grad():
        model(images, targets)
    assert any(not torch.equal(before[k], v) for k, v in method.asdn.state_dict().items())


def test_a_gradscaler_leaves_the_adversarys_update_unchanged():
    adversaries = []
    for scaled in (False, True):
        model = stock_detector()
        method = iadet.attach(model, "asdn+astn", max_iters=8, warmup_iters=0, pretrain_iters=1)
        optimizer = sgd(model)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=scaled)
        torch.manual_seed(3)
        for step in range(3):
            images, targets = batch(step)
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            if method.trains_detector():
                scaler.step(optimizer)
                scaler.update()
        adversaries.append({k: v for k, v in method.state_dict().items() if k != "_extra_state"})
    assert all(torch.equal(adversaries[0][k], adversaries[1][k]) for k in adversaries[0])


def test_the_adversarys_gradients_are_averaged_over_ranks_in_one_all_reduce(monkeypatch):
    from iadet.modeling.methods import base

    calls = []

    def all_reduce(tensor):
        calls.append(tensor.numel())
        tensor.mul_(2)  # two ranks with the same gradient: the sum is twice it

    fake = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        get_world_size=lambda: 2,
        all_reduce=all_reduce,
    )
    monkeypatch.setattr(base, "torch_dist", fake)  # the method's view of torch.distributed only
    model = stock_detector()
    method = iadet.attach(model, "asdn+astn", max_iters=8, warmup_iters=0, pretrain_iters=1)
    train_steps(model, method, sgd(model), range(2))
    asdn, both = sum(p.numel() for p in method.asdn.parameters()), sum(p.numel() for p in method.parameters())
    # one flattened call per adversary step: the ASDN alone while it pre-trains (the idle ASTN has no
    # gradient on any rank), both adversaries in the joint stage
    assert calls == [asdn, both]


def test_detach_gives_back_torchvisions_heads():
    from torchvision.models.detection.roi_heads import RoIHeads

    model = stock_detector()
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    heads = model.roi_heads
    iadet.attach(model, "ia")
    assert iadet.detach(model) is model
    assert type(model.roi_heads) is RoIHeads and model.roi_heads.box_head is heads.box_head
    assert not model._forward_hooks
    assert all(torch.equal(keys[k], v) for k, v in model.state_dict().items())
    model.train()
    assert set(model(*batch(0))) == STOCK_KEYS


WRONG_USES = [
    (lambda m: iadet.attach(nn.Linear(2, 2), "ia"), TypeError, "Linear has no RoI heads"),
    (lambda m: iadet.attach(m, 3), TypeError, "method must be a name"),
    (lambda m: iadet.attach(m, "ia-typo"), ValueError, "ia-typo"),
    (lambda m: iadet.attach(m, "ia", roi_ratios=0.3), ValueError, "roi_ratios"),
    (lambda m: iadet.attach(m, "ia:roi_ratio=2"), ValueError, "roi_ratio"),
    (lambda m: iadet.attach(m, "ia:roi_ratio"), ValueError, "not key=value"),
    (lambda m: iadet.attach(m, "asdn"), ValueError, "max_iters=N"),
    (lambda m: iadet.attach(m, "ia", max_iters=0), ValueError, "max_iters must be a positive integer"),
    (lambda m: iadet.attach(m, "cutout"), ValueError, "iadet.transforms.Cutout"),
    (lambda m: iadet.attach(m, "gridmask"), ValueError, "iadet.transforms.GridMask"),
    (lambda m: (iadet.attach(m, "ia"), iadet.attach(m, "ohem")), ValueError, "replace=True"),
    (
        lambda m: iadet.attach(nn.DataParallel(m), "ia"),
        ValueError,
        "attach before wrapping",
    ),
    (lambda m: iadet.list_methods("rois"), ValueError, "kind must be"),
    (lambda m: iadet.attach(torch.compile(m), "ia"), ValueError, "attach before wrapping"),
    (lambda m: iadet.attach(_keypoint_rcnn(), "ia"), TypeError, "keypoint heads are not supported"),
    (lambda m: iadet.attach(m, "ia", max_iters=True), ValueError, "max_iters must be a positive integer"),
    (
        lambda m: iadet.attach(m, iadet.attach(m, "ia"), roi_ratio=0.3, replace=True),
        ValueError,
        "method module",
    ),
    (lambda m: iadet.attach(m, "ia").set_iteration(-1), ValueError, "iteration must be >= 0"),
    (lambda m: iadet.attach(m, "ia").set_iteration(2.5), TypeError, "iteration must be an int"),
    (
        lambda m: iadet.attach(m.eval(), "asdn", max_iters=8).trains_detector(),
        RuntimeError,
        "no training step",
    ),
    (
        lambda m: iadet.attach(m, "ohem").load_state_dict(iadet.attach(stock_detector(), "ia").state_dict()),
        ValueError,
        "a state of method 'ia' (InvertedAttention) cannot be loaded into method 'ohem'",
    ),
]


def _keypoint_rcnn() -> nn.Module:
    from torchvision.models.detection import KeypointRCNN

    detector = stock_detector()
    return KeypointRCNN(detector.backbone, num_classes=2, rpn_anchor_generator=detector.rpn.anchor_generator)


@pytest.mark.parametrize("use, error, message", WRONG_USES)
def test_wrong_use_is_one_line_naming_the_culprit(use, error, message):
    with pytest.raises(error) as caught:
        use(stock_detector())
    text = str(caught.value)
    assert message in text and "\n" not in text, text


def test_replace_swaps_the_method_and_image_baselines_are_listed_apart():
    model = stock_detector()
    first = iadet.attach(model, "ia")
    second = iadet.attach(model, "ohem", replace=True)
    assert model.roi_heads.roi_method is second is not first
    assert len(model._forward_hooks) == 1
    assert set(iadet.list_methods("image")) == {"random-erasing", "hide-and-seek", "cutout", "gridmask"}
    assert not set(iadet.list_methods()) & set(iadet.list_methods("image"))
    for name in iadet.list_methods("image"):  # each names its transform, and the transform exists
        with pytest.raises(ValueError, match=r"iadet\.transforms\.\w+") as caught:
            iadet.attach(model, name, replace=True)
        transform = re.search(r"iadet\.transforms\.(\w+)", str(caught.value)).group(1)
        assert callable(getattr(iadet.transforms, transform))
