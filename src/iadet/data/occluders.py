"""Occluders for any dataset (robustness occlusion sweep, ``test_occluded``).

A stable import path for :func:`paste_occluders`; the implementation, its box convention and
the texture sources live in :mod:`iadet.data.synth.occluders`.
"""

from __future__ import annotations

from iadet.data.synth.occluders import OCCLUDER_SOURCES, Occlusion, box_pixels, occlude, paste_occluders

__all__ = ["OCCLUDER_SOURCES", "Occlusion", "box_pixels", "occlude", "paste_occluders"]
