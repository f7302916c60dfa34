#!/usr/bin/env bash
# The README's corruption figures: the headline comparison's seed-0 baseline and IA detectors under
# the 15 benchmark corruptions of Michaelis et al. (2019) at severities 1, 3 and 5, on the first 150
# test images of the `full` built-in data (about 40 minutes on 2 CPU cores).
#
#   bash benchmarks/corruption.sh [BENCH_DIR] [OUTPUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=${1:-runs/bench-full}
OUT=${2:-runs/robust-full}
DATA=$(.venv/bin/python -c "from iadet.data.catalog import builtin_root; print(builtin_root('full'))")
.venv/bin/iadet robustness --checkpoint "$BENCH/runs/none/seed0/model_final.pth" "$BENCH/runs/ia/seed0/model_final.pth" \
  --label baseline IA --data "$DATA" --split test --corruptions benchmark --severities 1,3,5 --max-images 150 \
  --output "$OUT"
mkdir -p benchmarks/results/corruption
cp "$OUT/baseline/robustness.json" benchmarks/results/corruption/baseline.json
cp "$OUT/IA/robustness.json" benchmarks/results/corruption/ia.json
cp "$OUT/corruption_summary.png" "$OUT/baseline/severity.png" docs/images/
