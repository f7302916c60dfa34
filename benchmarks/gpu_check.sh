#!/usr/bin/env bash
# The GPU check, one command (about 5-9 minutes on one H100; at most 9 by its own budget):
#
#   bash benchmarks/gpu_check.sh                     # on a machine with a GPU (no internet needed)
#   bash benchmarks/gpu_check.sh --dry --output DIR  # CPU check of the script (tiny sizes, about a minute)
#
# Does every method train under AMP with finite losses (R50-FPN, VGG16 + RoIPool, Mask R-CNN, R101-C4,
# frozen BatchNorm, VOC/COCO-shape images); images/s and peak memory of none / ia / ia-code / asdn+astn and
# IA's ratio against its FLOP floor; iadet's none against a plain torchvision loop; inference identical to
# torchvision's; a CPU run resumed on the GPU; torchrun. Each item has its own time budget and status
# (pass / fail / skip with the error's one line); one failure does not stop the others.
# Writes benchmarks/results/gpu/{summary.json,report.md,logs/,runs/} (see benchmarks/results/gpu/README.md).
# Exit status: 0 all items passed or were skipped, 1 an item failed, 2 no GPU (without --dry).
#
# Extra arguments go to benchmarks/gpu_check.py (--items, --methods, --budget, --budget-scale, --output ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if [[ " $* " != *" --dry "* ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_check.sh: no CUDA device visible to torch (use --dry for the CPU check of the script)" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
fi
export GPU_CHECK_COMMAND="bash benchmarks/gpu_check.sh${*:+ $*}"
export PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "$@"
