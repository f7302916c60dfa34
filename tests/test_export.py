"""ONNX export: PyTorch and ONNX Runtime (CPU) agree on one image, at a size other than the traced one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from iadet.cli import main
from iadet.config import load_config, save_config
from iadet.config.schema import ModelConfig
from iadet.data.images import load_image
from iadet.data.proposals import selective_search
from iadet.data.voc import open_voc
from iadet.export import compare_detections, export_onnx, run_onnx, run_torch
from iadet.modeling.detector import build_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def trained(backbone: str, detector: str) -> torch.nn.Module:
    """A detector after two SGD steps, so that its scores are spread out."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        backbone=backbone,
        detector=detector,
        min_size=64,
        max_size=96,
        box_batch_size_per_image=32,
        box_score_thresh=0.0,
        box_detections_per_img=30,
    )
    model = build_model(cfg, 3)
    g = torch.Generator().manual_seed(1)
    image = torch.rand(3, 64, 80, generator=g)
    target = {
        "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [36.0, 10.0, 70.0, 50.0]]),
        "labels": torch.tensor([1, 2]),
    }
    if detector == "mask_rcnn":
        target["masks"] = torch.zeros(2, 64, 80, dtype=torch.uint8)
        target["masks"][0, 6:40, 4:30] = 1
    if detector == "fast_rcnn":
        target["proposals"] = torch.tensor([[0.0, 0.0, 32.0, 32.0], [30.0, 8.0, 66.0, 52.0]])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        sum(model([image], [target]).values()).backward()
        optimizer.step()
    return model.eval()


def toy_image(root: Path) -> tuple[torch.Tensor, np.ndarray]:
    array = np.asarray(load_image(open_voc(root, "test").records[0].path))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255, array


@pytest.mark.parametrize(
    "backbone,detector",
    [
        ("tiny", "faster_rcnn"),
        ("tiny", "fast_rcnn"),
        ("tiny", "mask_rcnn"),
        pytest.param("resnet50_fpn", "faster_rcnn", marks=pytest.mark.slow),
    ],
)
def test_onnx_matches_pytorch_on_one_image(backbone: str, detector: str, shared_voc: Path, tmp_path: Path):
    model = trained(backbone, detector)
    example = torch.rand(3, 64, 80, generator=torch.Generator().manual_seed(2))
    image, array = toy_image(shared_voc)  # 72 x 96: not the traced size
    proposals = example_proposals = None
    if detector == "fast_rcnn":
        example_proposals = torch.tensor(
            [[0.0, 0.0, 30.0, 30.0], [10.0, 10.0, 60.0, 50.0], [5.0, 0.0, 70.0, 60.0]]
        )
        proposals = torch.from_numpy(selective_search(array))
    path = export_onnx(model, tmp_path / "model.onnx", example, proposals=example_proposals)

    reference = run_torch(model, image, proposals)
    ours = run_onnx(path, image, proposals)
    assert len(reference["boxes"]) > 0
    check = compare_detections(reference, ours, box_tol=0.05, score_tol=1e-4)
    assert check["unmatched"] == 0, check
    assert check["detections"] == len(reference["boxes"])
    if detector == "mask_rcnn":
        assert ours["masks"].shape == reference["masks"].shape
        np.testing.assert_allclose(ours["masks"], reference["masks"], atol=1e-3)


def test_compare_detections_tolerates_reordering_and_finds_a_moved_box():
    ref = {
        "boxes": np.array([[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 40]], np.float32),
        "labels": np.array([1, 1, 2]),
        "scores": np.array([0.9, 0.9, 0.3], np.float32),
    }
    swapped = {k: v[[1, 0, 2]] for k, v in ref.items()}
    assert compare_detections(ref, swapped)["unmatched"] == 0
    moved = {k: v.copy() for k, v in ref.items()}
    moved["boxes"][0] += 3.0
    assert compare_detections(ref, moved)["unmatched"] == 2  # one missing, one extra
    relabelled = {k: v.copy() for k, v in ref.items()}
    relabelled["labels"][0] = 2
    assert compare_detections(ref, relabelled)["unmatched"] == 2
    cut = {k: v[:2] for k, v in ref.items()}  # the lowest-scoring one is at the cut-off: a tie, tolerated
    assert compare_detections(ref, cut)["unmatched"] == 0


def test_export_command_checks_parity(shared_voc: Path, tmp_path: Path, capsys):
    """``iadet export`` on a bare state dict with its config.yaml: writes the file and checks it."""
    config = load_config(
        "quick",
        ["model.backbone=tiny", "model.min_size=64", "model.max_size=96", "data.classes=[square, bar]"],
    )
    run = tmp_path / "run"
    run.mkdir()
    save_config(config, run / "config.yaml")
    torch.save(trained("tiny", "faster_rcnn").state_dict(), run / "model_final.pth")
    out = tmp_path / "model.onnx"
    image = open_voc(shared_voc, "test").records[1].path
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(run / "model_final.pth"),
                "--output",
                str(out),
                "--image",
                str(image),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert out.is_file() and '"unmatched": 0' in printed and "dynamic size" in printed
    import onnx

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["boxes", "labels", "scores"]
