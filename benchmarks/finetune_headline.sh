#!/usr/bin/env bash
# The headline in the papers' regime (docs/benchmark-protocol.md, version 1): every method x seeds 0-6 on the
# finetune preset, with part reliance. Runs already finished - here or committed from another machine (their
# config.yaml, eval_*.json and parts.json under benchmarks/results/finetune/runs/) - are reused, so it can be run a
# batch at a time:
#   METHODS=none,ia bash benchmarks/finetune_headline.sh        # ~3.5 min per run on 2 cores
#   bash benchmarks/finetune_headline.sh                         # everything (13 methods x 7 seeds, ~6 h)
#   SEEDS=6, bash benchmarks/finetune_headline.sh                # seed 6 alone (SEEDS=6 would be a count: 0-5)
#   FINISHED_ONLY=1 bash benchmarks/finetune_headline.sh         # train nothing: tables from the finished runs
# then commit benchmarks/results/finetune (weights and event files are git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
IADET=${IADET:-.venv/bin/iadet}
ALL="none,ia,ia-code,ia:strategy=random,random-dropout,asdn,astn,asdn+astn,random-erasing,hide-and-seek,cutout,gridmask,dropblock"
"$IADET" compare --preset finetune --methods "${METHODS:-$ALL}" --seeds "${SEEDS:-0,1,2,3,4,5,6}" --parts \
    ${FINISHED_ONLY:+--finished-only} --output benchmarks/results/finetune
