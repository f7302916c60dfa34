"""Fuzzing checkpoint archives: ``torch.save`` files with hostile contents (pickled objects, deep and
odd structures, tensors of every dtype), pickles that would run code or reuse containers, truncated
archives and flipped bytes; read by :func:`iadet.serialization.load_file` (training checkpoints,
weight files) and by ``iadet eval``/``export``'s loader :func:`iadet.engine.loading.load_detector`.

Each file ends in a result or a one-line :class:`~iadet.errors.IadetError` naming the file
(:mod:`fuzz.harness`).
"""

from __future__ import annotations

import io
import itertools
import pickle
import shutil
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
import yaml
from hypothesis import given
from hypothesis import strategies as st

from fuzz.harness import fuzz_settings, outcome, scratch_dir, tried
from fuzz.test_fuzz_voc import mutated
from iadet.config import load_config
from iadet.engine.loading import load_detector
from iadet.serialization import load_file

_DIR = scratch_dir("iadet-fuzz-ckpt-")
_COUNTER = itertools.count()


class Stranger:
    """A class a checkpoint may not hold (``weights_only`` refuses it)."""

    def __reduce__(self):
        return (print, ("a checkpoint ran code",))


dtype = st.sampled_from(
    [
        torch.float32,
        torch.float64,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.uint8,
        torch.bool,
        torch.complex64,
    ]
)
tensor = st.builds(
    lambda shape, dt, fill: torch.full(shape, fill).to(dt),
    st.lists(st.integers(0, 3), max_size=3),
    dtype,
    st.floats(allow_nan=True, allow_infinity=True, width=32),
)
plain = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    tensor,
)
content = st.recursive(
    st.one_of(plain, st.just(Stranger()), st.builds(Path, st.text(max_size=5)), st.just(io.BytesIO())),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-3, 3)), inner, max_size=4)
        | st.builds(tuple, st.lists(inner, max_size=3))
        | st.builds(OrderedDict, st.dictionaries(st.text(max_size=6), inner, max_size=3))
    ),
    max_leaves=10,
)

_QUICK = load_config("quick", ["data.classes=[square, bar]"]).to_dict()
_STATE = None


def _real_state() -> dict:
    global _STATE
    if _STATE is None:
        from iadet.modeling.detector import build_model

        cfg = load_config("quick", ["data.classes=[square, bar]"])
        _STATE = build_model(cfg.model, 3).state_dict()
    return _STATE


@st.composite
def checkpoint_object(draw) -> object:
    """A training-checkpoint-shaped dict with fuzzed parts, a bare state dict, or anything."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        config = draw(st.one_of(st.just(_QUICK), content))
        return {
            "format": "iadet-checkpoint",
            "version": draw(st.one_of(st.just(1), plain)),
            "config": config,
            "model": draw(content),
        }
    if kind == 1:
        return draw(st.dictionaries(st.text(max_size=12), tensor, max_size=4))
    return draw(content)


_GADGETS = [
    b"cos\nsystem\n(S'echo pwned'\ntR.",  # protocol 0 GLOBAL + REDUCE
    b"\x80\x02cbuiltins\neval\nq\x00X\x07\x00\x00\x00print()q\x01\x85q\x02Rq\x03.",
    b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06getcwd\x94\x93\x94)R.",  # STACK_GLOBAL
    b"\x80\x02]q\x00(h\x00h\x00h\x00e.",  # a list memo-referencing itself
    b"\x80\x02\x82\x01.",  # EXT1
    b"",
]


@st.composite
def checkpoint_bytes(draw) -> bytes:
    obj = draw(checkpoint_object())
    buffer = io.BytesIO()
    legacy = draw(st.integers(0, 4)) == 0
    try:
        torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    except Exception:  # content torch cannot save: a plain one
        buffer = io.BytesIO()
        torch.save({"x": 1}, buffer)
    data = buffer.getvalue()
    kind = draw(st.integers(0, 4))
    if kind == 1 and not legacy:  # a valid archive whose data.pkl is hostile
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                payload = src.read(info.filename)
                if info.filename.endswith("data.pkl"):
                    payload = draw(st.sampled_from(_GADGETS + [pickle.dumps(draw(plain), protocol=2)]))
                dst.writestr(info, payload)
        data = out.getvalue()
    elif kind >= 2:
        data = draw(mutated(data))
    return data


@fuzz_settings(40)
@given(checkpoint_bytes())
def test_checkpoint_file(data: bytes) -> None:
    tried("checkpoint_file")
    path = _DIR / f"ckpt{next(_COUNTER)}.pth"
    path.write_bytes(data)
    try:
        outcome("checkpoint_file", lambda: load_file(path), [path.name])
    finally:
        path.unlink()


@st.composite
def detector_checkpoint(draw) -> object:
    """What ``iadet eval --checkpoint`` may be given: a real state dict with parts fuzzed, in a
    training checkpoint (with a fuzzed config) or bare."""
    state = dict(_real_state())
    for key in draw(st.lists(st.sampled_from(sorted(state)), max_size=3)):
        state[key] = draw(st.one_of(tensor, st.just(state[key].reshape(-1)[:1])))
    if draw(st.booleans()):
        state[draw(st.text(max_size=6))] = draw(tensor)
    if draw(st.booleans()):
        return state
    config = dict(_QUICK)
    if draw(st.booleans()):
        section = draw(st.sampled_from(sorted(config)))
        config[section] = {**config[section], draw(st.text(max_size=6)): draw(plain)}
    config = draw(st.one_of(st.just(config), content))
    return {"format": "iadet-checkpoint", "version": 1, "config": config, "model": state}


@fuzz_settings(10)
@given(detector_checkpoint())
def test_eval_and_export_loader(obj: object) -> None:
    tried("eval_and_export_loader")
    run = _DIR / f"run{next(_COUNTER)}"
    run.mkdir()
    path = run / "model_final.pth"
    torch.save(obj, path)
    (run / "config.yaml").write_text(yaml.safe_dump(_QUICK))
    try:
        outcome("eval_and_export_loader", lambda: load_detector(path), [path.name, "config.yaml"])
    finally:
        shutil.rmtree(run)
