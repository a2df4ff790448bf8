#!/usr/bin/env bash
# Which search options give the best plan at one budget? Runs, on a fine-tuned model, uniform
# QAT at the budget (when it is a whole number of bits) and, for each variant in $VARIANTS,
# `aqbert search --target-bits $BITS <variant flags>` followed by the same `aqbert retrain`, and
# prints one line per run (stdout):
#     variant=uniform avg_bits=3.000 pruned=0.0% metric=77.64
#     variant="--bits 0,2,3,4" avg_bits=2.960 pruned=10.8% metric=71.44
# metric = the task's metric of the retrained model on $DEV (best epoch).
#
#   FT=FINE_TUNED_DIR TRAIN=FILE DEV=FILE [TASK=sst2] [OUT=DIR] bash bench/search_variants.sh
#
# Environment: BITS (3.0), ROW_GROUPS (128 per matrix), SEED (42), SEARCH_EPOCHS (3), QAT_EPOCHS (1), THREADS (1 per run),
# PARALLEL (2 runs at a time), MAX_SEQ_LENGTH (the task's), AQBERT (.build/release/aqbert), VARIANTS (one variant per line,
# each the extra flags of `aqbert search`; an empty line is the defaults). Default VARIANTS are
# the rows of the README's "Searching harder at 3.0 bits" tables, measured before the search's
# defaults became --freeze-weights --ranges mse, so each names its weights and ranges. Every command is appended to
# $OUT/commands.sh, each run's output goes to $OUT/<n>-*.log and $OUT/<n>/; a run whose retrain
# finished is not repeated. Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
: "${FT:?set FT to a fine-tuned model directory}"
: "${TRAIN:?set TRAIN to the training file}"
: "${DEV:?set DEV to the evaluation file}"
TASK="${TASK:-sst2}"
BITS="${BITS:-3.0}"
ROW_GROUPS="${ROW_GROUPS:-128}"
SEED="${SEED:-42}"
SEARCH_EPOCHS="${SEARCH_EPOCHS:-3}"
QAT_EPOCHS="${QAT_EPOCHS:-1}"
THREADS="${THREADS:-1}"
PARALLEL="${PARALLEL:-2}"
seq=(); [[ -n "${MAX_SEQ_LENGTH:-}" ]] && seq=(--max-seq-length "$MAX_SEQ_LENGTH")
OUT="${OUT:-$(mktemp -d -t search_variants.XXXXXX)}"
DEFAULT_VARIANTS="
--train-weights --ranges minmax
--train-weights --ranges minmax --bits 0,2,3,4
--train-weights --ranges minmax --bits 2,3,4
--train-weights --ranges minmax --hard
--train-weights --ranges minmax --arch-optimizer normalized
--train-weights --ranges minmax --lr 0 --arch-start 0
--train-weights --ranges minmax --bits 0,2,3,4 --initial-logits 0,0,3,0
--train-weights --ranges minmax --bits 0,2,3,4 --initial-logits 0,0,3,0 --temperature 1 --final-temperature 0.2
--freeze-weights --ranges minmax
--freeze-weights --ranges minmax --hard
--train-weights --ranges minmax --bits 0,3,4
--freeze-weights --ranges minmax --bits 0,3,4
--freeze-weights --ranges minmax --bits 0,3,4 --hard"
VARIANTS="${VARIANTS-$DEFAULT_VARIANTS}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
mkdir -p "$OUT"
echo "outputs and logs: $OUT" >&2

run() {  # logged command
    printf '%q ' "$@" >> "$OUT/commands.sh"
    echo >> "$OUT/commands.sh"
    "$@"
}

retrain() {  # name plan
    [[ -f "$OUT/$1/qat/eval_results.json" ]] && return 0
    rm -rf "$OUT/$1/qat"
    run "$AQBERT" retrain --model "$FT" --plan "$2" --task "$TASK" --train "$TRAIN" --dev "$DEV" --epochs "$QAT_EPOCHS" \
        "${seq[@]}" --seed "$SEED" --threads "$THREADS" --output "$OUT/$1/qat" > "$OUT/$1-qat.log" 2>&1
}

variant() {  # name flags...
    local name=$1; shift
    mkdir -p "$OUT/$name"
    if [[ ! -f "$OUT/$name/search/plan.json" ]]; then
        rm -rf "$OUT/$name/search"
        run "$AQBERT" search --model "$FT" --task "$TASK" --train "$TRAIN" --target-bits "$BITS" --groups "$ROW_GROUPS" --epochs "$SEARCH_EPOCHS" \
            --seed "$SEED" --threads "$THREADS" --log-every 1000 "${seq[@]}" "$@" --output "$OUT/$name/search" > "$OUT/$name-search.log" 2>&1
    fi
    retrain "$name" "$OUT/$name/search/plan.json"
}

report() {  # name label
    local plan="$OUT/$1/qat/plan.json" results="$OUT/$1/qat/eval_results.json"
    if [[ ! -f "$results" ]]; then echo "variant=\"$2\" failed (see $OUT/$1-*.log)"; return 1; fi
    "$AQBERT" inspect --plan "$plan" --json | python3 -c '
import json, sys
plan, results, label = json.load(sys.stdin), json.load(open(sys.argv[1])), sys.argv[2]
metric = {"sst2": "accuracy", "mnli": "accuracy"}.get(sys.argv[3], "f1")
print("variant=\"%s\" avg_bits=%.3f pruned=%.1f%% metric=%.2f" % (label, plan["avg_bits"], 100 * plan["pruned_fraction"], results["metrics"][metric]))
' "$results" "$2" "$TASK"
}

names=() labels=()
whole=$(python3 -c "b=float('$BITS'); print(int(b) if b == int(b) else '')")
if [[ -n "$whole" ]]; then
    mkdir -p "$OUT/uniform"
    [[ -f "$OUT/uniform/plan.json" ]] || run "$AQBERT" plan uniform --model "$FT" --bits "$whole" --groups "$ROW_GROUPS" --output "$OUT/uniform/plan.json" > /dev/null
    names+=(uniform) labels+=(uniform)
fi
i=0
while IFS= read -r line; do
    names+=("v$i") labels+=("${line:-defaults}")
    i=$((i + 1))
done <<< "$VARIANTS"

pids=() status=0
for k in "${!names[@]}"; do
    name=${names[$k]}
    if [[ $name == uniform ]]; then
        retrain uniform "$OUT/uniform/plan.json" &
    else
        read -r -a flags <<< "${labels[$k]/#defaults/}"
        variant "$name" "${flags[@]}" &
    fi
    pids+=($!)
    if (( ${#pids[@]} >= PARALLEL )); then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
for k in "${!names[@]}"; do report "${names[$k]}" "${labels[$k]}" || status=1; done
exit $status
