"""Writing one image in PASCAL VOC layout: JPEG, annotation XML and the two segmentation PNGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

VOID = 255
"""Segmentation value of occluder pixels lying over an object (VOC's "void" label)."""


@dataclass(frozen=True)
class ObjectRecord:
    """One ``<object>`` of an annotation."""

    name: str
    box: tuple[int, int, int, int]
    """VOC ``xmin, ymin, xmax, ymax``: 1-based, inclusive pixel coordinates."""
    truncated: bool
    difficult: bool
    occlusion: float
    """Fraction of the box covered by pasted occluders (0 outside ``test_occluded``)."""
    hidden: float
    """Fraction of the object's in-image silhouette hidden by anything in front of it."""


def voc_palette() -> list[int]:
    """The 256-colour PASCAL VOC palette (index bits spread over the high bits of R, G, B)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette.extend((r, g, b))
    return palette


_PALETTE = voc_palette()


def annotation_xml(image_id: str, height: int, width: int, objects: list[ObjectRecord], folder: str) -> str:
    """The VOC XML of one image, as text (deterministic formatting)."""
    lines = [
        "<annotation>",
        f"  <folder>{escape(folder)}</folder>",
        f"  <filename>{escape(image_id)}.jpg</filename>",
        "  <source>",
        "    <database>iadet synthetic occlusion dataset</database>",
        "    <annotation>iadet.data.synth</annotation>",
        "  </source>",
        "  <size>",
        f"    <width>{width}</width>",
        f"    <height>{height}</height>",
        "    <depth>3</depth>",
        "  </size>",
        "  <segmented>1</segmented>",
    ]
    for obj in objects:
        xmin, ymin, xmax, ymax = obj.box
        lines += [
            "  <object>",
            f"    <name>{escape(obj.name)}</name>",
            "    <pose>Unspecified</pose>",
            f"    <truncated>{int(obj.truncated)}</truncated>",
            f"    <difficult>{int(obj.difficult)}</difficult>",
            f"    <occlusion>{obj.occlusion:.3f}</occlusion>",
            f"    <hidden>{obj.hidden:.3f}</hidden>",
            "    <bndbox>",
            f"      <xmin>{xmin}</xmin>",
            f"      <ymin>{ymin}</ymin>",
            f"      <xmax>{xmax}</xmax>",
            f"      <ymax>{ymax}</ymax>",
            "    </bndbox>",
            "  </object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write_image(
    root: Path,
    image_id: str,
    image: np.ndarray,
    objects: list[ObjectRecord],
    instance_map: np.ndarray,
    class_map: np.ndarray,
    *,
    jpeg_quality: int,
    folder: str,
) -> None:
    """Write ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml`` and both segmentation PNGs."""
    height, width = image.shape[:2]
    Image.fromarray(image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=jpeg_quality)
    xml = annotation_xml(image_id, height, width, objects, folder)
    (root / "Annotations" / f"{image_id}.xml").write_text(xml, encoding="utf-8")
    for sub, values in (("SegmentationObject", instance_map), ("SegmentationClass", class_map)):
        png = Image.fromarray(np.ascontiguousarray(values, dtype=np.uint8))
        png.putpalette(_PALETTE)  # makes it a palette ("P") image, as VOC's PNGs
        png.save(root / sub / f"{image_id}.png")
