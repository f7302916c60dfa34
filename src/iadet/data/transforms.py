"""The image-space occlusion baselines as ``torchvision.transforms.v2`` transforms.

:class:`RandomErasing`, :class:`HideAndSeek`, :class:`Cutout` and :class:`GridMask` wrap the classes of
:mod:`iadet.data.augment` (what ``iadet train`` runs) so that they go into a user's own ``v2.Compose`` as
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

Randomness: ``generator=None`` draws from torch's global generator, so ``torch.manual_seed`` (and a DataLoader's
per-worker seeding) reproduces a run; an explicit CPU ``torch.Generator`` makes the transform independent of the
global RNG, and saving ``generator.get_state()`` resumes it exactly. In DataLoader workers each worker gets a
*copy* of an explicit generator, so workers would draw the same values: with ``num_workers > 0`` leave it None.
For a given generator state the erased pixels and their values are those of the :mod:`iadet.data.augment` class.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import PIL.Image
import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms.v2 import Transform
from torchvision.transforms.v2 import functional as F

from iadet.config.methods import method_params
from iadet.data import augment
from iadet.errors import ConfigError

Plan = tuple[Tensor, Tensor]
"""What one call erases: ``(written, values)``, ``(C, H, W)`` bool and ``(C, H, W)`` float in [0, 1]."""


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


class _ImageSpaceTransform(Transform):
    """The shared machinery: parameters checked as the config checks them, one plan per call, applied to the image."""

    _preset: ClassVar[str]
    """The ``method.name`` whose parameter class checks the arguments."""
    _augmentation: ClassVar[Callable[[Any], augment.ImageAugmentation]]
    """The :mod:`iadet.data.augment` class that draws what is erased."""
    _uses_boxes: ClassVar[bool] = False

    def __init__(self, values: dict[str, Any], generator: torch.Generator | None) -> None:
        super().__init__()
        name = type(self).__name__
        try:
            params = method_params({**values, "name": self._preset})
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
        self.params: Any = params
        """The checked parameters (the ``method.*`` dataclass of the preset)."""
        self.generator = generator
        """The generator the draws come from; ``None``: torch's global one."""
        self._impl = self._augmentation(params)

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
        """Run the :mod:`iadet.data.augment` class on a NaN canvas of the image's shape.

        Those classes only write pixels (``F.erase``, ``torch.where``), never read them, so the pixels that come
        back as numbers are exactly the ones it erases, with the values it writes: the same draws, in the same
        order, from the same generator as on the real image. ``{"plan": None}`` when nothing is erased.
        """
        generator = self.generator if self.generator is not None else torch.default_generator
        canvas = torch.full((channels, height, width), math.nan)
        gt = torch.zeros(0, 4) if boxes is None else boxes
        drawn = self._impl(canvas, gt, generator, progress)
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


