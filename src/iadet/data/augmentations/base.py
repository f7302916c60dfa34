"""What the image-space occlusion baselines share: their parameters' base, the fills, one class for two uses.

The simple augmentations a practitioner tries before a feature-space method. Each is one class (in its own
module of this package) that is at once what ``iadet train`` runs and a ``torchvision.transforms.v2``
transform for a user's own pipeline, so that the two cannot drift apart: :meth:`ImageSpaceTransform.erase`
draws and writes the erased pixels, and the v2 call runs that same method.

In ``iadet train`` (:func:`build_image_augmentation`) they run in the training data pipeline only (evaluation
and inference never see them) and leave boxes, masks and labels as they are — an object erased whole keeps its
box, as in the papers. Each draws its randomness from a ``torch.Generator`` seeded per training sample by
:func:`iadet.data.sampler.augmentation_seed` (the run's seed, the epoch and the image), so what is erased is a
function of the seed and the position in the data order: an interrupted run resumes to the same weights.
Schedules that ramp over training (GridMask's probability) read ``progress``, the run's fraction done at the
sample's iteration.

Every :meth:`~ImageSpaceTransform.erase` takes ``image`` ``(3, H, W)`` float in [0, 1], ``boxes`` ``(K, 4)``
float ``x1, y1, x2, y2`` in pixels, a generator and ``progress`` in [0, 1]; it returns a new image. The pixels
are written with ``torchvision.transforms.v2.functional.erase``; the sampling is ours, because torchvision's
``RandomErasing`` samples the aspect ratio log-uniformly, gives up after 10 tries and fills with N(0, 1) noise
meant for normalised tensors, while Zhong et al.'s Algorithm 1 draws it uniformly, tries until a rectangle
fits and fills with uniform random values; and none of the libraries erase inside each ground-truth box
(object-aware erasing).

As v2 transforms (:mod:`iadet.transforms` re-exports them) they go into a user's own ``v2.Compose`` as
torchvision's detection transforms do::

    from torchvision.transforms import v2
    from iadet.transforms import RandomErasing

    train_tf = v2.Compose([
        v2.ToImage(),
        v2.RandomHorizontalFlip(),
        RandomErasing(mode="image+object"),
        v2.ToDtype(torch.float32, scale=True),
    ])
    image, target = train_tf(pil_image, {"boxes": boxes, "labels": labels})

A call takes what torchvision's detection transforms take: a sample ``(image, target)`` (or any nesting of
tuples, lists and dicts) or a lone image. The image is a ``tv_tensors.Image``, a plain ``(C, H, W)`` tensor
(the first plain tensor of the sample when it holds no ``Image`` or PIL image, as v2's rule) or a PIL image,
with 1 or 3 channels; uint8 (any integer type) or floating point in [0, 1] (the transform goes before
``v2.Normalize``: the fills are pixel values in [0, 1]). The ground-truth boxes are ``target["boxes"]``, a
``tv_tensors.BoundingBoxes`` in any axis-aligned format (or the sample's only ``BoundingBoxes`` when no key is
``"boxes"``); only object-aware Random Erasing reads them. Boxes, masks, labels and everything else come back as
they went in, the same objects: the papers leave them unchanged, an object erased whole keeps its box.

The output image has the input's type, dtype and device; pixels that are not erased are the input's, bit for bit.
Erased pixels of an integer image are the fill in [0, 1] times the type's maximum, rounded (``mean`` fill on
uint8: 124, 116, 104).

Randomness: ``generator=None`` draws from torch's global generator, so ``torch.manual_seed`` (and a
DataLoader's per-worker seeding) reproduces a run; an explicit CPU ``torch.Generator`` makes the transform
independent of the global RNG, and saving ``generator.get_state()`` resumes it exactly. In DataLoader workers
each worker gets a *copy* of an explicit generator, so workers would draw the same values: with
``num_workers > 0`` leave it None. For a given generator state the erased pixels and their values are those
``iadet train`` writes: both come from :meth:`~ImageSpaceTransform.erase`.

A new baseline is one new module here: its parameter class (a subclass of :class:`ImageAugmentationParams`),
its ``register_preset(..., family="image space")`` and ``class X(ImageSpaceTransform, params=XParams)`` with
its keyword-only constructor and its :meth:`~ImageSpaceTransform.erase`; the registry
(:func:`iadet.config.methods.discover_methods`) imports every module of this package.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import PIL.Image
import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from iadet.config.methods import (
    METHOD_PRESETS,
    MethodParams,
    check_one_of,
    implementation,
    method_params,
    register_implementation,
)
from iadet.errors import ConfigError

IMAGE_MEAN = (0.485, 0.456, 0.406)
"""The detector's input mean (torchvision's ``GeneralizedRCNNTransform`` default, ImageNet's):
``fill=mean`` pixels are 0 once normalised, as the papers' mean-filled patches."""

