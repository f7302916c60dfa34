#!/usr/bin/env bash
# Soak test of lossless interruption (benchmarks/soak_resume.py): a shortened `quick` run of asdn+astn (the
# preset's 1 loader worker) and of gridmask (2 loader workers, 60 iterations: its steps are quicker), each SIGKILLed at 20 moments (random ones,
# during checkpoint writes, during the final evaluation) and resumed each time; the final weights must be
# bit-identical to an uninterrupted run's. ~15-30 min on one CPU core. Run it in the background:
#   nohup nice -n 19 bash benchmarks/soak_resume.sh > runs/soak.log 2>&1 &
# (a summary written before the final-checkpoint comparison existed: python benchmarks/soak_resume.py --recheck)
# then commit benchmarks/results/soak/summary.{json,md}. KILLS=5 METHODS=gridmask:2 for a short try.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
"$PYTHON" benchmarks/soak_resume.py --methods "${METHODS:-asdn+astn,gridmask:2:60}" --kills "${KILLS:-20}" \
    --seed "${SEED:-0}" --work "${WORK:-runs/soak}" --output "${OUTPUT:-benchmarks/results/soak}"
