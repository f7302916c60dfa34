"""Training and evaluation logs: ``metrics.jsonl`` (one JSON object per row) and TensorBoard scalars."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class MetricsWriter:
    """Append rows to ``metrics.jsonl`` and mirror numeric fields to TensorBoard.

    Training rows carry ``type="train"``, ``iter`` (iterations done), ``epoch``, ``loss`` and each
    loss term, ``lr`` and ``time`` (seconds that iteration took); evaluation rows carry
    ``type="eval"``, ``iter``, ``split``, ``metric`` and ``mAP``.
    """

    def __init__(self, output: Path, *, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled
        self.path = output / "metrics.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(output / "tensorboard"))
            except ImportError:  # tensorboard is a dependency, but logging must never stop training
                self.tb = None

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, allow_nan=True) + "\n")
        if self.tb is not None:
            prefix = row.get("type", "train")
            split = row.get("split")
            step = int(row.get("iter", 0))
            for key, value in row.items():
                if key in ("iter", "epoch", "type") or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    tag = f"{prefix}/{split}/{key}" if split else f"{prefix}/{key}"
                    self.tb.add_scalar(tag, value, step)

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (a resumed run logs them again)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("iter", 0) <= iteration:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows
