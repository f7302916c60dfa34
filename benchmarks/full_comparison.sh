#!/usr/bin/env bash
# The README's headline comparison: the baseline, Inverted Attention as the paper describes it
# (ia) and as the authors' code does it (ia-code), the IA paper's Table 2 strategies and Table 3
# orientations, 3 seeds each, on the `full` built-in data. About 4 hours on 2 CPU cores.
#
#   bash benchmarks/full_comparison.sh [OUTPUT_DIR]
#
# Finished runs in OUTPUT_DIR are reused, so an interrupted comparison continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench-full}
METHODS=none,ia,ia-code
METHODS+=,ia:strategy=random,ia:strategy=overturn,ia:strategy=hard       # Table 2 (soft is ia)
METHODS+=,ia:orientation=spatial,ia:orientation=channel                 # Table 3 (spatial+channel is ia)
.venv/bin/iadet compare --preset full --seeds 3 --methods "$METHODS" --output "$OUT"
mkdir -p benchmarks/results/full
cp "$OUT"/results.json "$OUT"/report.md "$OUT"/*.png benchmarks/results/full/
