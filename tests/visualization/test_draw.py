"""Tests of iadet.visualization.draw (Fig. 7): boxes in the class colour, captions that stay readable."""

from __future__ import annotations

import numpy as np
from PIL import Image

from iadet.visualization.draw import _text_colour, class_colors, draw_detections

CLASSES = ("cat", "dog", "bird")


def test_boxes_and_caption_bands_in_the_class_colour() -> None:
    image = np.full((120, 160, 3), 90, np.uint8)
    boxes = np.array([[20.0, 40.0, 80.0, 100.0], [100.0, 0.0, 150.0, 60.0]], np.float32)
    out = np.asarray(draw_detections(image, boxes, np.array([2, 3]), np.array([0.9, 0.5]), CLASSES, width=2))
    colours = class_colors(len(CLASSES))
    assert out.shape == image.shape and (image == 90).all()  # the input is left alone
    assert tuple(out[70, 20]) == colours[1] and tuple(out[100, 50]) == colours[1]  # left and bottom edges
    assert tuple(out[39, 21]) == colours[1]  # the caption band above the box
    assert tuple(out[2, 101]) == colours[2]  # a box at the top edge gets its caption inside
    assert tuple(out[70, 50]) == (90, 90, 90)  # the inside is not filled


def test_captions_name_the_class_and_score() -> None:
    image = Image.new("RGB", (200, 150), (90, 90, 90))
    boxes = np.array([[30.0, 60.0, 120.0, 140.0]])
    with_score = np.asarray(draw_detections(image, boxes, np.array([1]), np.array([0.87]), CLASSES))
    without = np.asarray(draw_detections(image, boxes, np.array([1]), None, CLASSES))
    band = slice(40, 60), slice(30, 120)
    # a longer caption ("cat 0.87" vs "cat") covers more of the band with the class colour
    colour = np.array(class_colors(3)[0])
    assert (with_score[band] == colour).all(-1).sum() > (without[band] == colour).all(-1).sum()
    assert image.getpixel((0, 0)) == (90, 90, 90)
    empty = draw_detections(image, np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0), CLASSES)
    assert empty.size == image.size and empty is not image


def test_text_colour_reads_on_its_background() -> None:
    assert _text_colour((255, 255, 0)) == (0, 0, 0)
    assert _text_colour((20, 20, 160)) == (255, 255, 255)
