#!/usr/bin/env bash
# What distillation and learned ranges cost per QAT step (issue 14's bound: a distilled step at
# most 1.5x a plain QAT step, peak memory at most 1.3x). Runs `aqbert bench qat` (uniform 2-bit
# plan, 128 row groups) on one configuration, alternating the variants ROUNDS times so that the
# machine's drift falls on all of them, and prints one line per variant with its median step
# time and peak RSS relative to the plain QAT step (min/max ranges, no distillation).
#
#   AQBERT=.build/release/aqbert CONFIG=minilm BATCH=32 SEQ=64 THREADS=1 bash bench/distill_cost.sh
#
# Each run is its own process (peak RSS is per process). Builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
CONFIG="${CONFIG:-minilm}" BATCH="${BATCH:-32}" SEQ="${SEQ:-64}" THREADS="${THREADS:-1}"
STEPS="${STEPS:-8}" ROUNDS="${ROUNDS:-3}"
variants=("minmax none" "learned none" "minmax logits" "learned all" "minmax all")
declare -A times rss
for ((r = 0; r < ROUNDS; r++)); do
    for v in "${variants[@]}"; do
        read -r ranges distill <<< "$v"
        out="$("$AQBERT" bench qat --config "$CONFIG" --batch "$BATCH" --seq "$SEQ" --threads "$THREADS" --steps "$STEPS" \
               --ranges "$ranges" --distill "$distill" 2>/dev/null)"
        times[$v]+="$(awk '/^median_step_seconds:/ {print $2}' <<< "$out") "
        rss[$v]+="$(awk '/^peak_rss_mib:/ {print $2}' <<< "$out") "
    done
done
median() { tr ' ' '\n' <<< "$1" | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
base_t="$(median "${times["minmax none"]}")" base_m="$(median "${rss["minmax none"]}")"
for v in "${variants[@]}"; do
    read -r ranges distill <<< "$v"
    t="$(median "${times[$v]}")" m="$(median "${rss[$v]}")"
    awk -v c="$CONFIG" -v b="$BATCH" -v s="$SEQ" -v th="$THREADS" -v r="$ranges" -v d="$distill" -v t="$t" -v m="$m" \
        -v bt="$base_t" -v bm="$base_m" \
        'BEGIN { printf "config=%s batch=%s seq=%s threads=%s ranges=%s distill=%s step_s=%.4f time_ratio=%.3f peak_rss_mib=%.1f rss_ratio=%.3f\n", c, b, s, th, r, d, t, t / bt, m, m / bm }'
done
