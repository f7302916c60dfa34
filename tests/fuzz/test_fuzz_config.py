"""Fuzzing YAML configs and ``--set KEY=VALUE`` overrides: known and unknown sections and keys, values of
every YAML type (huge, non-finite, fractions, lists, nulls), ``_base_`` chains, hostile YAML (tags,
aliases, deep nesting) and mutated bytes.

Each config loads into a validated :class:`~iadet.config.Config` or is refused by a one-line
:class:`~iadet.errors.ConfigError` naming the file, the ``section.key`` at fault or the override
(:mod:`fuzz.harness`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz.harness import fuzz_settings, outcome, scratch_dir, tried
from fuzz.test_fuzz_voc import mutated
from iadet.config import load_config
from iadet.config.methods import method_names
from iadet.config.schema import SECTIONS

_DIR = scratch_dir("iadet-fuzz-config-")
_COUNTER = itertools.count()
KEYS = {name: [f.name for f in dataclasses.fields(schema)] for name, schema in SECTIONS.items()}
METHOD_KEYS = [
    "name", "start", "prob", "threshold", "drop_rate", "ratio", "strategy", "width", "blocks", "d_min",
    "d_max", "holes", "size", "aspect_min", "hide_prob", "grid_sizes", "warmup", "lr", "mask_ratio",
]  # fmt: skip

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.integers(-(10**400), 10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1/3", "1/0", "0/0", "1e999", "-.inf", ".nan", "null", "None", "yes", "0x1f", "1_0"]),
    st.sampled_from(method_names() + ["tiny", "resnet50_fpn", "voc07", "coco", "auto", "cpu"]),
    st.text(max_size=12),
)
value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def section_key(draw) -> tuple[str, str]:
    section = draw(st.sampled_from([*KEYS, "method", "modle", "", "train.lr"]))
    keys = KEYS.get(section, METHOD_KEYS)
    return section, draw(st.one_of(st.sampled_from(keys), st.text(max_size=8)))


@st.composite
def config_document(draw) -> tuple[bytes, list[str]]:
    """YAML bytes and the names an error may name: the dotted keys it sets, its ``_base_``."""
    doc: dict = {}
    dotted = []
    for _ in range(draw(st.integers(0, 6))):
        section, key = draw(section_key())
        if draw(st.integers(0, 9)) == 0:
            doc[section] = draw(value)  # a section that is not a mapping
        elif isinstance(doc.setdefault(section, {}), dict):
            doc[section][key] = draw(value)
            dotted.append(f"{section}.{key}")
    if draw(st.integers(0, 4)) == 0:
        base = draw(st.one_of(st.sampled_from(["quick", "default", "/etc/passwd", "missing.yaml"]), value))
        doc["_base_"] = base
        if isinstance(base, str):
            dotted.append(base)  # an error in the base names the base file
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        text = "{}\n"
    extra = draw(
        st.sampled_from(
            [
                "",
                "x: !!python/object/apply:os.system ['echo pwned']\n",
                "a: &a [*a]\n",
                "a: &a [1, 2]\nb: [*a, *a, *a]\n",
                "train: {lr: " + "[" * 200 + "]" * 200 + "}\n",
                "train:\n  lr: !!binary aGVsbG8=\n",
                "? [1, 2]\n: 3\n",
                "--- {}\n--- {}\n",
            ]
        )
    )
    data = (text + extra).encode("utf-8")
    if draw(st.integers(0, 4)) == 0:
        data = draw(mutated(data))
    return data, dotted


@st.composite
def override(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=20))
    section, key = draw(section_key())
    text = draw(
        st.one_of(
            scalar.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n").strip()), st.text(max_size=10)
        )
    )
    return f"{section}.{key}={text}"


def _culprits(path: Path, dotted: list[str], overrides: list[str]) -> list[str]:
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    return [path.name, "override", *dotted, *keys, *(k for k in keys if k)]


@fuzz_settings(60)
@given(config_document(), st.lists(override(), max_size=3))
def test_config_file_and_overrides(document: tuple[bytes, list[str]], overrides: list[str]) -> None:
    tried("config_file_and_overrides")
    data, dotted = document
    path = _DIR / f"config{next(_COUNTER)}.yaml"
    path.write_bytes(data)
    try:
        config = outcome(
            "config_file_and_overrides",
            lambda: load_config(str(path), overrides),
            _culprits(path, dotted, overrides),
        )
        if config is not None:
            for section in SECTIONS:
                for field in dataclasses.fields(getattr(config, section)):
                    v = getattr(getattr(config, section), field.name)
                    for item in v if isinstance(v, list) else [v]:
                        if isinstance(item, float):
                            assert math.isfinite(item), (section, field.name, v)
            yaml.safe_dump(config.to_dict())  # what config.yaml and checkpoints store
    finally:
        path.unlink()


@fuzz_settings(60)
@given(st.lists(override(), min_size=1, max_size=4))
def test_overrides_on_a_preset(overrides: list[str]) -> None:
    """``iadet train --config quick --set ...``: only the overrides are fuzzed."""
    tried("overrides_on_a_preset")
    keys = [o.split("=", 1)[0].strip() for o in overrides]
    config = outcome(
        "overrides_on_a_preset", lambda: load_config("quick", overrides), ["override", "quick", *keys]
    )
    if config is not None:
        yaml.safe_dump(config.to_dict())
