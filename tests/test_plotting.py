from __future__ import annotations

import sys

from PIL import Image

from iadet.plotting import new_figure, save_figure


def test_saved_figure_is_figsize_times_dpi_pixels_in_a_new_folder(tmp_path):
    figure = new_figure(3.0, 2.0, dpi=50)
    figure.subplots().plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "a" / "b" / "plot.png")
    with Image.open(path) as image:
        assert image.size == (150, 100)
    path = save_figure(figure, tmp_path / "twice.png", dpi=100)
    with Image.open(path) as image:
        assert image.size == (300, 200)


def test_no_pyplot_state():
    new_figure(1.0, 1.0)
    assert "matplotlib.pyplot" not in sys.modules or sys.modules["matplotlib.pyplot"].get_fignums() == []
