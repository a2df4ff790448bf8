#!/usr/bin/env bash
# The retraining recipe's levers, one at a time, on one searched plan: `aqbert retrain` of $PLAN
# from the fine-tuned fp32 model $FT with the default recipe (learned ranges from the MSE clip,
# distillation of logits, hidden states and attention scores) and with each lever switched off
# or changed, everything else the same (data, seed, epochs, rate). Prints one line per variant,
# the best epoch and each epoch's dev accuracy:
#     variant=default flags="" best=83.72 epochs=83.72,83.72
#
#   FT=FINE_TUNED_DIR PLAN=plan.json TRAIN=FILE DEV=FILE OUT=DIR bash bench/recipe_ablation.sh
#
# Environment: VARIANTS (the names below, in order; default all), SEED (42), QAT_EPOCHS (2),
# THREADS (1), EXTRA (flags for every retrain, e.g. "--max-seq-length 64"), AQBERT
# (.build/release/aqbert). Resumable: a finished variant is skipped. Builds nothing; SST-2 only.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="$(realpath "${AQBERT:-.build/release/aqbert}")"
: "${FT:?set FT to the fine-tuned fp32 model}" "${PLAN:?set PLAN}" "${TRAIN:?set TRAIN}" "${DEV:?set DEV}" "${OUT:?set OUT}"
SEED="${SEED:-42}" QAT_EPOCHS="${QAT_EPOCHS:-2}" THREADS="${THREADS:-1}"
read -r -a extra <<< "${EXTRA:-}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
mkdir -p "$OUT"
source bench/step.sh

flags() {  # variant -> the retrain flags that differ from the default recipe
    case "$1" in
        default) echo "" ;;
        distill-none) echo "--distill none" ;;
        distill-logits) echo "--distill logits" ;;
        distill-layers) echo "--distill layers" ;;
        ranges-minmax) echo "--ranges minmax" ;;
        paper-qat) echo "--ranges minmax --distill none" ;;
        range-init-minmax) echo "--range-init minmax" ;;
        *) echo "error: unknown variant $1" >&2; return 1 ;;
    esac
}

for variant in ${VARIANTS:-default distill-none distill-logits distill-layers ranges-minmax paper-qat range-init-minmax}; do
    f="$(flags "$variant")" || exit 1
    read -r -a vflags <<< "$f"
    dir="$OUT/$variant"
    step "$dir" "$AQBERT" retrain --model "$FT" --plan "$PLAN" --task sst2 --train "$TRAIN" --dev "$DEV" --epochs "$QAT_EPOCHS" \
        --seed "$SEED" --threads "$THREADS" "${extra[@]}" "${vflags[@]}"
    python3 - "$dir/eval_results.json" "$variant" "$f" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
epochs = ",".join("%.2f" % h["metrics"]["accuracy"] for h in r["history"])
print('variant=%s flags="%s" best=%.2f epochs=%s' % (sys.argv[2], sys.argv[3], r["metrics"]["accuracy"], epochs))
EOF
done
