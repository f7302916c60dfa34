"""Figures without pyplot: matplotlib's object API on the Agg canvas.

Every plot iadet writes (compare reports, robustness curves, error analysis) is made here, so none touches
pyplot's global state or a display, and plotting is safe in worker threads and on headless machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["DPI", "new_figure", "save_figure"]

DPI = 100


def new_figure(width: float, height: float, *, dpi: int = DPI) -> Any:
    """A ``matplotlib.figure.Figure`` of ``width x height`` inches, attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: str | Path, *, dpi: int | None = None) -> Path:
    """Write ``figure`` to ``path`` (parents created) at its own dpi unless ``dpi`` is given.

    No ``bbox_inches="tight"``: the image is exactly ``figsize * dpi`` pixels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=figure.get_dpi() if dpi is None else dpi)
    return path
