"""The synthetic classes: composite objects coded by which part sits in which quadrant.

Every object (and every decoy) is a body with four parts in a 2x2 grid, slots ordered
``(top-left, top-right, bottom-left, bottom-right)``. A class is a *code*: the part kind in
each slot. Codes were chosen (by an exhaustive search over the 4^4 words) so that

* a class has two appearances, its code and the code mirrored left-right (an object facing left
  or right), so horizontal-flip augmentation maps every class onto itself;
* any two appearances of different classes (decoys included) differ in at least 3 of the 4
  slots, so any two visible parts identify the class: an object with half of it hidden can
  still be recognised from the rest;
* any single visible part is shared by at least 3 classes, so no part identifies a class alone.

The tests re-check these three properties from the tables below.
"""

from __future__ import annotations

PART_KINDS: tuple[str, ...] = ("glyph", "coin", "dahlia", "eye")
"""Part kinds, by index: a handwritten digit on a pale tile (scikit-learn digits), a coin
(scikit-image ``coins``), a dahlia-petal diamond (scikit-learn ``flower.jpg``), and a cat's eye
(scikit-image ``chelsea``)."""

SLOTS: tuple[str, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")

GLYPH, COIN, DAHLIA, EYE = range(4)

CLASS_CODES: dict[str, tuple[int, int, int, int]] = {
    "aster": (COIN, EYE, EYE, DAHLIA),
    "bolt": (GLYPH, COIN, EYE, COIN),
    "crest": (DAHLIA, EYE, DAHLIA, GLYPH),
    "drum": (COIN, COIN, GLYPH, GLYPH),
    "ember": (COIN, DAHLIA, DAHLIA, COIN),
    "fern": (GLYPH, GLYPH, DAHLIA, DAHLIA),
    "gale": (GLYPH, EYE, GLYPH, EYE),
    "helm": (GLYPH, DAHLIA, COIN, GLYPH),
}
"""Canonical code of each class, slots in :data:`SLOTS` order."""

DECOY_CODES: tuple[tuple[int, int, int, int], ...] = (
    (DAHLIA, DAHLIA, EYE, EYE),
    (EYE, EYE, COIN, COIN),
)
"""Part combinations that are no class (at least 3 slots away from every class appearance):
drawn as unannotated distractor objects."""

CLASSES: tuple[str, ...] = tuple(CLASS_CODES)
"""Class names, background excluded; XML ``<name>`` values and ``classes.txt`` lines."""


def mirror(code: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The code of the left-right mirror image: swap the columns."""
    tl, tr, bl, br = code
    return (tr, tl, br, bl)


def appearances(code: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int], ...]:
    """The distinct codes an object of this code shows: itself and its mirror image."""
    flipped = mirror(code)
    return (code,) if flipped == code else (code, flipped)


def describe(code: tuple[int, int, int, int]) -> str:
    """Human-readable layout, e.g. ``"coin eye / eye dahlia"`` (top row / bottom row)."""
    names = [PART_KINDS[p] for p in code]
    return f"{names[0]} {names[1]} / {names[2]} {names[3]}"
