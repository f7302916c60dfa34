#!/usr/bin/env bash
# The long fuzz run: each fuzz test of tests/fuzz (one per parser of untrusted input) for EXAMPLES examples
# (default 10,000), in chunks of CHUNK examples, each chunk with its own Hypothesis seed (the chunk's
# number). Resumable: a finished chunk leaves runs/fuzz/progress/<test>.<chunk>.json and is skipped when the
# script is run again; failures are kept in the Hypothesis database runs/fuzz/db and replayed first. Chunks
# run round-robin over the tests, so a run stopped early has covered every parser alike. At the end (and
# with SUMMARY_ONLY=1) benchmarks/fuzz_summary.py writes benchmarks/results/fuzz/summary.{json,md}.
#   nohup nice -n 19 bash benchmarks/fuzz.sh > runs/fuzz.log 2>&1 &
#   TESTS="voc_annotation coco_json" EXAMPLES=2000 bash benchmarks/fuzz.sh     # some parsers, fewer examples
# A failing chunk prints Hypothesis's minimal example; fix the parser, add a regression test to
# tests/fuzz/test_regressions.py, delete that chunk's progress file and run again.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
EXAMPLES=${EXAMPLES:-10000}
CHUNK=${CHUNK:-2500}
WORK=${WORK:-runs/fuzz}
declare -A NODE=(
    [voc_annotation]=tests/fuzz/test_fuzz_voc.py::test_voc_annotation
    [split_file]=tests/fuzz/test_fuzz_voc.py::test_split_file
    [classes_file]=tests/fuzz/test_fuzz_voc.py::test_classes_file
    [coco_json]=tests/fuzz/test_fuzz_coco.py::test_coco_json
    [config_file_and_overrides]=tests/fuzz/test_fuzz_config.py::test_config_file_and_overrides
    [overrides_on_a_preset]=tests/fuzz/test_fuzz_config.py::test_overrides_on_a_preset
    [checkpoint_file]=tests/fuzz/test_fuzz_checkpoint.py::test_checkpoint_file
    [eval_and_export_loader]=tests/fuzz/test_fuzz_checkpoint.py::test_eval_and_export_loader
    [proposal_file]=tests/fuzz/test_fuzz_proposals_images.py::test_proposal_file
    [image_header_and_decoding]=tests/fuzz/test_fuzz_proposals_images.py::test_image_header_and_decoding
)
ORDER="voc_annotation split_file classes_file coco_json config_file_and_overrides overrides_on_a_preset checkpoint_file proposal_file image_header_and_decoding eval_and_export_loader"
TESTS=${TESTS:-$ORDER}
mkdir -p "$WORK/progress" "$WORK/logs"
if [ -z "${SUMMARY_ONLY:-}" ]; then
    chunks=$(( (EXAMPLES + CHUNK - 1) / CHUNK ))
    for ((chunk = 1; chunk <= chunks; chunk++)); do
        for test in $TESTS; do
            done_file="$WORK/progress/$test.$chunk.json"
            [ -f "$done_file" ] && continue
            start=$(date +%s)
            IADET_FUZZ_EXAMPLES=$CHUNK IADET_FUZZ_SEED=$chunk IADET_FUZZ_DB="$WORK/db" \
                IADET_FUZZ_LOG="$done_file.counts" \
                "$PYTHON" -m pytest -q -p no:cacheprovider -p no:randomly "${NODE[$test]}" \
                --hypothesis-seed="$chunk" > "$WORK/logs/$test.$chunk.log" 2>&1
            rc=$?
            counts=$(cat "$done_file.counts" 2>/dev/null | tail -1)
            echo "{\"test\": \"$test\", \"chunk\": $chunk, \"seed\": $chunk, \"rc\": $rc, \"seconds\": $(( $(date +%s) - start )), \"counts\": ${counts:-null}}" > "$done_file"
            rm -f "$done_file.counts"
            echo "$(date -u +%H:%M:%S) $test chunk $chunk: exit $rc"
        done
    done
fi
"$PYTHON" benchmarks/fuzz_summary.py --progress "$WORK/progress" --output benchmarks/results/fuzz
