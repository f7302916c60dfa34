"""``iadet compare --seeds``: a count or a list of seeds."""

from __future__ import annotations

import argparse

import pytest

from iadet.benchmark.compare import CompareSpec, run_compare
from iadet.cli.compare import seed_list
from iadet.errors import ConfigError


def test_a_count_or_a_list():
    assert seed_list("5") == 5
    assert seed_list("0,1,2,5") == [0, 1, 2, 5]
    for bad in ("0", "-1", "a,b", "1,-2", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed_list(bad)


def test_bad_seed_lists_are_refused_before_any_work(tmp_path):
    for seeds in ([], [-1], 0):
        with pytest.raises(ConfigError, match="--seeds"):
            run_compare(CompareSpec(methods=["none"], seeds=seeds, output=tmp_path / "out", quiet=True))
    assert not (tmp_path / "out").exists()
