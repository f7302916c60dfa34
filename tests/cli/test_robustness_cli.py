import pytest

from iadet.cli.robustness import checkpoint_labels
from iadet.errors import ConfigError


def test_checkpoint_labels_name_runs_by_directory_and_compare_runs_by_method_and_seed() -> None:
    labels = checkpoint_labels(
        [
            "runs/cmp/runs/none/seed0/model_final.pth",
            "runs/cmp/runs/ia-strategy=hard/seed2/checkpoint.pth",
            "runs/ia/model_final.pth",
            "weights/ia_voc.pth",
            "other/ia/model_final.pth",
        ],
        None,
    )
    assert labels == ["none seed0", "ia-strategy=hard seed2", "ia", "ia_voc", "ia-2"]


def test_checkpoint_labels_given_must_match_and_be_distinct() -> None:
    assert checkpoint_labels(["a.pth", "b.pth"], ["x", "y"]) == ["x", "y"]
    with pytest.raises(ConfigError, match="2 checkpoints"):
        checkpoint_labels(["a.pth", "b.pth"], ["x"])
    with pytest.raises(ConfigError, match="distinct"):
        checkpoint_labels(["a.pth", "b.pth"], ["x", "x"])


def test_each_corruption_line_names_its_metric(tmp_path, capsys) -> None:
    from iadet.cli.robustness import _save_partial

    for metric, name in (("coco", "COCO AP"), ("voc07", "VOC07 mAP")):
        _save_partial("gaussian_noise", 3, 0.412, table={}, clean=0.6, path=tmp_path / "r.json",
                      extra={"label": "ia", "metric": metric}, log=True)  # fmt: skip
        assert capsys.readouterr().out.strip() == f"ia: gaussian_noise severity 3: {name} 41.2"
