#!/usr/bin/env bash
# The main job on the embedded default: the whole AQ-BERT pipeline on the SST-2 demo set
# shipped in Data/sst2-demo (a seeded 4,120-sentence subset of SST-2 train and the full dev
# set; see its PROVENANCE.md), starting from all-MiniLM-L6-v2, ending with the models a user
# ships:
#   1. fine-tune fp32                            aqbert finetune
#   2. search a bit plan at 2.0 avg bits         aqbert search   (the default search)
#   3. QAT with the searched plan                aqbert retrain  (the default recipe)
#   4. QAT with a uniform plan of the same size  aqbert plan uniform + retrain
#   5. pack every quantized model                aqbert export
#   6. dev accuracy of the packed models and their speed against fp32
#                                                aqbert evaluate / bench infer
# and prints one table: method, average bits, model.safetensors bytes, dev accuracy (QAT and
# packed, which agree bit for bit), batch-1 latency and batch-32 throughput at 128 tokens.
#
# Sets up first (apt: libopenblas-dev; the model from PyPI), builds aqbert (release).
# Idempotent: every run starts afresh in $AQBERT_DEMO_DIR (default ~/.cache/aqbert/demo).
# Environment: THREADS (default: all cores), EPOCHS (fine-tuning and retraining, default 2),
# SEARCH_EPOCHS (default 3), TARGET_BITS (default 2.0), UNIFORM_BITS (default "2"; "2 3" adds
# the 3-bit plan), BENCH_STEPS (timed passes per figure, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/setup.sh
aq_setup
model="$(Scripts/fetch-minilm.sh)"
swift build -c release >&2
bin="$PWD/.build/release/aqbert"

work="${AQBERT_DEMO_DIR:-${AQBERT_HOME:-$HOME/.cache/aqbert}/demo}"
threads="${THREADS:-$(nproc)}"
epochs="${EPOCHS:-2}"
search_epochs="${SEARCH_EPOCHS:-3}"
target_bits="${TARGET_BITS:-2.0}"
uniform_bits="${UNIFORM_BITS:-2}"
bench_steps="${BENCH_STEPS:-10}"
train=Data/sst2-demo/train.tsv
dev=Data/sst2-demo/dev.tsv
rm -rf "$work"
mkdir -p "$work"
common=(--task sst2 --threads "$threads")
started=$(date +%s)
stage() { printf '\n== [%s] %s\n' "$(date -u -d @$(( $(date +%s) - started )) +%M:%S)" "$*"; }

stage "1. fine-tune all-MiniLM-L6-v2 on $train (fp32, $epochs epochs)"
"$bin" finetune --model "$model" "${common[@]}" --train "$train" --dev "$dev" --epochs "$epochs" \
    --log-every 40 --output "$work/fp32"

stage "2. search: $target_bits average bits over the encoder, candidates 0/2/4, 128 row groups per matrix ($search_epochs epochs)"
"$bin" search --model "$work/fp32" "${common[@]}" --train "$train" --target-bits "$target_bits" --epochs "$search_epochs" \
    --log-every 40 --output "$work/search"
"$bin" inspect --plan "$work/search/plan.json" --model "$work/fp32" | tail -4

stage "3. quantization-aware retraining with the searched plan"
"$bin" retrain --model "$work/fp32" --plan "$work/search/plan.json" "${common[@]}" --train "$train" --dev "$dev" \
    --epochs "$epochs" --log-every 40 --output "$work/aq-bert"

for b in $uniform_bits; do
    stage "4. quantization-aware retraining with a uniform $b-bit plan (same groups)"
    "$bin" plan uniform --model "$work/fp32" --bits "$b" --groups 128 --output "$work/uniform$b.json"
    "$bin" retrain --model "$work/fp32" --plan "$work/uniform$b.json" "${common[@]}" --train "$train" --dev "$dev" \
        --epochs "$epochs" --log-every 40 --output "$work/uniform$b"
done

stage "5. pack the quantized models"
quantized=(aq-bert)
for b in $uniform_bits; do quantized+=("uniform$b"); done
for m in "${quantized[@]}"; do "$bin" export --model "$work/$m" --output "$work/$m-packed"; done

stage "6. evaluate on SST-2 dev (872 sentences); inference speed at 128 tokens, batch 1 and 32 ($threads threads)"
e() { "$bin" evaluate --model "$1" "${common[@]}" --data "$dev" --json; }
i() { "$bin" inspect --plan "$1" --model "$work/fp32" --json; }
speed() {  # latency_ms at batch 1 and sequences_per_second at batch 32, as "ms|seq/s"
    local ms sps
    ms=$("$bin" bench infer --model "$1" --batch 1 --seq 128 --threads "$threads" --steps "$bench_steps" | awk '/^latency_ms:/ {print $2}')
    sps=$("$bin" bench infer --model "$1" --batch 32 --seq 128 --threads "$threads" --steps "$bench_steps" \
        | awk '/^sequences_per_second:/ {print $2}')
    echo "$ms|$sps"
}
bytes() { stat -c %s "$1/model.safetensors"; }
fp32_eval="$(e "$work/fp32")"
rows=("fp32|-|$(bytes "$work/fp32")|$fp32_eval|$fp32_eval|$(speed "$work/fp32")")
for b in $uniform_bits; do
    m="$work/uniform$b"
    rows+=("uniform $b-bit QAT|$(i "$work/uniform$b.json")|$(bytes "$m-packed")|$(e "$m")|$(e "$m-packed")|$(speed "$m-packed")")
done
m="$work/aq-bert"
rows+=("AQ-BERT $target_bits-bit (searched)|$(i "$work/search/plan.json")|$(bytes "$m-packed")|$(e "$m")|$(e "$m-packed")|$(speed "$m-packed")")
printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
rows = [line.rstrip("\n").split("|") for line in sys.stdin]
fp32_bytes, fp32_ms, fp32_sps = int(rows[0][2]), float(rows[0][5]), float(rows[0][6])
print("{:<26} {:>8} {:>7} {:>12} {:>6} {:>8} {:>8} {:>14} {:>15}".format(
    "method", "avg bits", "pruned", "file bytes", "x", "QAT acc", "packed", "batch-1 ms", "batch-32 seq/s"))
for name, plan, size, qat, packed, ms, sps in rows:
    bits, pruned = (32.0, 0.0) if plan == "-" else (json.loads(plan)["avg_bits"], 100 * json.loads(plan)["pruned_fraction"])
    q, p = (json.loads(x)["metrics"]["accuracy"] for x in (qat, packed))
    size, ms, sps = int(size), float(ms), float(sps)
    print(f"{name:<26} {bits:>8.3f} {pruned:>6.1f}% {size:>12,} {fp32_bytes / size:>5.1f}x {q:>8.2f} {p:>8.2f} "
          f"{ms:>6.1f} ({fp32_ms / ms:.2f}x) {sps:>6.1f} ({sps / fp32_sps:.2f}x)")
'
stage "done: models, plans and logs in $work"
