#!/usr/bin/env bash
# The README's headline comparison on the `full` built-in data: the baseline, Inverted Attention as
# the paper describes it (ia) and as the authors' code does it (ia-code), 3 seeds each (9 runs,
# about 80 minutes on 2 CPU cores). The IA paper's Table 2/3 ablations and the schedule and RoI-ratio
# studies are in benchmarks/ia_investigation.sh.
#
#   bash benchmarks/full_comparison.sh [OUTPUT_DIR]
#
# Finished runs in OUTPUT_DIR are reused, so an interrupted comparison continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench-full}
.venv/bin/iadet compare --preset full --seeds 3 --methods none,ia,ia-code --output "$OUT"
mkdir -p benchmarks/results/full
cp "$OUT"/results.json "$OUT"/report.md "$OUT"/*.png benchmarks/results/full/
