#!/usr/bin/env bash
# Fine-tuning parity over seeds: aqbert finetune vs the transformers loop of bench/hf_finetune.py
# on one SST-2 training file, the same flags on both sides, one seed after the other, and the
# paired per-seed differences. Answers "is a gap between the two chance or a difference in the
# computation?": with dropout and shuffling the two sides draw different random numbers, so
# only the spread of the paired differences over seeds says which.
#
#   TRAIN=subset.tsv SEEDS="1 2 3 4 5 6 7 8 9 10" bash bench/finetune_parity.sh
#
# Defaults: the 5% of SST-2 train that `aqbert split --held-out-percent 5 --seed 1` holds out
# (3,407 sentences), 1 epoch at lr 5e-5, batch 32, seq 128, warm-up 0.1, 1 thread, scored on
# the SST-2 dev set. Prints one line per seed and a summary line (means, standard deviations,
# mean paired difference aqbert - transformers with its standard error). Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
PYTHON="${PYTHON:-/work/venv/bin/python}"
MODEL="${MODEL:-$HOME/.cache/aqbert/models/all-MiniLM-L6-v2}"
DATA="${DATA:-/work/shared/data}"
SEEDS="${SEEDS:-1 2 3 4 5 6 7 8 9 10}"
EPOCHS="${EPOCHS:-1}" LR="${LR:-5e-5}" BATCH="${BATCH:-32}" SEQ="${SEQ:-128}" THREADS="${THREADS:-1}"
LOGDIR="${LOGDIR:-$(mktemp -d -t finetune_parity.XXXXXX)}"
mkdir -p "$LOGDIR"
export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
if [ -z "${TRAIN:-}" ]; then
    TRAIN="$LOGDIR/subset.tsv"
    "$AQBERT" split --task sst2 --data "$DATA/sst2/train.tsv" --held-out-percent 5 --seed 1 \
        --train-output "$LOGDIR/rest.tsv" --dev-output "$TRAIN" > /dev/null
fi
flags=(--model "$MODEL" --task sst2 --train "$TRAIN" --dev "$DATA/sst2/dev.tsv" --epochs "$EPOCHS" --lr "$LR"
       --batch-size "$BATCH" --max-seq-length "$SEQ" --warmup-ratio 0.1 --threads "$THREADS")
accuracy() { "$PYTHON" -c "import json, sys; print('%.2f' % json.load(open(sys.argv[1]))['metrics']['accuracy'])" "$1/eval_results.json"; }
pairs=""
for s in $SEEDS; do
    "$AQBERT" finetune "${flags[@]}" --seed "$s" --save-steps 0 --output "$LOGDIR/a$s" > "$LOGDIR/a$s.log" 2>&1
    "$PYTHON" bench/hf_finetune.py "${flags[@]}" --seed "$s" --output "$LOGDIR/h$s" > "$LOGDIR/h$s.log" 2>&1
    a="$(accuracy "$LOGDIR/a$s")" h="$(accuracy "$LOGDIR/h$s")"
    echo "seed=$s aqbert=$a transformers=$h diff=$(awk -v a="$a" -v h="$h" 'BEGIN { printf "%+.2f", a - h }')"
    pairs+="$a $h"$'\n'
done
awk 'NF == 2 { n++; a[n] = $1; h[n] = $2; d[n] = $1 - $2 }
     function mean(x,   i, s) { s = 0; for (i = 1; i <= n; i++) s += x[i]; return s / n }
     function sd(x, m,   i, s) { s = 0; for (i = 1; i <= n; i++) s += (x[i] - m) ^ 2; return n > 1 ? sqrt(s / (n - 1)) : 0 }
     END { ma = mean(a); mh = mean(h); md = mean(d); sdd = sd(d, md)
           printf "seeds=%d aqbert_mean=%.2f aqbert_sd=%.2f transformers_mean=%.2f transformers_sd=%.2f diff_mean=%+.2f diff_se=%.2f\n",
                  n, ma, sd(a, ma), mh, sd(h, mh), md, sdd / sqrt(n) }' <<< "$pairs"
