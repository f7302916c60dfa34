#!/usr/bin/env bash
# Why does IA not beat the baseline on the built-in data? The README's "Does Inverted Attention
# help?" section. `iadet compare` runs on the quick data (3.5 minutes a run on 2 CPU
# cores; finished runs are reused):
#
#   bash benchmarks/ia_investigation.sh [OUTPUT_PREFIX]
#
# 1. Schedule length: twice the quick schedule (16 epochs, lr step at 13) for none and ia.
# 2. The RoI ratio (20% in the paper, 5% here), the IA paper's Table 2 strategies (soft is ia) and
#    Table 3 orientations (spatial+channel is ia), all on the quick schedule.
# 3. Seed-to-seed spread of the quick schedule's gap: none and ia with 3 seeds (reuses seed 0).
# About 50 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/ia}
.venv/bin/iadet compare --preset quick --seeds 1 --methods none,ia \
  --set train.epochs=16 --set 'train.lr_steps=[13]' --output "$OUT-long"
METHODS=none,ia,ia:roi_ratio=0.05
METHODS+=,ia:strategy=random,ia:strategy=overturn,ia:strategy=hard
METHODS+=,ia:orientation=spatial,ia:orientation=channel
.venv/bin/iadet compare --preset quick --seeds 1 --methods "$METHODS" --output "$OUT-quick"
mkdir -p benchmarks/results/ia-investigation
cp "$OUT-long"/results.json benchmarks/results/ia-investigation/long.json
cp "$OUT-long"/report.md benchmarks/results/ia-investigation/long.md
cp "$OUT-quick"/results.json benchmarks/results/ia-investigation/quick.json
cp "$OUT-quick"/report.md benchmarks/results/ia-investigation/quick.md
.venv/bin/iadet compare --preset quick --seeds 3 --methods none,ia --output "$OUT-quick"
cp "$OUT-quick"/results.json benchmarks/results/ia-investigation/quick-seeds.json
cp "$OUT-quick"/report.md benchmarks/results/ia-investigation/quick-seeds.md
