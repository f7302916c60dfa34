"""The README's headline table from the finetune comparison's ``results.json`` (docs/benchmark-protocol.md).

    python benchmarks/finetune_summary.py [benchmarks/results/finetune/results.json]

Prints, per method, mean ± std over seeds of the primary metric (COCO AP@[.5:.95] on ``test``) and the
secondary ones, then each method's paired difference to ``none`` on the primary metric with its 95%
interval (whose half-width is the smallest effect these seeds can resolve).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from iadet.comparison.report import interval_cell


def _cell(summary: dict, scale: float = 100.0, digits: int = 1) -> str:
    return f"{scale * summary['mean']:.{digits}f} ± {scale * summary['std']:.{digits}f}"


def main(path: str = "benchmarks/results/finetune/results.json") -> None:
    results = json.loads(Path(path).read_text())
    seeds = results["seeds"]
    print(f"seeds {seeds}\n")
    print("| method | `test` AP | `test` VOC07 | `test_occluded` AP | `test_erased` AP | top part's share |")
    print("|---|---:|---:|---:|---:|---:|")
    for method, entry in results["methods"].items():
        metrics = entry["metrics"]
        share = entry.get("parts", {}).get("top_share")
        print(
            f"| `{method}` | {_cell(metrics['test']['AP'])} | {_cell(metrics['test']['voc07'])} | "
            f"{_cell(metrics['test_occluded']['AP'])} | {_cell(metrics['test_erased']['AP'])} | "
            f"{_cell(share, 1.0, 3) if share else 'n/a'} |"
        )
    print("\n| method | Δ `test` AP [95% CI] | Δ `test_occluded` AP | Δ `test_erased` AP | Δ top share |")
    print("|---|---:|---:|---:|---:|")
    for method, entry in results["methods"].items():
        paired = entry.get("paired_metrics_vs_none")
        if not paired:
            continue
        cells = [interval_cell(paired[split]["AP"]) for split in ("test", "test_occluded", "test_erased")]
        share = entry.get("paired_parts_vs_none", {}).get("top_share")
        cells.append("n/a" if share is None else interval_cell(share, 1.0, 3))
        print(f"| `{method}` | " + " | ".join(cells) + " |")
    for method, done in results.get("pending", {}).items():
        print(
            f"\npending: `{method}` has {len(done)} of {len(seeds)} seeds ({', '.join(map(str, done)) or 'none'})"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
