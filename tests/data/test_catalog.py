import dataclasses
from pathlib import Path

import pytest

from iadet.config import load_config
from iadet.data import synth
from iadet.data.catalog import builtin_root, data_root
from iadet.errors import DataError


def test_builtin_data_is_generated_once_and_keyed_by_its_parameters(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("IADET_CACHE", str(tmp_path))
    first = builtin_root("tiny")
    assert (first / "synth.json").is_file()
    stamp = (first / "synth.json").stat().st_mtime_ns
    assert builtin_root("tiny") == first and (first / "synth.json").stat().st_mtime_ns == stamp
    monkeypatch.setitem(
        synth.DATASET_PRESETS, "tiny", dataclasses.replace(synth.DATASET_PRESETS["tiny"], test=4)
    )
    second = builtin_root("tiny")
    assert second != first and len((second / "ImageSets/Main/test.txt").read_text().split()) == 4
    assert data_root(load_config("quick", ["data.preset=tiny"]).data) == second


def test_unknown_preset_and_missing_root(tmp_path: Path):
    with pytest.raises(DataError, match="unknown built-in data preset 'huge'"):
        builtin_root("huge")
    with pytest.raises(DataError, match="data directory not found"):
        data_root(load_config("quick", [f"data.root={tmp_path / 'nope'}"]).data)
