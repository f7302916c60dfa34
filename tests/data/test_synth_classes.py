"""The class codes of the built-in data: flip-closed, redundant, and no part naming a class alone."""

from __future__ import annotations

import itertools

from iadet.data.synth import CLASS_CODES, CLASSES, DECOY_CODES, PART_KINDS
from iadet.data.synth.classes import SLOTS, appearances, describe, mirror


def _looks() -> dict[str, tuple[tuple[int, ...], ...]]:
    """Every appearance of every class, and of each decoy (under a ``decoy<i>`` key)."""
    looks = {name: appearances(code) for name, code in CLASS_CODES.items()}
    looks.update({f"decoy{i}": appearances(code) for i, code in enumerate(DECOY_CODES)})
    return looks


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    return sum(x != y for x, y in zip(a, b))


def test_classes_are_the_codes_in_order():
    assert CLASSES == tuple(CLASS_CODES) and 6 <= len(CLASSES) <= 10
    assert len(set(CLASSES)) == len(CLASSES) and all(n.isidentifier() for n in CLASSES)
    for code in [*CLASS_CODES.values(), *DECOY_CODES]:
        assert len(code) == len(SLOTS) and all(0 <= p < len(PART_KINDS) for p in code)


def test_mirror_swaps_the_columns_and_is_an_involution():
    assert mirror((0, 1, 2, 3)) == (1, 0, 3, 2)
    for code in CLASS_CODES.values():
        assert mirror(mirror(code)) == code
        assert set(appearances(mirror(code))) == set(appearances(code))


def test_appearances_of_different_classes_differ_in_at_least_three_slots():
    looks = _looks()
    for (a, la), (b, lb) in itertools.combinations(looks.items(), 2):
        for x, y in itertools.product(la, lb):
            assert _distance(x, y) >= 3, (a, x, b, y)


def test_any_two_visible_parts_name_the_class():
    looks = _looks()
    for s1, s2 in itertools.combinations(range(len(SLOTS)), 2):
        seen: dict[tuple[int, int], str] = {}
        for name, codes in looks.items():
            for code in codes:
                key = (code[s1], code[s2])
                assert seen.setdefault(key, name) == name, (SLOTS[s1], SLOTS[s2], key, seen[key], name)


def test_no_single_part_names_the_class():
    for name, code in CLASS_CODES.items():
        for look in appearances(code):
            for slot, part in enumerate(look):
                sharing = {
                    other for other, c in CLASS_CODES.items() for o in appearances(c) if o[slot] == part
                }
                assert len(sharing) >= 3, (name, SLOTS[slot], PART_KINDS[part], sharing)


def test_every_part_kind_is_used_in_every_slot():
    for slot in range(len(SLOTS)):
        used = {look[slot] for code in CLASS_CODES.values() for look in appearances(code)}
        assert used == set(range(len(PART_KINDS)))


def test_describe_reads_top_row_then_bottom_row():
    assert describe((0, 1, 2, 3)) == f"{PART_KINDS[0]} {PART_KINDS[1]} / {PART_KINDS[2]} {PART_KINDS[3]}"
