#!/usr/bin/env bash
# Do AQ-BERT searches land inside their budget band, and is a seeded search reproducible?
# Runs `aqbert search` on a fine-tuned model at each budget in $BUDGETS (average bits), then the
# first budget once more with the same seed, and prints one line per search:
#     budget=2.0 target_mib=2.531 plan_mib=2.580 avg_bits=2.038 pruned=28.7% band=+-2% inside=yes seconds=..
#     repeat budget=2.0 identical_plan=yes
#
#   FT=FINE_TUNED_DIR TRAIN=FILE [TASK=sst2] [OUT=DIR] bash bench/search_budgets.sh
#
# Environment: BUDGETS (2.0 2.5 3.0), EPOCHS (3), SEED (42), THREADS (2), EXTRA (more search flags),
# AQBERT (.build/release/aqbert). Builds nothing. Exit status 1 when a plan misses its band or the
# repeat differs.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
: "${FT:?set FT to a fine-tuned model directory}"
: "${TRAIN:?set TRAIN to the training file the search carves its splits from}"
TASK="${TASK:-sst2}"
BUDGETS="${BUDGETS:-2.0 2.5 3.0}"
EPOCHS="${EPOCHS:-3}"
SEED="${SEED:-42}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$(mktemp -d -t search_budgets.XXXXXX)}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$OUT"
status=0

search() {  # budget output
    local start end
    start=$(date +%s)
    "$AQBERT" search --model "$FT" --task "$TASK" --train "$TRAIN" --target-bits "$1" --epochs "$EPOCHS" --seed "$SEED" \
        --threads "$THREADS" --log-every 1000 "${extra[@]}" --output "$2" > "$2.log" 2>&1
    end=$(date +%s)
    echo $((end - start))
}

first=""
for b in $BUDGETS; do
    dir="$OUT/search-$b"
    rm -rf "$dir"
    secs=$(search "$b" "$dir")
    line=$(python3 - "$dir" "$secs" "$b" <<'PY'
import json, sys
d, secs, b = sys.argv[1], sys.argv[2], float(sys.argv[3])
cfg = json.load(open(f"{d}/search_config.json"))
plan = json.load(open(f"{d}/plan.json"))
mib = plan["provenance"]["achievedMiB"]
target, tol = cfg["targetMiB"], cfg["tolerance"]
inside = abs(mib - target) <= tol * target
bits = mib / target * b
# Pruned share of the weights (groups weighted by their size), as `aqbert inspect` reports it.
size = lambda m: m["shape"][0] // len(m["bits"]) * m["shape"][1]
pruned = sum(size(m) * sum(1 for x in m["bits"] if x == 0) for m in plan["matrices"].values()) \
    / sum(size(m) * len(m["bits"]) for m in plan["matrices"].values())
print(f"budget={b:g} target_mib={target:.3f} plan_mib={mib:.3f} avg_bits={bits:.3f} pruned={100*pruned:.1f}% "
      f"band=+-{100*tol:g}% inside={'yes' if inside else 'no'} seconds={secs}")
PY
)
    echo "$line"
    [[ "$line" == *"inside=yes"* ]] || status=1
    [[ -n "$first" ]] || first="$b"
done
dir="$OUT/search-$first-repeat"
rm -rf "$dir"
search "$first" "$dir" > /dev/null
if cmp -s "$OUT/search-$first/plan.json" "$dir/plan.json"; then
    echo "repeat budget=$first identical_plan=yes"
else
    echo "repeat budget=$first identical_plan=no"; status=1
fi
echo "searches in $OUT" >&2
exit $status
