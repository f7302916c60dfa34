#!/usr/bin/env bash
# The GPU check (about 3-4 minutes on one H100-class GPU): ResNet-50-FPN Faster R-CNN at 800 px with
# AMP, none / ia / ia-code / asdn+astn, 250 iterations each on the built-in quick data; images/s, peak
# memory and the overhead ratios to none -> benchmarks/results/gpu/{summary,none,ia,ia-code,asdn_astn}.json
#
#   bash benchmarks/gpu_check.sh                     # on a machine with a GPU
#   bash benchmarks/gpu_check.sh --dry --output DIR  # CPU check of the script (tiny backbone, 4 iterations)
#
# Extra arguments go to benchmarks/gpu_check.py (--iters, --methods, --data, --output ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [[ " $* " != *" --dry "* ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_check.sh: no CUDA device visible to torch (use --dry for the CPU check)" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  # the built-in data is generated once (cached), before any timing
  "$PY" -c "from iadet.data.catalog import builtin_root; print('data:', builtin_root('quick'))"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