class RandomErasing(_ImageSpaceTransform):
    """Random Erasing for detection (Zhong, Zheng, Kang, Li, Yang, *Random Erasing Data Augmentation*, 2017).

    Algorithm 1 draws a rectangle of area ``U[area_min, area_max]`` times the region's and aspect
    ``U[aspect_min, 1/aspect_min]``, redrawn until it fits, and fills it (``fill``); Sec. 4.3's three detection
    schemes are ``mode``: ``"image"`` (IRE, one rectangle of the whole image with chance ``probability``),
    ``"object"`` (ORE, one inside each ground-truth box, each with chance ``probability`` independently) and
    ``"image+object"`` (I+ORE, both, the image first; the paper's best on VOC07). Defaults: the paper's.

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict whose ``"boxes"`` (``tv_tensors.BoundingBoxes``, any axis-aligned format)
    are where ORE erases; the boxes, masks and labels come back unchanged. Without boxes only IRE acts.

    Example::

        transforms = v2.Compose([
            v2.ToImage(),
            v2.RandomHorizontalFlip(),
            RandomErasing(mode="object", probability=0.5),
            v2.ToDtype(torch.float32, scale=True),
        ])
        image, target = transforms(image, {"boxes": boxes, "labels": labels})
    """

    _preset = "random-erasing"
    _augmentation = augment.RandomErasing
    _uses_boxes = True

    def __init__(
        self,
        *,
        mode: str = "image+object",
        probability: float = 0.5,
        area_min: float = 0.02,
        area_max: float = 0.4,
        aspect_min: float = 0.3,
        fill: str = "random",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(
            mode=mode,
            probability=probability,
            area_min=area_min,
            area_max=area_max,
            aspect_min=aspect_min,
            fill=fill,
        )
        super().__init__(values, generator)

    def _boxes_xyxy(self, sample: Any, flat: list[Any], height: int, width: int) -> Tensor | None:
        if self.params.mode == "image":
            return None
        return super()._boxes_xyxy(sample, flat, height, width)


class HideAndSeek(_ImageSpaceTransform):
    """Hide-and-Seek (Singh and Lee, *Hide-and-Seek: Forcing a Network to be Meticulous for Weakly-supervised
    Object and Action Localization*, 2017).

    The image is cut into ``s x s`` pixel patches, ``s`` drawn per image from ``grid_sizes`` (0: nothing hidden),
    and each patch is hidden with chance ``hide_prob``, filled with the mean (Sec. 3.2). Defaults: the paper's and
    its code's; the sizes are pixels of the image this transform sees (the paper's crops are 224 x 224).

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        transforms = v2.Compose([
            v2.ToImage(),
            HideAndSeek(grid_sizes=[32, 64]),
            v2.ToDtype(torch.float32, scale=True),
        ])
        image, target = transforms(image, target)
    """

    _preset = "hide-and-seek"
    _augmentation = augment.HideAndSeek

    def __init__(
        self,
        *,
        grid_sizes: Sequence[int] = (0, 16, 32, 44, 56),
        hide_prob: float = 0.5,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dict(grid_sizes=list(grid_sizes), hide_prob=hide_prob, fill=fill), generator)


class Cutout(_ImageSpaceTransform):
    """Cutout (DeVries and Taylor, *Improved Regularization of Convolutional Neural Networks with Cutout*, 2017).

    With chance ``probability``, ``holes`` squares of side ``size`` times the image's shorter side (or ``size_px``
    pixels) are cut, each centred uniformly over the image and clipped at its border. Defaults: the paper's
    (one square, always; its STL-10 side of a third).

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        transforms = v2.Compose([v2.ToImage(), Cutout(size=0.25), v2.ToDtype(torch.float32, scale=True)])
        image, target = transforms(image, target)
    """

    _preset = "cutout"
    _augmentation = augment.Cutout

    def __init__(
        self,
        *,
        size: float = 1 / 3,
        size_px: int = 0,
        holes: int = 1,
        probability: float = 1.0,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(size=size, size_px=size_px, holes=holes, probability=probability, fill=fill)
        super().__init__(values, generator)


class GridMask(_ImageSpaceTransform):
    """GridMask (Chen, Liu, Wang, Jia, *GridMask Data Augmentation*, 2020), as its detection code.

    A grid of unit ``d`` uniform in ``[d_min, d_max)`` (``d_max=0``: the image's shorter side) with random offsets;
    stripes ``ceil(ratio * d)`` wide are kept and the squares between them dropped (``fill``), optionally rotated
    by an angle uniform in ``[0, rotate)`` degrees; an image is masked with chance ``probability``.

    The authors' code ramps that chance linearly from 0 over training. Here the default ``ramp="constant"``
    masks at ``probability`` from the first call; with ``ramp="linear"`` call :meth:`set_progress` with the
    fraction of training done (each epoch or step) before using the transform, which raises otherwise. (In
    DataLoader workers the transform is a copy: a progress set in the main process reaches workers that are
    started afterwards, i.e. each epoch without ``persistent_workers``, not running ones.)

    Input and output: ``image`` ``(C, H, W)`` (``tv_tensors.Image``, tensor or PIL; uint8 or float in [0, 1]),
    optionally with a ``target`` dict, returned unchanged (boxes are not read).

    Example::

        gridmask = GridMask(probability=0.7, ramp="linear")
        transforms = v2.Compose([v2.ToImage(), gridmask, v2.ToDtype(torch.float32, scale=True)])
        for epoch in range(epochs):
            gridmask.set_progress(epoch / epochs)
            ...
    """

    _preset = "gridmask"
    _augmentation = augment.GridMask

    def __init__(
        self,
        *,
        ratio: float = 0.5,
        d_min: int = 2,
        d_max: int = 0,
        probability: float = 0.7,
        ramp: str = "constant",
        rotate: float = 0.0,
        fill: str = "mean",
        generator: torch.Generator | None = None,
    ) -> None:
        values = dict(
            ratio=ratio, d_min=d_min, d_max=d_max, probability=probability, ramp=ramp, rotate=rotate
        )
        super().__init__({**values, "fill": fill}, generator)
        self._fraction: float | None = None

    def set_progress(self, fraction: float) -> None:
        """Set the fraction of training done, in [0, 1]: the chance is ``fraction * probability`` (``ramp="linear"``).

        With ``ramp="constant"`` it has no effect, so a training loop may call it whatever the ramp.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"GridMask.set_progress: fraction must be a number in [0, 1], got {fraction!r}")
        self._fraction = float(fraction)

    def _progress(self) -> float:
        if self.params.ramp != "linear":
            return 1.0
        if self._fraction is None:
            raise RuntimeError(
                "GridMask(ramp='linear') was called before set_progress(fraction): "
                "call it with the fraction of training done (0 to 1), or use ramp='constant'"
            )
        return self._fraction
