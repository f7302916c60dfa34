"""Post-hoc contrast (docs/benchmark-protocol.md, "Post-hoc analyses"): IA against its own controls, paired by seed.

    python benchmarks/finetune_controls.py [benchmarks/results/finetune/results.json] [OUTPUT.md]

The headline compares every method with ``none``. Whether the *attention* matters, rather than any masking of the
same amount, is the contrast of ``ia`` (and ``ia-code``) with ``ia:strategy=random`` (the same RoIs and amount,
cells chosen at random) and with ``random-dropout`` (A-Fast-RCNN's undirected dropout). This reads the headline's
``results.json`` (no training), pairs each IA variant with each control seed by seed on every split's COCO AP and
on the top part's share, and Holm-adjusts the p-values over the contrasts of one split. Post-hoc: decided after
the headline's results were seen, so it is reported as such and never in the headline tables.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from iadet.comparison.report import interval_cell
from iadet.comparison.stats import holm_adjusted, paired_difference

VARIANTS = ("ia", "ia-code")
CONTROLS = ("ia:strategy=random", "random-dropout")
SPLITS = ("test", "test_occluded", "test_erased")


def contrasts(results: dict) -> list[str]:
    """Markdown lines: one table row per (variant, control), one column per split and for the top share."""
    methods = results["methods"]
    missing = [m for m in (*VARIANTS, *CONTROLS) if m not in methods]
    if missing:
        raise SystemExit(f"error: results.json has no {', '.join(missing)}")
    pairs = [(v, c) for v in VARIANTS for c in CONTROLS]
    cells: dict[tuple[str, str], list[str]] = {pair: [] for pair in pairs}
    columns = [(lambda m, s=split: m["metrics"][s]["AP"]["runs"], 100.0, 1) for split in SPLITS]
    columns.append((lambda m: m["parts"]["top_share"]["runs"], 1.0, 3))
    for runs, scale, digits in columns:
        diffs = [paired_difference(runs(methods[v]), runs(methods[c])) for v, c in pairs]
        for pair, d, p in zip(pairs, diffs, holm_adjusted([d.p_value for d in diffs])):
            cell = interval_cell(d.to_json(), scale, digits)
            cells[pair].append(f"{cell} · p {p:.3f}" if p is not None else cell)
    seeds = results["seeds"]
    lines = [
        f"IA minus its controls, paired by seed (seeds {', '.join(map(str, seeds))}): COCO AP (points) "
        "with the 95% Student-t interval and the paired t-test's p, Holm-adjusted over the "
        f"{len(pairs)} contrasts of each column; the top part's share (`iadet analyze parts`) alike.",
        "",
        "| contrast | Δ `test` AP | Δ `test_occluded` AP | Δ `test_erased` AP | Δ top share |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| `{v}` − `{c}` | " + " | ".join(cells[(v, c)]) + " |" for v, c in pairs]
    return lines


def main(path: str = "benchmarks/results/finetune/results.json", output: str | None = None) -> None:
    text = "\n".join(contrasts(json.loads(Path(path).read_text()))) + "\n"
    print(text, end="")
    if output:
        Path(output).write_text(
            f"# Post-hoc: IA against its controls\n\n`python {' '.join(sys.argv)}`\n\n{text}"
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
