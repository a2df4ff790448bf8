#!/usr/bin/env bash
# Data-parallel scaling on one machine: `aqbert finetune` of all-MiniLM-L6-v2 on the first rows of
# SST-2 train (one epoch of $UPDATES updates of global batch $BATCH, seq $SEQ, a one-row dev set
# so that evaluation costs nothing), as each "RANKSxTHREADS" layout of $LAYOUTS, the layouts
# alternated $REPS times so that the machine's drift hits them alike. Prints one line per run:
#     layout=2x1 rep=1 updates=20 s_per_update=0.712 examples_per_s=44.9
# and one summary line per layout (median over the reps, and its ratio to the first layout):
#     layout=2x1 median_s_per_update=0.709 vs_1x2=0.93
#
#   AQBERT=.build/release/aqbert bash bench/mpi_scaling.sh
#
# Environment: LAYOUTS ("1x2 2x1"), REPS (3), UPDATES (20), BATCH (32), SEQ (128), MODEL
# (~/.cache/aqbert/models/all-MiniLM-L6-v2), DATA (/work/shared/data/sst2/train.tsv), AQBERT.
# Needs Open MPI's mpirun (Scripts/setup.sh installs it). Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="$(realpath "${AQBERT:-.build/release/aqbert}")"
MODEL="${MODEL:-${AQBERT_HOME:-$HOME/.cache/aqbert}/models/all-MiniLM-L6-v2}"
DATA="${DATA:-/work/shared/data/sst2/train.tsv}"
LAYOUTS="${LAYOUTS:-1x2 2x1}" REPS="${REPS:-3}" UPDATES="${UPDATES:-20}" BATCH="${BATCH:-32}" SEQ="${SEQ:-128}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
[[ -f "$MODEL/model.safetensors" ]] || { echo "error: no model in $MODEL; run Scripts/fetch-minilm.sh" >&2; exit 1; }
[[ -f "$DATA" ]] || { echo "error: $DATA not found" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "error: mpirun not found; run Scripts/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
head -n $((UPDATES * BATCH + 1)) "$DATA" > "$work/train.tsv"
head -n 2 "$DATA" > "$work/dev.tsv"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

declare -A times
for rep in $(seq 1 "$REPS"); do
    for layout in $LAYOUTS; do
        ranks="${layout%x*}" threads="${layout#*x}"
        out="$work/run-$layout-$rep"
        args=(finetune --model "$MODEL" --task sst2 --train "$work/train.tsv" --dev "$work/dev.tsv" --epochs 1
              --batch-size "$BATCH" --max-seq-length "$SEQ" --threads "$threads" --seed 1 --output "$out" --json --log-every 1)
        if [[ "$ranks" == 1 ]]; then "$AQBERT" "${args[@]}" > "$out.log" 2>&1; else
            mpirun --oversubscribe --bind-to none -np "$ranks" "$AQBERT" "${args[@]}" > "$out.log" 2>&1; fi
        line=$(python3 -c '
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"event\":\"step\"")]
last = steps[-1]
rate = last["examples_per_second"]
print("updates=%d s_per_update=%.3f examples_per_s=%.1f" % (last["step"], int(sys.argv[2]) / rate, rate))' "$out.log" "$BATCH")
        echo "layout=$layout rep=$rep $line"
        times[$layout]+="$(sed 's/.*s_per_update=\([0-9.]*\).*/\1/' <<< "$line") "
    done
done
first="${LAYOUTS%% *}"
median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
base=$(median "${times[$first]}")
for layout in $LAYOUTS; do
    m=$(median "${times[$layout]}")
    echo "layout=$layout median_s_per_update=$m vs_$first=$(python3 -c "print('%.2f' % ($m / $base))")"
done
