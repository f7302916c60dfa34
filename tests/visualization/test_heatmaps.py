"""Tests of iadet.visualization.heatmaps: crops, upsampling, colouring and the grid layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iadet.visualization.heatmaps import (
    HEADER_HEIGHT,
    LABEL_WIDTH,
    PAD,
    TITLE_HEIGHT,
    Grid,
    heatmap_overlay,
    roi_crop,
    upsample,
)


def test_roi_crop_takes_the_box_and_stretches_it_square() -> None:
    image = np.zeros((60, 80, 3), np.uint8)
    image[10:30, 20:60] = (200, 10, 10)  # a 40 x 20 red block
    crop = roi_crop(image, (20, 10, 60, 30), 32)
    assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
    assert (crop[2:-2, 2:-2] == (200, 10, 10)).all()
    # a degenerate box still gives a tile
    assert roi_crop(image, (5, 5, 5, 5), 16).shape == (16, 16, 3)


def test_upsample_puts_each_cell_on_its_bin() -> None:
    values = torch.zeros(7, 7)
    values[1, 5] = 1.0
    up = upsample(values, 70)
    assert up.shape == (70, 70)
    y, x = divmod(int(up.argmax()), 70)
    assert 10 <= y < 20 and 50 <= x < 60  # inside cell (1, 5)
    torch.testing.assert_close(upsample(torch.full((7, 7), 3.0), 28), torch.full((28, 28), 3.0))


def test_heatmap_overlay_colours_high_red_and_low_blue() -> None:
    crop = np.full((56, 56, 3), 128, np.uint8)
    values = torch.zeros(7, 7)
    values[:3, :3] = 5.0
    out = heatmap_overlay(crop, values)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert out[2, 2, 0] > out[2, 2, 2] + 40  # high: red
    assert out[-3, -3, 2] > out[-3, -3, 0] + 40  # low: blue
    # min-max normalisation: a scaled and shifted map looks the same
    np.testing.assert_array_equal(heatmap_overlay(crop, 3 * values - 7), out)
    # a fixed range keeps absolute values: all ones in [0, 1] is the top of the scale everywhere
    top = heatmap_overlay(crop, torch.ones(7, 7), value_range=(0.0, 1.0))
    assert (top[..., 0] > top[..., 2] + 40).all()
    # a constant map under min-max is the middle of the scale (green-ish), not an error
    middle = heatmap_overlay(crop, torch.ones(7, 7))
    assert (middle[..., 1] >= middle[..., 0]).all() and (middle[..., 1] >= middle[..., 2]).all()


def test_heatmap_overlay_on_the_luminance_ignores_the_object_colour() -> None:
    values = torch.rand(7, 7, generator=torch.Generator().manual_seed(0))
    red = np.zeros((28, 28, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((28, 28, 3), round(0.299 * 255), np.uint8)
    np.testing.assert_allclose(
        heatmap_overlay(red, values).astype(int), heatmap_overlay(grey, values).astype(int), atol=1
    )
    assert not np.array_equal(
        heatmap_overlay(red, values, grayscale=False), heatmap_overlay(grey, values, grayscale=False)
    )


def test_grid_size_and_tiles() -> None:
    grid = Grid(3, 5, 40, title="t", headers=["a"] * 5, row_labels=["a long row label that wraps"] * 3)
    assert grid.size == (
        LABEL_WIDTH + 5 * (40 + PAD) + PAD,
        TITLE_HEIGHT + HEADER_HEIGHT + 3 * (40 + PAD) + PAD,
    )
    assert grid.image.size == grid.size
    tile = np.full((40, 40, 3), (10, 200, 30), np.uint8)
    grid.put(2, 4, tile, caption="p 0.5")
    x, y = grid.origin(2, 4)
    pixels = np.asarray(grid.image)
    assert (pixels[y + 5, x + 5] == (10, 200, 30)).all()  # the tile
    assert (pixels[y + 39, x + 39] == 0).all()  # the caption band
    assert (pixels[y + 40 + PAD - 1, x] == 255).all()  # background between tiles
    with pytest.raises(ValueError, match="40x40"):
        grid.put(0, 0, np.zeros((30, 40, 3), np.uint8))
