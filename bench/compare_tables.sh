#!/usr/bin/env bash
# The accuracy tables of the README (issues 4 and 5): `aqbert compare` from all-MiniLM-L6-v2 on
#   SST-2      a seeded subset of train (held-out share $SST2_PERCENT of train.tsv, seed $SPLIT_SEED:
#              8,106 sentences at 12%), evaluated on the full dev set, $SST2_SEEDS seeds;
#   CoNLL-2003 a seeded subset of train.txt ($CONLL_PERCENT%, 3,902 sentences at 28%), evaluated
#              on valid.txt, $CONLL_SEEDS seed(s);
# at budgets 2.0, 2.5 and 3.0 average bits: fp32, DirectQ, uniform QAT, Q-BERT-MP, the random-plan
# control and AQ-BERT, same epochs and hyper-parameters for every QAT.
#
#   AQBERT=/path/to/release/aqbert OUT=DIR bash bench/compare_tables.sh
#
# Builds nothing (run `swift build -c release` first). Long: each seed is a fine-tuning, the
# Q-BERT sensitivity, three searches and ten QAT runs (not yet timed end to end). Resumable: run the
# same command again after a kill and `compare` skips every finished step. Each task's
# results.md, results.json, size_vs_metric.svg and bitmap.svg end up in $OUT/<task>/.
#
# Environment: TASKS ("sst2 conll2003"), SST2_SEEDS (3), CONLL_SEEDS (1), SST2_PERCENT (12),
# CONLL_PERCENT (28), SPLIT_SEED (2026), BUDGETS (2.0,2.5,3.0), EPOCHS (task default),
# SEARCH_EPOCHS (3), THREADS (2), MODEL (~/.cache/aqbert/models/all-MiniLM-L6-v2), DATA
# (/work/shared/data), EXTRA (more compare flags, e.g. "--arch-lr 0.02").
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
OUT="${OUT:?set OUT to the output directory}"
TASKS="${TASKS:-sst2 conll2003}"
DATA="${DATA:-/work/shared/data}"
MODEL="${MODEL:-${AQBERT_HOME:-$HOME/.cache/aqbert}/models/all-MiniLM-L6-v2}"
THREADS="${THREADS:-2}"
SPLIT_SEED="${SPLIT_SEED:-2026}"
BUDGETS="${BUDGETS:-2.0,2.5,3.0}"
SEARCH_EPOCHS="${SEARCH_EPOCHS:-3}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
[[ -f "$MODEL/model.safetensors" ]] || { echo "error: no model in $MODEL; run Scripts/fetch-minilm.sh" >&2; exit 1; }
mkdir -p "$OUT/data"
epochs=()
[[ -n "${EPOCHS:-}" ]] && epochs=(--epochs "$EPOCHS")
read -r -a extra <<< "${EXTRA:-}"

for task in $TASKS; do
    case "$task" in
        sst2)
            src="$DATA/sst2/train.tsv"; dev="$DATA/sst2/dev.tsv"; percent="${SST2_PERCENT:-12}"
            seeds="${SST2_SEEDS:-3}"; train="$OUT/data/sst2-train-subset.tsv"; rest="$OUT/data/sst2-rest.tsv" ;;
        conll2003)
            src="$DATA/conll2003/train.txt"; dev="$DATA/conll2003/valid.txt"; percent="${CONLL_PERCENT:-28}"
            seeds="${CONLL_SEEDS:-1}"; train="$OUT/data/conll-train-subset.txt"; rest="$OUT/data/conll-rest.txt" ;;
        *) echo "error: unknown task $task (sst2, conll2003)" >&2; exit 1 ;;
    esac
    [[ -f "$src" && -f "$dev" ]] || { echo "error: $src or $dev missing" >&2; exit 1; }
    if [[ ! -f "$train" ]]; then
        # The held-out share is the subset (seeded, deterministic).
        "$AQBERT" split --task "$task" --data "$src" --held-out-percent "$percent" --seed "$SPLIT_SEED" \
            --train-output "$rest" --dev-output "$train" >&2
        rm -f "$rest"
    fi
    echo "== $task: train subset $train ($(grep -c . "$train") non-empty lines), dev $dev, $seeds seed(s)" >&2
    "$AQBERT" compare --model "$MODEL" --task "$task" --train "$train" --dev "$dev" --budgets "$BUDGETS" \
        --seeds "$seeds" --search-epochs "$SEARCH_EPOCHS" --threads "$THREADS" "${epochs[@]}" "${extra[@]}" \
        --output "$OUT/$task"
    echo "== $task done: $OUT/$task/results.md" >&2
    cat "$OUT/$task/results.md"
done
