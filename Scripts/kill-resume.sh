#!/usr/bin/env bash
# kill -9 at random points, then resume: the final artefacts must be byte-identical to an
# uninterrupted run's. For each of finetune, retrain, search and compare (on the repository's
# tiny BERT and a 400-sentence slice of the SST-2 demo set, 1 thread), one reference run, then
# $TRIALS trials that each kill the run with SIGKILL after a random delay (drawn from $SEED) up to
# $MAX_KILLS times, then let it finish with --resume (compare: the same command again). Compared
# byte for byte: model.safetensors (finetune, retrain), plan.json (search), results.json
# (compare). Prints one line per trial; exits 1 on the first difference.
#
#   bash Scripts/kill-resume.sh                  # 3 trials per command
#   TRIALS=10 SEED=7 COMMANDS="search compare" bash Scripts/kill-resume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
AQBERT="$(realpath "$AQBERT")"
TRIALS="${TRIALS:-3}"
MAX_KILLS="${MAX_KILLS:-3}"
RANDOM="${SEED:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

model="$work/model"
mkdir -p "$model"
cp Tests/AQBertTests/Fixtures/tiny-bertmodel/config.json Tests/AQBertTests/Fixtures/tiny-bertmodel/model.safetensors "$model/"
cp Tests/AQFuzzTests/Fixtures/vocab.txt "$model/"
head -n 401 Data/sst2-demo/train.tsv > "$work/train.tsv"
head -n 101 Data/sst2-demo/dev.tsv > "$work/dev.tsv"
common=(--task sst2 --train "$work/train.tsv" --threads 1 --seed 3 --max-seq-length 32)
"$AQBERT" finetune --model "$model" "${common[@]}" --dev "$work/dev.tsv" --epochs 1 --lr 1e-3 --output "$work/fp32" > /dev/null
"$AQBERT" plan uniform --model "$work/fp32" --bits 4 --groups 1 --output "$work/plan.json" > /dev/null

# command name -> arguments (without --output), the artefact compared, whether --resume applies
args_of() {
    case "$1" in
        finetune) echo "finetune --model $model ${common[*]} --dev $work/dev.tsv --epochs 2 --batch-size 8 --lr 1e-3 --save-steps 5" ;;
        retrain) echo "retrain --model $work/fp32 --plan $work/plan.json ${common[*]} --dev $work/dev.tsv --epochs 2 --batch-size 8 --save-steps 5" ;;
        search) echo "search --model $work/fp32 ${common[*]} --target-bits 3.0 --groups 1 --tolerance 0.2 --epochs 2 --batch-size 8 --save-steps 5" ;;
        compare) echo "compare --model $work/fp32 --fine-tuned ${common[*]} --dev $work/dev.tsv --budgets 3.0 --methods aq-bert,uniform --groups 1 --tolerance 0.2 --search-epochs 1 --epochs 1 --seeds 1 --sensitivity-subsets 1" ;;
    esac
}
artefact() {  # command dir -> bytes to compare on stdout
    case "$1" in
        finetune|retrain) cat "$2/model.safetensors" ;;
        search) cat "$2/plan.json" ;;
        compare) cat "$2/results.json" ;;
    esac
}

for cmd in ${COMMANDS:-finetune retrain search compare}; do
    read -r -a args <<< "$(args_of "$cmd")"
    ref="$work/$cmd-reference"
    start=$(date +%s%N)
    "$AQBERT" "${args[@]}" --output "$ref" > "$ref.log" 2>&1 || { echo "error: the $cmd reference run failed; see $ref.log" >&2; cat "$ref.log" >&2; exit 1; }
    duration_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    for ((t = 1; t <= TRIALS; t++)); do
        out="$work/$cmd-trial-$t"
        kills=0
        for ((k = 0; k < MAX_KILLS; k++)); do
            resume=()
            [[ "$cmd" != compare && -f "$out/last-checkpoint.json" ]] && resume=(--resume)
            [[ "$cmd" != compare && -d "$out" && ! -f "$out/last-checkpoint.json" ]] && rm -rf "$out"  # killed before its first checkpoint
            "$AQBERT" "${args[@]}" --output "$out" "${resume[@]}" > "$out.log" 2>&1 &
            pid=$!
            delay_ms=$(( RANDOM % (duration_ms + 1) ))
            sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
            if kill -9 "$pid" 2> /dev/null; then kills=$((kills + 1)); fi
            wait "$pid" 2> /dev/null || true
        done
        resume=()
        [[ "$cmd" != compare && -f "$out/last-checkpoint.json" ]] && resume=(--resume)
        [[ "$cmd" != compare && -d "$out" && ! -f "$out/last-checkpoint.json" ]] && rm -rf "$out"
        if [[ "$cmd" == compare || ! -f "$out/plan.json" && ! -f "$out/model.safetensors" ]]; then
            "$AQBERT" "${args[@]}" --output "$out" "${resume[@]}" > "$out.log" 2>&1 || { echo "error: $cmd trial $t did not finish after $kills kill(s):" >&2; tail -3 "$out.log" >&2; exit 1; }
        fi
        if cmp -s <(artefact "$cmd" "$ref") <(artefact "$cmd" "$out"); then
            echo "$cmd trial $t: killed $kills time(s), resumed, artefact byte-identical"
        else
            echo "error: $cmd trial $t: killed $kills time(s); the resumed artefact differs from the reference" >&2
            exit 1
        fi
    done
done
