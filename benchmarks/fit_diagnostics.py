"""Under- or over-fitting? For each training run: the classification loss early, midway and at the
end of training (means over 10% of the logged iterations, from ``metrics.jsonl``), and VOC07 mAP on
the first ``--train-images`` images of ``trainval`` next to ``test`` (a small gap means a regulariser
has little to fix). The README's "Does IA help?" section::

    python benchmarks/fit_diagnostics.py runs/bench-full/runs/{none,ia,ia-code}/seed0 \\
        runs/ia-investigation-ratio/runs/{none,ia}/seed0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def loss_profile(run: Path, key: str = "loss_classifier") -> tuple[float, float, float]:
    """Mean of ``key`` over the first, middle and last 10% of the logged training iterations."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    values = [r[key] for r in rows if r.get("type") == "train" and key in r]
    n = max(len(values) // 10, 1)
    mid = len(values) // 2

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    return mean(values[:n]), mean(values[mid - n // 2 : mid - n // 2 + n]), mean(values[-n:])


def split_map(run: Path, split: str, max_images: int | None) -> float:
    """VOC07 mAP of ``run``'s final model on ``split`` (``eval_<split>.json`` when compare wrote it)."""
    saved = run / f"eval_{split}.json"
    if saved.is_file() and max_images is None:
        return json.loads(saved.read_text())["mAP"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "iadet", "eval", "--checkpoint", str(run / "model_final.pth")]
        cmd += ["--split", split, "--output", f"{tmp}/eval.json"]
        if max_images is not None:
            cmd += ["--max-images", str(max_images)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["mAP"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run directories (with metrics.jsonl, model_final.pth)"
    )
    parser.add_argument("--train-images", type=int, default=1000)
    args = parser.parse_args()
    print("| run | cls loss first 10% | middle | last 10% | mAP trainval[:N] | mAP test | gap |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in args.runs:
        first, middle, last = loss_profile(run)
        train_map = split_map(run, "trainval", args.train_images)
        test_map = split_map(run, "test", None)
        print(
            f"| {run} | {first:.3f} | {middle:.3f} | {last:.3f} | {100 * train_map:.1f} | "
            f"{100 * test_map:.1f} | {100 * (train_map - test_map):+.1f} |"
        )


if __name__ == "__main__":
    main()
