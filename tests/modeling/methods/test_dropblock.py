"""dropblock: square blocks of RoI features dropped per channel, rescaled, on a linear schedule."""

from __future__ import annotations

import pytest
import torch

from iadet.config import method_params
from iadet.errors import ConfigError
from iadet.modeling.methods import adversary_parameters, build_method
from iadet.modeling.methods.base import RoIBatch
from iadet.modeling.methods.dropblock import block_size_for

from conftest import at_step


def _batch(n: int) -> RoIBatch:
    return RoIBatch(
        proposals=[torch.zeros(n, 4)],
        labels=torch.zeros(n, dtype=torch.long),
        regression_targets=torch.zeros(n, 4),
        image_index=torch.zeros(n, dtype=torch.long),
        image_shapes=[(64, 64)],
    )


@pytest.mark.parametrize("size, expected", [(7, 3), (14, 7), (6, 3), (4, 1), (1, 1)])
def test_the_default_block_fits_7x7_and_14x14_maps(size, expected):
    assert block_size_for(size) == expected
    assert block_size_for(size, 5) == min(5, size)


def test_dropped_units_come_in_square_blocks_and_the_rest_is_rescaled():
    torch.manual_seed(0)
    method = build_method({"name": "dropblock", "ramp": "constant", "drop_prob": 0.3, "block_size": 3})
    assert adversary_parameters(method) == []
    features = torch.ones(64, 16, 7, 7)
    out = method(features, _batch(64))
    dropped = out.features == 0
    assert 0.1 < dropped.float().mean() < 0.5
    kept = out.features[~dropped]
    assert torch.allclose(kept, kept[0].expand_as(kept)) and kept[0] > 1  # one scale, count / kept
    # whole 3x3 blocks are dropped: the erosion of the dropped units by a 3x3 square is not empty
    eroded = -torch.nn.functional.max_pool2d(-dropped.float().flatten(0, 1)[:, None], 3, 1)
    assert eroded.sum() > 0
    assert out.stats["dropblock_p"] == pytest.approx(0.3)
    # channels get their own blocks
    assert not torch.equal(dropped[:, 0], dropped[:, 1])


def test_the_linear_ramp_starts_at_zero_and_reaches_the_target():
    method = build_method({"name": "dropblock", "drop_prob": 0.2})
    features = torch.rand(8, 4, 7, 7) + 0.1
    at_step(method, 0, 100)
    assert torch.equal(method(features, _batch(8)).features, features)
    at_step(method, 50, 100)
    assert method.current_drop_prob() == pytest.approx(0.1)
    at_step(method, 100, 100)
    assert method.current_drop_prob() == pytest.approx(0.2)


def test_bad_values_are_refused_at_load():
    with pytest.raises(ConfigError, match="method.drop_prob"):
        method_params({"name": "dropblock", "drop_prob": 1.5})
    with pytest.raises(ConfigError, match="method.ramp"):
        method_params({"name": "dropblock", "ramp": "cosine"})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_features_keep_their_scale(dtype):
    # AMP on CUDA pools float16 features: the kept count of 512 RoIs x 256 x 7 x 7 overflows float16's
    # 65504 and torchvision's drop_block2d scales everything by 0; the CPU reproduces it
    torch.manual_seed(0)
    method = build_method({"name": "dropblock", "ramp": "constant", "drop_prob": 0.1})
    features = torch.ones(512, 256, 7, 7, dtype=dtype)
    out = method(features, _batch(512)).features
    assert out.dtype == dtype
    kept = (out != 0).float().mean().item()
    assert 0.85 < kept < 0.95
    assert out.float().mean().item() == pytest.approx(1.0, abs=0.01)


def test_float32_features_are_torchvisions_result_bit_for_bit():
    from torchvision.ops import drop_block2d

    method = build_method({"name": "dropblock", "ramp": "constant", "drop_prob": 0.2})
    features = torch.rand(16, 8, 7, 7) + 0.1
    torch.manual_seed(3)
    ours = method(features, _batch(16)).features
    torch.manual_seed(3)
    assert torch.equal(ours, drop_block2d(features, 0.2, 3, training=True))
