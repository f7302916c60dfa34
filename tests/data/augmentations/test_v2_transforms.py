"""The image-space baselines as torchvision v2 transforms: in a v2.Compose, the target untouched, the same
erasing as ``iadet train``'s pipeline (their own ``erase``), reproducible from the global RNG or an explicit
generator."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import PIL.Image
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

import iadet.transforms
from iadet.config.methods import METHOD_PRESETS, implementation, method_params
from iadet.data.augmentations import Cutout, GridMask, HideAndSeek, RandomErasing, build_image_augmentation
from iadet.data.augmentations.cutout import CutoutParams
from iadet.data.augmentations.gridmask import GridMaskParams
from iadet.data.augmentations.hide_and_seek import HideAndSeekParams
from iadet.data.augmentations.random_erasing import RandomErasingParams

H, W = 60, 80
IMAGE = torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
XYXY = torch.tensor([[4.0, 6.0, 34.0, 40.0], [44.0, 20.0, 78.0, 58.0]])

PARAMS = {
    RandomErasing: RandomErasingParams,
    HideAndSeek: HideAndSeekParams,
    Cutout: CutoutParams,
    GridMask: GridMaskParams,
}
ACTING = [  # settings under which each one erases something (probability 1 where there is one)
    pytest.param(RandomErasing, {"probability": 1.0}, id="random-erasing"),
    pytest.param(
        RandomErasing, {"probability": 1.0, "mode": "object", "fill": "mean"}, id="random-erasing-object"
    ),
    pytest.param(HideAndSeek, {"grid_sizes": [16]}, id="hide-and-seek"),
    pytest.param(HideAndSeek, {"grid_sizes": [16], "fill": "random"}, id="hide-and-seek-random"),
    pytest.param(Cutout, {}, id="cutout"),
    pytest.param(Cutout, {"holes": 3, "fill": "zero"}, id="cutout-3"),
    pytest.param(GridMask, {"probability": 1.0}, id="gridmask"),
    pytest.param(GridMask, {"probability": 1.0, "rotate": 45.0, "fill": "random"}, id="gridmask-rotated"),
]


def _boxes(fmt: str = "XYXY") -> tv_tensors.BoundingBoxes:
    xyxy = tv_tensors.BoundingBoxes(XYXY, format="XYXY", canvas_size=(H, W))
    return F.convert_bounding_box_format(xyxy, new_format=fmt)


def _target(fmt: str = "XYXY") -> dict:
    masks = torch.zeros(2, H, W, dtype=torch.uint8)
    masks[0, 6:40, 4:34] = 1
    masks[1, 20:58, 44:78] = 1
    return {"boxes": _boxes(fmt), "labels": torch.tensor([3, 5]), "masks": tv_tensors.Mask(masks)}


def _reference(
    transform, image: torch.Tensor, g: torch.Generator, boxes: torch.Tensor = XYXY
) -> torch.Tensor:
    """What ``iadet train``'s augmentation for the transform's parameters makes of ``image`` with ``g``."""
    impl = build_image_augmentation(transform.params)
    if image.is_floating_point():
        return impl(image, boxes, g, 1.0)
    as_float = F.to_dtype(image, torch.float32, scale=True)
    out = impl(as_float, boxes, g, 1.0)
    return torch.where(out != as_float, (out * 255).round().to(torch.uint8), image)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("cls", list(PARAMS))
def test_arguments_are_the_params_fields_with_their_defaults(cls):
    signature = inspect.signature(cls)
    params_cls = PARAMS[cls]
    fields = {f.name: f for f in dataclasses.fields(params_cls) if f.name != "name"}
    assert list(signature.parameters) == [*[k for k in signature.parameters if k in fields], "generator"]
    assert set(signature.parameters) - {"generator"} == set(fields)
    for key, field in fields.items():
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        expected = (
            "constant" if (cls, key) == (GridMask, "ramp") else default
        )  # acts at `probability` by default
        got = signature.parameters[key].default
        assert (list(got) if isinstance(default, list) else got) == expected, key
        assert signature.parameters[key].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["generator"].default is None
    assert getattr(cls().params, "ramp", "constant") == "constant"


@pytest.mark.parametrize(("cls", "kwargs"), ACTING)
def test_in_a_compose_only_the_image_changes(cls, kwargs):
    transform = cls(**kwargs, generator=_g(1))
    pipeline = v2.Compose([v2.ToImage(), transform, v2.ToDtype(torch.float32, scale=True)])
    target = _target("XYWH")
    image, out = pipeline(IMAGE.clone(), target)
    assert type(image) is tv_tensors.Image and image.dtype == torch.float32 and image.shape == (3, H, W)
    assert (image != F.to_dtype(IMAGE, torch.float32, scale=True)).any()  # something erased
    assert out.keys() == target.keys()
    assert out["boxes"] is target["boxes"] and type(out["boxes"]) is tv_tensors.BoundingBoxes
    assert out["boxes"].format == tv_tensors.BoundingBoxFormat.XYWH and torch.equal(
        out["boxes"], _boxes("XYWH")
    )
    assert out["masks"] is target["masks"] and type(out["masks"]) is tv_tensors.Mask
    assert torch.equal(out["masks"], _target()["masks"])
    assert type(out["labels"]) is torch.Tensor and torch.equal(out["labels"], torch.tensor([3, 5]))


@pytest.mark.parametrize(("cls", "kwargs"), ACTING)
def test_uint8_image_is_erased_as_the_augment_class_does_and_untouched_pixels_are_bit_exact(cls, kwargs):
    transform = cls(**kwargs, generator=_g(2))
    image, _ = transform(tv_tensors.Image(IMAGE.clone()), _target())
    assert type(image) is tv_tensors.Image and image.dtype == torch.uint8
    expected = _reference(transform, IMAGE, _g(2))
    assert torch.equal(image.as_subclass(torch.Tensor), expected)
    changed = (image != IMAGE).any(0)
    assert (
        0 < changed.sum() < H * W
    )  # erased somewhere, and not everywhere: the rest is the input, bit for bit
    assert torch.equal(image[:, ~changed], IMAGE[:, ~changed])


@pytest.mark.parametrize(("cls", "kwargs"), ACTING)
def test_float_image_equals_the_augment_class_output(cls, kwargs):
    image = F.to_dtype(IMAGE, torch.float32, scale=True)
    transform = cls(**kwargs, generator=_g(3))
    out = transform(image, _target())[0]
    assert type(out) is torch.Tensor and out.dtype == torch.float32
    assert torch.equal(out, _reference(transform, image, _g(3)))
    assert not torch.equal(out, image)


def test_mean_fill_on_uint8_is_the_scaled_and_rounded_mean():
    image = Cutout(fill="mean", generator=_g(0))(
        tv_tensors.Image(torch.full((3, H, W), 255, dtype=torch.uint8))
    )
    erased = image[:, (image != 255).any(0)]
    assert erased.shape[1] > 0
    assert torch.equal(erased, torch.tensor([[124], [116], [104]], dtype=torch.uint8).expand_as(erased))


@pytest.mark.parametrize("fmt", ["XYXY", "XYWH", "CXCYWH"])
def test_object_aware_erasing_reads_target_boxes_in_any_format(fmt):
    transform = RandomErasing(mode="object", probability=1.0, fill="zero", generator=_g(4))
    target = _target(fmt)
    target["proposals"] = tv_tensors.BoundingBoxes([[0, 0, 10, 10]], format="XYXY", canvas_size=(H, W))
    image = transform(tv_tensors.Image(IMAGE.clone()), target)[0]
    assert torch.equal(image.as_subclass(torch.Tensor), _reference(transform, IMAGE, _g(4)))
    changed = (image != IMAGE).any(0)
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[6:40, 4:34] = inside[20:58, 44:78] = True
    assert changed[6:40, 4:34].any() and changed[20:58, 44:78].any() and not (changed & ~inside).any()


def test_lone_image_and_pil_image():
    lone = GridMask(probability=1.0, generator=_g(5))(IMAGE.clone())
    assert type(lone) is torch.Tensor and lone.dtype == torch.uint8
    assert torch.equal(lone, _reference(GridMask(probability=1.0), IMAGE, _g(5)))
    pil = F.to_pil_image(IMAGE)
    out, target = GridMask(probability=1.0, generator=_g(5))(pil, _target())
    assert isinstance(out, PIL.Image.Image) and out.mode == "RGB" and out.size == (W, H)
    assert torch.equal(F.pil_to_tensor(out), lone)
    assert torch.equal(F.pil_to_tensor(pil), IMAGE)  # the input image is not modified


@pytest.mark.parametrize(("cls", "kwargs"), ACTING)
def test_global_rng_torch_manual_seed_reproduces(cls, kwargs):
    transform = cls(**kwargs)
    torch.manual_seed(11)
    first = transform(tv_tensors.Image(IMAGE), _target())[0]
    torch.manual_seed(11)
    again = transform(tv_tensors.Image(IMAGE), _target())[0]
    torch.manual_seed(11)
    expected = _reference(transform, IMAGE, torch.default_generator)
    assert torch.equal(first, again) and torch.equal(first.as_subclass(torch.Tensor), expected)
    outputs = [transform(tv_tensors.Image(IMAGE), _target())[0] for _ in range(3)]
    assert any(not torch.equal(first, out) for out in outputs)  # the global RNG moved on: other draws


@pytest.mark.parametrize(("cls", "kwargs"), ACTING)
def test_explicit_generator_resumes_exactly_and_leaves_the_global_rng_alone(cls, kwargs):
    g = _g(12)
    transform = cls(**kwargs, generator=g)
    transform(tv_tensors.Image(IMAGE), _target())  # a run under way
    saved = g.get_state()
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = [transform(tv_tensors.Image(IMAGE), _target())[0] for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is not used
    torch.manual_seed(99)  # another global state does not matter
    g.set_state(saved)
    resumed = [transform(tv_tensors.Image(IMAGE), _target())[0] for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(first, resumed))
    copy = pickle.loads(pickle.dumps(transform))  # as a spawned DataLoader worker gets it
    assert torch.equal(
        copy(tv_tensors.Image(IMAGE), _target())[0], transform(tv_tensors.Image(IMAGE), _target())[0]
    )


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (RandomErasing, {"mode": "obj"}, "mode"),
        (RandomErasing, {"probability": 1.5}, "probability"),
        (RandomErasing, {"probability": "often"}, "probability"),
        (RandomErasing, {"area_min": 0.5, "area_max": 0.1}, "area_min"),
        (RandomErasing, {"aspect_min": 0.0}, "aspect_min"),
        (RandomErasing, {"fill": "grey"}, "fill"),
        (HideAndSeek, {"grid_sizes": [-16]}, "grid_sizes"),
        (HideAndSeek, {"hide_prob": -0.1}, "hide_prob"),
        (Cutout, {"holes": 0}, "holes"),
        (Cutout, {"size_px": -1}, "size_px"),
        (GridMask, {"ramp": "cosine"}, "ramp"),
        (GridMask, {"d_min": 8, "d_max": 4}, "d_max"),
        (GridMask, {"rotate": 400.0}, "rotate"),
    ],
)
def test_bad_argument_is_a_one_line_value_error_naming_it(cls, kwargs, key):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {key}\b") as info:
        cls(**kwargs)
    assert "\n" not in str(info.value) and "method." not in str(info.value)


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(TypeError, match="generator"):
        Cutout(generator=123)
    with pytest.raises(ValueError, match="canvas_size"):
        target = {"boxes": tv_tensors.BoundingBoxes(XYXY, format="XYXY", canvas_size=(H + 1, W))}
        RandomErasing(mode="object")(tv_tensors.Image(IMAGE), target)
    with pytest.raises(TypeError, match=r"target\['boxes'\] must be tv_tensors.BoundingBoxes"):
        RandomErasing(mode="object")(tv_tensors.Image(IMAGE), {"boxes": XYXY})
    with pytest.raises(ValueError, match="1- or 3-channel"):
        Cutout()(tv_tensors.Image(torch.zeros(4, H, W, dtype=torch.uint8)))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Cutout()(torch.zeros(2, 3, H, W))
    assert torch.equal(
        RandomErasing(mode="image")(IMAGE, {"boxes": XYXY})[1]["boxes"], XYXY
    )  # boxes not read


def test_gridmask_linear_ramp_needs_set_progress():
    gridmask = GridMask(probability=1.0, ramp="linear", generator=_g(6))
    with pytest.raises(RuntimeError, match=r"set_progress") as info:
        gridmask(tv_tensors.Image(IMAGE), _target())
    assert "\n" not in str(info.value)
    gridmask.set_progress(0)
    assert all(torch.equal(gridmask(tv_tensors.Image(IMAGE), _target())[0], IMAGE) for _ in range(20))
    gridmask.set_progress(1.0)
    assert not torch.equal(gridmask(tv_tensors.Image(IMAGE), _target())[0], IMAGE)
    gridmask.set_progress(0.5)  # about half the images
    hits = sum(not torch.equal(gridmask(IMAGE), IMAGE) for _ in range(200))
    assert 70 < hits < 130
    with pytest.raises(ValueError, match="fraction"):
        gridmask.set_progress(1.5)


def test_default_gridmask_acts_at_its_final_probability_without_set_progress():
    gridmask = GridMask(generator=_g(8))
    hits = sum(not torch.equal(gridmask(IMAGE), IMAGE) for _ in range(200))
    assert 115 < hits < 165  # probability 0.7, from the first call
    assert not hasattr(RandomErasing(), "set_progress") and not hasattr(Cutout(), "set_progress")


def test_repr_shows_the_parameters_and_the_public_module_re_exports():
    text = repr(RandomErasing(mode="object", area_max=0.3))
    assert text.startswith("RandomErasing(mode='object', probability=0.5, area_min=0.02, area_max=0.3,")
    assert "fill='random'" in text and "generator=None" in text
    assert "ramp='linear'" in repr(GridMask(ramp="linear")) and "grid_sizes=[8, 16]" in repr(
        HideAndSeek(grid_sizes=(8, 16))
    )
    assert iadet.transforms.__all__ == ["Cutout", "GridMask", "HideAndSeek", "RandomErasing"]
    assert all(getattr(iadet.transforms, name) in PARAMS for name in iadet.transforms.__all__)


@pytest.mark.parametrize("name", ["random-erasing", "hide-and-seek", "cutout", "gridmask"])
def test_a_preset_s_training_augmentation_and_its_v2_transform_erase_alike(name):
    params = method_params({"name": name})
    cls = implementation(params)
    assert cls.Params is type(params) is PARAMS[cls] and METHOD_PRESETS[name].family == "image space"
    augment = pickle.loads(pickle.dumps(build_image_augmentation(params)))  # as DataLoader workers get it
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.name != "name"}
    image = F.to_dtype(IMAGE, torch.float32, scale=True)
    erased = 0
    for seed in range(10):
        g_train, g_v2 = _g(seed), _g(seed)
        expected = augment(image, XYXY, g_train, 1.0)
        transform = cls(**values, generator=g_v2)
        assert transform.params == params
        if name == "gridmask":  # the preset ramps its probability over the run, as the authors' code
            transform.set_progress(1.0)
        out = transform(image, _target())[0]
        assert torch.equal(out, expected) and torch.equal(g_train.get_state(), g_v2.get_state())
        erased += not torch.equal(out, image)
    assert erased > 0
