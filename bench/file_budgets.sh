#!/usr/bin/env bash
# Whole-file budgets end to end: for each seed and each cap in $FILE_BUDGETS (MB of 10^6 bytes of
# the packed model.safetensors), `aqbert search --target-mb X --budget file` (the word and
# position tables searched with the encoder), `retrain` with the default recipe, `export`, and
# `evaluate` of the packed model; then the random-plan control of the same histograms, trained
# and packed the same way. The reference the file budgets are judged against runs in the same
# loop: for each average in $ENCODER_BUDGETS, `search --target-bits B` (the paper's encoder-only
# budget, 8-bit tables) and the same retraining, export and evaluation. Prints one line per model:
#     method=aq-bert cap=8MB seed=42 file_bytes=7912344 encoder_bits=2.41 emb_bits=2.65 qat=84.52 packed=84.52
#     method=aq-bert cap=2.5bits seed=42 file_bytes=16123456 encoder_bits=2.49 emb_bits=8.00 qat=84.98 packed=84.98
#
#   FT=FINE_TUNED_DIR TRAIN=FILE DEV=FILE OUT=DIR bash bench/file_budgets.sh
#
# Environment: FILE_BUDGETS (7 8 12), ENCODER_BUDGETS (none; e.g. "2.5"), SEEDS (42), METHODS ("aq-bert random"), QAT_EPOCHS (2),
# SEARCH_EPOCHS (3), THREADS (1), EXTRA (flags for search and retrain, e.g. "--max-seq-length 64"),
# AQBERT (.build/release/aqbert). Resumable: a finished step is skipped. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="$(realpath "${AQBERT:-.build/release/aqbert}")"
: "${FT:?set FT to the fine-tuned fp32 model}" "${TRAIN:?set TRAIN}" "${DEV:?set DEV}" "${OUT:?set OUT}"
FILE_BUDGETS="${FILE_BUDGETS-7 8 12}"
ENCODER_BUDGETS="${ENCODER_BUDGETS:-}"
SEEDS="${SEEDS:-42}"
METHODS="${METHODS:-aq-bert random}"
QAT_EPOCHS="${QAT_EPOCHS:-2}" SEARCH_EPOCHS="${SEARCH_EPOCHS:-3}" THREADS="${THREADS:-1}"
read -r -a extra <<< "${EXTRA:-}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
mkdir -p "$OUT"

source bench/step.sh

accuracy() { "$AQBERT" evaluate --model "$1" --task sst2 --data "$DEV" --json | tail -n 1 | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["metrics"]["accuracy"])'; }

budgets=()  # cap names: "8" is a file of 8 MB, "2.5bits" an encoder average
for cap in $FILE_BUDGETS; do budgets+=("$cap"); done
for bits in $ENCODER_BUDGETS; do budgets+=("${bits}bits"); done
for seed in $SEEDS; do
    for cap in "${budgets[@]}"; do
        base="$OUT/$seed/$cap"
        mkdir -p "$base"
        if [[ "$cap" == *bits ]]; then budget=(--target-bits "${cap%bits}"); else budget=(--target-mb "$cap" --budget file); fi
        step "$base/search" "$AQBERT" search --model "$FT" --task sst2 --train "$TRAIN" "${budget[@]}" \
            --epochs "$SEARCH_EPOCHS" --seed "$seed" --threads "$THREADS" --log-every 1000 "${extra[@]}"
        for method in $METHODS; do
            plan="$base/search/plan.json"
            if [[ "$method" == random ]]; then
                plan="$base/random-plan.json"
                [[ -f "$plan" ]] || "$AQBERT" plan random --like "$base/search/plan.json" --seed "$seed" --output "$plan" > /dev/null
            fi
            step "$base/$method-qat" "$AQBERT" retrain --model "$FT" --plan "$plan" --task sst2 --train "$TRAIN" --dev "$DEV" \
                --epochs "$QAT_EPOCHS" --seed "$seed" --threads "$THREADS" "${extra[@]}"
            if [[ ! -f "$base/$method-packed/model.safetensors" ]]; then
                rm -rf "$base/$method-packed"
                "$AQBERT" export --model "$base/$method-qat" --output "$base/$method-packed" > /dev/null
            fi
            stats=$("$AQBERT" inspect --plan "$plan" --model "$base/$method-qat" --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("file_bytes=%d encoder_bits=%.3f emb_bits=%.3f" % (d["file_bytes"], d["avg_bits"], d.get("embedding_avg_bits", 8)))')
            bytes=$(stat -c %s "$base/$method-packed/model.safetensors")
            [[ "$stats" == "file_bytes=$bytes "* ]] || { echo "error: $method cap $cap seed $seed: export wrote $bytes bytes, inspect said $stats" >&2; exit 1; }
            label="$cap"; [[ "$cap" == *bits ]] || label="${cap}MB"
            echo "method=$method cap=$label seed=$seed $stats qat=$(accuracy "$base/$method-qat") packed=$(accuracy "$base/$method-packed")"
        done
    done
done
