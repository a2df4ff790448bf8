#!/usr/bin/env bash
# How closely a packed model (aqbert export) reproduces the quantization-aware model it came
# from (the retrain output, which `evaluate`/`predict` run exactly in integers) on an SST-2 / MNLI file:
# the share of examples with the same predicted label, each model's accuracy, the largest
# probability difference, and the two model.safetensors sizes next to `inspect`'s prediction.
#
#   QAT=DIR DATA=Data/sst2-demo/dev.tsv [TASK=sst2] bash bench/packed_agreement.sh
#
# Builds nothing: run `swift build -c release` first (AQBERT=... to use another binary).
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
TASK="${TASK:-sst2}"
: "${QAT:?set QAT to a quantization-aware model directory (aqbert retrain output)}"
: "${DATA:?set DATA to a labelled data file}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
work="$(mktemp -d -t packed_agreement.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$AQBERT" export --model "$QAT" --output "$work/packed" >&2
"$AQBERT" predict --model "$QAT" --task "$TASK" --data "$DATA" --output "$work/simulated.jsonl"
"$AQBERT" predict --model "$work/packed" --task "$TASK" --data "$DATA" --output "$work/packed.jsonl"
sim_acc="$("$AQBERT" evaluate --model "$QAT" --task "$TASK" --data "$DATA" --json)"
packed_acc="$("$AQBERT" evaluate --model "$work/packed" --task "$TASK" --data "$DATA" --json)"
predicted="$("$AQBERT" inspect --plan "$QAT/plan.json" --model "$QAT" --json)"
bytes="$(stat -c %s "$work/packed/model.safetensors")"
python3 - "$work/simulated.jsonl" "$work/packed.jsonl" "$sim_acc" "$packed_acc" "$predicted" "$bytes" <<'PY'
import json, sys
sim = [json.loads(l) for l in open(sys.argv[1])]
pk = [json.loads(l) for l in open(sys.argv[2])]
assert len(sim) == len(pk)
same = sum(a["label"] == b["label"] for a, b in zip(sim, pk))
dp = max(abs(x - y) for a, b in zip(sim, pk) for x, y in zip(a["probabilities"], b["probabilities"]))
acc_s = json.loads(sys.argv[3])["metrics"]["accuracy"]
acc_p = json.loads(sys.argv[4])["metrics"]["accuracy"]
pred = json.loads(sys.argv[5])["file_bytes"]
size = int(sys.argv[6])
print(f"examples: {len(sim)}")
print(f"same_label: {same} ({100 * same / len(sim):.2f}%)")
print(f"max_probability_difference: {dp:.2e}")
print(f"accuracy_simulated: {acc_s:.2f}")
print(f"accuracy_packed: {acc_p:.2f}")
print(f"model_safetensors_bytes: {size} (inspect file_bytes {pred}, {100 * (size - pred) / pred:+.3f}%)")
PY
