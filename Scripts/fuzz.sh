#!/usr/bin/env bash
# The long fuzz run: `aqbert fuzz` over every parser of user files (safetensors, config.json,
# vocab.txt, tokenizer.json, tokenizer_config.json, GLUE TSV, MNLI JSONL, CoNLL, SQuAD JSON, bit
# plans, packed config and weights, trainer and search state), $ITERATIONS mutated inputs each,
# seeded by $SEED. Seeds come from the repository's tiny BERT. Crashing inputs are saved in
# Tests/AQFuzzTests/Regressions, where the test suite replays them (keep them once fixed).
# The test suite runs a short fuzz of its own (AQFuzzTests); this is the long one.
#
#   bash Scripts/fuzz.sh                       # 100,000 inputs per parser, seed 1
#   ITERATIONS=1000 TARGETS=plan,squad SEED=7 bash Scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/setup.sh
aq_setup
swift build -c release >&2
bin="$PWD/.build/release/aqbert"
model="$(mktemp -d)"
trap 'rm -rf "$model"' EXIT
cp Tests/AQBertTests/Fixtures/tiny-bertmodel/config.json Tests/AQBertTests/Fixtures/tiny-bertmodel/model.safetensors "$model/"
cp Tests/AQFuzzTests/Fixtures/vocab.txt "$model/"
targets=()
[[ -n "${TARGETS:-}" ]] && targets=(--targets "$TARGETS")
exec "$bin" fuzz --model "$model" --iterations "${ITERATIONS:-100000}" --seed "${SEED:-1}" \
    --crashes Tests/AQFuzzTests/Regressions "${targets[@]}"
