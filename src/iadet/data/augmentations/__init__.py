"""The image-space occlusion baselines, one module each: Random Erasing, Hide-and-Seek, Cutout, GridMask.

A baseline's module holds, together, its parameter class, its presets (``register_preset``, family
``"image space"``) and one class that is both the ``torchvision.transforms.v2`` transform (re-exported by
:mod:`iadet.transforms`) and the sampling ``iadet train`` runs (its ``erase``, which
:func:`build_image_augmentation` returns), linked to its parameters by a class keyword
(``class Cutout(ImageSpaceTransform, params=CutoutParams)``). Nothing lists the modules: the registry
(:func:`iadet.config.methods.discover_methods`) imports every module of this package, so a new baseline is one
new file here. The shared pieces are in :mod:`iadet.data.augmentations.base`.
"""

from iadet.data.augmentations.base import (
    ImageAugmentation,
    ImageAugmentationParams,
    ImageSpaceTransform,
    build_image_augmentation,
)
from iadet.data.augmentations.cutout import Cutout
from iadet.data.augmentations.gridmask import GridMask
from iadet.data.augmentations.hide_and_seek import HideAndSeek
from iadet.data.augmentations.random_erasing import RandomErasing

__all__ = [
    "Cutout",
    "GridMask",
    "HideAndSeek",
    "ImageAugmentation",
    "ImageAugmentationParams",
    "ImageSpaceTransform",
    "RandomErasing",
    "build_image_augmentation",
]