ImageAugmentation = Callable[[Tensor, Tensor, torch.Generator, float], Tensor]
"""What ``iadet train``'s data pipeline calls: ``(image, boxes, generator, progress) -> image``
(:meth:`ImageSpaceTransform.erase` of a transform built by :func:`build_image_augmentation`)."""

Plan = tuple[Tensor, Tensor]
"""What one call erases: ``(written, values)``, ``(C, H, W)`` bool and ``(C, H, W)`` float in [0, 1]."""


def draw_uniform(g: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    """Uniform in ``[low, high)``, one float64 draw from ``g``."""
    return low + (high - low) * float(torch.rand((), generator=g, dtype=torch.float64))


def draw_int(g: torch.Generator, low: int, high: int) -> int:
    """Uniform in ``[low, high)``."""
    return int(torch.randint(low, high, (), generator=g))


def fill_values(fill: str, channels: int, h: int, w: int, g: torch.Generator) -> Tensor:
    """``(C, h, w)`` replacement pixels: the detector's mean, uniform random, or zero."""
    if fill == "random":
        return torch.rand(channels, h, w, generator=g)
    value = IMAGE_MEAN if fill == "mean" else (0.0,) * 3
    return torch.tensor(value[:channels]).view(-1, 1, 1).expand(channels, h, w)


# ----------------------------------------------------------------------------------------------
# the parameters' base


@dataclass
class ImageAugmentationParams(MethodParams):
    """Base of the image-space baselines: they act in the data pipeline, the detector is the baseline's."""

    fill: str = "mean"
    """What erased pixels become: ``mean`` (the detector's input mean, ImageNet's, i.e. 0 after
    normalisation), ``random`` (uniform in [0, 1] per pixel and channel) or ``zero`` (black)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_one_of(self, "fill", ("mean", "random", "zero"))


# ----------------------------------------------------------------------------------------------
# the class: the training pipeline's sampling and the v2 machinery


def _is_pure_tensor(value: Any) -> bool:
    return isinstance(value, Tensor) and not isinstance(value, tv_tensors.TVTensor)


def _find_boxes(sample: Any) -> list[Any]:
    """The values under a ``"boxes"`` key anywhere in ``sample`` (dicts inside tuples and lists)."""
    found = []
    if isinstance(sample, Mapping):
        if "boxes" in sample:
            found.append(sample["boxes"])
        for value in sample.values():
            found.extend(_find_boxes(value))
    elif isinstance(sample, (tuple, list)):
        for value in sample:
            found.extend(_find_boxes(value))
    return found


_T = TypeVar("_T", bound="ImageSpaceTransform")


class ImageSpaceTransform(Transform):
    """The shared machinery: parameters checked as the config checks them, one plan per call, applied to the image.

    A subclass names its parameter class, ``class Cutout(ImageSpaceTransform, params=CutoutParams)``, which
    registers it as what every preset of that class runs
    (:func:`iadet.config.methods.register_implementation`), and defines :meth:`erase`. Its keyword-only
    constructor is the parameter class's fields (and ``generator``), checked by the preset of that class that
    has no defaults of its own.
    """

    Params: ClassVar[type[ImageAugmentationParams]] = ImageAugmentationParams
    """The parameter class (the ``params=`` class keyword)."""
    _uses_boxes: ClassVar[bool] = False

    def __init_subclass__(cls, params: type[ImageAugmentationParams] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if params is not None:
            cls.Params = params
            register_implementation(params, cls)

    def __init__(self, values: dict[str, Any], generator: torch.Generator | None) -> None:
        name = type(self).__name__
        try:
            params = method_params({**values, "name": self._preset()})
        except ConfigError as exc:
            message = re.sub(r"\bmethod\.(?=\w)", "", str(exc))
            raise ValueError(f"{name}: {message}") from None
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"{name}: generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(
                f"{name}: generator must be a CPU torch.Generator, got one on {generator.device}"
            )
        self._setup(params, generator)

    def _setup(self, params: ImageAugmentationParams, generator: torch.Generator | None) -> None:
        super().__init__()
        self.params: Any = params
        """The checked parameters (the ``method.*`` dataclass of the preset)."""
        self.generator = generator
        """The generator the draws come from; ``None``: torch's global one."""

    @classmethod
    def from_params(cls: type[_T], params: ImageAugmentationParams) -> _T:
        """The transform for parameters already checked (a config's ``method``, from
        :func:`iadet.config.methods.method_params`), drawing from torch's global generator when called as
        a v2 transform; ``iadet train`` calls its :meth:`erase` with each sample's own generator."""
        if not isinstance(params, cls.Params):
            raise TypeError(f"{cls.__name__} takes {cls.Params.__name__}, got {type(params).__name__}")
        transform = cls.__new__(cls)
        transform._setup(params, None)
        return transform

    @classmethod
    def _preset(cls) -> str:
        """The ``method.name`` whose parameter class checks the arguments: the first registered preset of
        :attr:`Params` that overrides none of its defaults."""
        for name, preset in METHOD_PRESETS.items():
            if preset.params is cls.Params and not preset.defaults:
                return name
        raise TypeError(f"{cls.__name__}: no registered preset of {cls.Params.__name__} without defaults")

    def erase(self, image: Tensor, boxes: Tensor, g: torch.Generator, progress: float = 0.0) -> Tensor:
        """The erased copy of ``image`` ``(3, H, W)`` float in [0, 1] (``boxes`` ``(K, 4)`` XYXY pixels, the
        draws from ``g``, ``progress`` the fraction of training done): what ``iadet train`` runs on each
        sample."""
        raise NotImplementedError

    def _progress(self) -> float:
        return 1.0

    def extra_repr(self) -> str:
        names = [key for key in inspect.signature(type(self)).parameters if key != "generator"]
        fields = [f"{key}={getattr(self.params, key)!r}" for key in names]
        return ", ".join([*fields, f"generator={'None' if self.generator is None else 'torch.Generator'}"])

    # v2's ``Transform.forward`` hands ``make_params`` a flat list of leaves, from which ``target["boxes"]`` cannot
    # be told from other boxes of the sample (iadet's datasets also carry ``target["proposals"]``): forward finds
    # them in the nested sample first, then flattens as v2 does and transforms the image(s) only.
    def forward(self, *inputs: Any) -> Any:
        """Erase the image of ``inputs`` (a sample or a lone image); every other leaf is returned as it came."""
        progress = self._progress()  # GridMask refuses here, before any work, when its ramp lacks a progress
        sample = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = tree_flatten(sample)
        self.check_inputs(flat)
        images = self._image_positions(flat)
        if not images:
            raise TypeError(
                f"{type(self).__name__}: no image in the input (a tv_tensors.Image, tensor or PIL image)"
            )
        channels, height, width = self._image_dimensions([flat[i] for i in images])
        boxes = self._boxes_xyxy(sample, flat, height, width)
        params = self._draw(channels, height, width, boxes, progress)
        out = [self.transform(leaf, params) if i in images else leaf for i, leaf in enumerate(flat)]
        return tree_unflatten(out, spec)

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        """Refuse videos: the papers' methods erase one still image."""
        if any(isinstance(leaf, tv_tensors.Video) for leaf in flat_inputs):
            raise TypeError(f"{type(self).__name__}: videos are not supported, only images")

    @staticmethod
    def _image_positions(flat: list[Any]) -> list[int]:
        """v2's rule: every ``Image`` and PIL image; with neither (and no video), the first plain tensor."""
        explicit = [i for i, leaf in enumerate(flat) if isinstance(leaf, (tv_tensors.Image, PIL.Image.Image))]
        if explicit:
            return explicit
        return next(([i] for i, leaf in enumerate(flat) if _is_pure_tensor(leaf)), [])

    def _image_dimensions(self, images: list[Any]) -> tuple[int, int, int]:
        name = type(self).__name__
        shapes = set()
        for image in images:
            if isinstance(image, Tensor):
                if image.ndim != 3:
                    raise ValueError(
                        f"{name}: expected an image of shape (C, H, W), got {tuple(image.shape)}"
                    )
                if image.dtype == torch.bool or image.is_complex():
                    raise TypeError(f"{name}: expected an integer or floating-point image, got {image.dtype}")
            shapes.add(tuple(F.get_dimensions(image)))
        if len(shapes) > 1:
            raise ValueError(f"{name}: the images of one sample must have one shape, got {sorted(shapes)}")
        channels, height, width = shapes.pop()
        if channels not in (1, 3):
            raise ValueError(f"{name}: expected a 1- or 3-channel image, got {channels} channels")
        return channels, height, width

    def _boxes_xyxy(self, sample: Any, flat: list[Any], height: int, width: int) -> Tensor | None:
        """``(K, 4)`` float XYXY ground-truth boxes, or ``None`` when the sample has none (or they are not read)."""
        if not self._uses_boxes:
            return None
        name = type(self).__name__
        keyed = _find_boxes(sample)
        if keyed:
            if len(keyed) > 1:
                raise ValueError(f"{name}: the sample has {len(keyed)} 'boxes' entries, expected one")
            boxes = keyed[0]
            if not isinstance(boxes, tv_tensors.BoundingBoxes):
                raise TypeError(
                    f"{name}: target['boxes'] must be tv_tensors.BoundingBoxes (its format is needed), "
                    f"got {type(boxes).__name__}"
                )
        else:
            found = [leaf for leaf in flat if isinstance(leaf, tv_tensors.BoundingBoxes)]
            if not found:
                return None
            if len(found) > 1:
                raise ValueError(
                    f"{name}: the sample has {len(found)} BoundingBoxes and none under a 'boxes' key"
                )
            boxes = found[0]
        if tv_tensors.is_rotated_bounding_format(boxes.format):
            raise ValueError(
                f"{name}: object-aware erasing needs axis-aligned boxes, got format {boxes.format.name}"
            )
        if tuple(boxes.canvas_size) != (height, width):
            raise ValueError(
                f"{name}: the boxes' canvas_size {tuple(boxes.canvas_size)} is not the image's size {(height, width)}"
            )
        xyxy = F.convert_bounding_box_format(boxes, new_format=tv_tensors.BoundingBoxFormat.XYXY)
        return xyxy.as_subclass(Tensor).detach().to("cpu", torch.float32).reshape(-1, 4)

    def _draw(
        self, channels: int, height: int, width: int, boxes: Tensor | None, progress: float
    ) -> dict[str, Any]:
        """Run :meth:`erase` (what ``iadet train`` runs) on a NaN canvas of the image's shape.

        It only writes pixels (``F.erase``, ``torch.where``), never reads them, so the pixels that come back
        as numbers are exactly the ones it erases, with the values it writes: the same draws, in the same
        order, from the same generator as on the real image. ``{"plan": None}`` when nothing is erased.
        """
        generator = self.generator if self.generator is not None else torch.default_generator
        canvas = torch.full((channels, height, width), math.nan)
        gt = torch.zeros(0, 4) if boxes is None else boxes
        drawn = self.erase(canvas, gt, generator, progress)
        written = ~torch.isnan(drawn)
        return {"plan": (written, drawn) if bool(written.any()) else None}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Write the plan's values into one image, keeping its type, dtype and device."""
        plan: Plan | None = params["plan"]
        if plan is None:
            return inpt
        if isinstance(inpt, PIL.Image.Image):
            return F.to_pil_image(_apply(F.pil_to_tensor(inpt), plan), mode=inpt.mode)
        out = _apply(inpt.as_subclass(Tensor), plan)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out


def _apply(image: Tensor, plan: Plan) -> Tensor:
    written, values = (t.to(image.device) for t in plan)
    if image.is_floating_point():
        return torch.where(written, values.to(image.dtype), image)
    top = torch.iinfo(image.dtype).max
    scaled = (values.to(torch.float64) * top).round().clamp(0, top).to(image.dtype)
    return torch.where(written, scaled, image)


# ----------------------------------------------------------------------------------------------


def build_image_augmentation(params: MethodParams) -> ImageAugmentation | None:
    """The training-time image augmentation of a method, or ``None`` for methods on RoI features.

    The :meth:`~ImageSpaceTransform.erase` of the class registered for ``params``'s class (picklable: it goes
    to the DataLoader's workers).
    """
    if not isinstance(params, ImageAugmentationParams):
        return None
    return implementation(params).from_params(params).erase
