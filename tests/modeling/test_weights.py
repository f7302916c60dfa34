from pathlib import Path

import pytest
import torch
import torchvision

from iadet.errors import CheckpointError, ConfigError
from iadet.modeling.weights import is_weights_name, read_state_dict


def test_weights_names_and_paths_are_told_apart(tmp_path: Path):
    assert is_weights_name("ResNet50_Weights.IMAGENET1K_V1")
    assert is_weights_name("FasterRCNN_ResNet50_FPN_Weights.COCO_V1")
    assert not is_weights_name("weights/model.pth")
    assert not is_weights_name("model_final.pth")


def test_unknown_name_and_offline_download_are_one_line_errors(monkeypatch):
    with pytest.raises(ConfigError, match="unknown torchvision weights 'ResNet50_Weights.NOPE'"):
        read_state_dict("ResNet50_Weights.NOPE")

    def offline(self, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(
        ConfigError, match=r"cannot get weights 'ResNet18_Weights.IMAGENET1K_V1'.*pass the local path"
    ):
        read_state_dict("ResNet18_Weights.IMAGENET1K_V1")


def test_local_files_bare_or_wrapped(tmp_path: Path):
    state = {"w": torch.ones(2)}
    torch.save(state, tmp_path / "bare.pth")
    torch.save({"model": state, "epoch": 3}, tmp_path / "wrapped.pth")
    for name in ("bare.pth", "wrapped.pth"):
        assert torch.equal(read_state_dict(str(tmp_path / name))["w"], torch.ones(2))
    torch.save({"model": [1, 2]}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match="not a state dict of tensors"):
        read_state_dict(str(tmp_path / "odd.pth"))
    with pytest.raises(ConfigError, match="weights file not found"):
        read_state_dict(str(tmp_path / "missing.pth"))
