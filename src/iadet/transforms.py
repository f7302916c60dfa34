"""The image-space occlusion baselines as ``torchvision.transforms.v2`` transforms, for your own pipelines.

Random Erasing (Zhong et al. 2017), Hide-and-Seek (Singh and Lee 2017), Cutout (DeVries and Taylor 2017) and
GridMask (Chen et al. 2020) with the papers' defaults, the same sampling as ``iadet train``'s baselines; they take
``(image, target)`` as torchvision's detection transforms do, erase pixels of the image and return the boxes, masks
and labels unchanged::

    from torchvision.transforms import v2
    from iadet.transforms import RandomErasing

    transforms = v2.Compose([v2.ToImage(), RandomErasing(), v2.ToDtype(torch.float32, scale=True)])

See :mod:`iadet.data.augmentations.base` for the inputs they accept and how they draw; each class is also what
``iadet train`` runs for its method (``method.name=random-erasing`` ...), so the two draw alike.
"""

from __future__ import annotations

from iadet.data.augmentations import Cutout, GridMask, HideAndSeek, RandomErasing

__all__ = ["Cutout", "GridMask", "HideAndSeek", "RandomErasing"]
