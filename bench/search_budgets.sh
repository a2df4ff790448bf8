#!/usr/bin/env bash
# Do AQ-BERT searches land inside their budget band, and is a seeded search reproducible?
# Runs `aqbert search` from each model in $STARTS, for each seed in $SEEDS, at each encoder
# budget in $BUDGETS (average bits, band (1 +- eps) V) and each whole-file budget in
# $FILE_BUDGETS (MB of 10^6 bytes of the packed file, band (1 - 2 eps) V ... V), then the first
# search once more, and prints one line per search:
#     start=ft seed=1 budget=2.0bits size=2.531MiB target=2.531MiB avg_bits=2.038 emb_bits=8 pruned=28.7% inside=yes repair_moves=0 seconds=..
#     start=ft seed=1 budget=8MB size=7698778B target=8000000B avg_bits=2.319 emb_bits=2.510 pruned=23.6% inside=yes repair_moves=3 seconds=..
#     repeat identical_plan=yes
# A file budget's size is the packed file `export` writes for the plan on the search's task model,
# as the search prints it (the same as `inspect --json`'s file_bytes on a retrained model).
#
#   STARTS="ft=FINE_TUNED_DIR base=PRETRAINED_DIR" TRAIN=FILE [TASK=sst2] [OUT=DIR] bash bench/search_budgets.sh
#
# Environment: BUDGETS (2.0 2.5 3.0), FILE_BUDGETS (7 8 12), SEEDS (42), EPOCHS (3), THREADS (2),
# EXTRA (more search flags), AQBERT (.build/release/aqbert). Builds nothing. Exit status 1 when a
# plan misses its band or the repeat differs.
set -euo pipefail
cd "$(dirname "$0")/.."
AQBERT="${AQBERT:-.build/release/aqbert}"
: "${STARTS:?set STARTS to name=model pairs, e.g. ft=FINE_TUNED_DIR}"
: "${TRAIN:?set TRAIN to the training file the search carves its splits from}"
TASK="${TASK:-sst2}"
BUDGETS="${BUDGETS-2.0 2.5 3.0}"
FILE_BUDGETS="${FILE_BUDGETS-7 8 12}"
SEEDS="${SEEDS:-42}"
EPOCHS="${EPOCHS:-3}"
THREADS="${THREADS:-2}"
OUT="${OUT:-$(mktemp -d -t search_budgets.XXXXXX)}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
read -r -a extra <<< "${EXTRA:-}"
mkdir -p "$OUT"
status=0

search() {  # model budget-flags... -- output
    local model="$1" out="${*: -1}" start end
    shift
    start=$(date +%s)
    "$AQBERT" search --model "$model" --task "$TASK" --train "$TRAIN" "${@:1:$#-1}" --epochs "$EPOCHS" \
        --threads "$THREADS" --log-every 1000 "${extra[@]}" --output "$out" > "$out.log" 2>&1 || { echo "error: see $out.log" >&2; return 1; }
    end=$(date +%s)
    echo $((end - start))
}

report() {  # start seed budget-label model dir seconds
    local bytes
    # The file `export` writes for this plan on the search's task model (its head included), as
    # the search printed it; for encoder budgets `inspect` of the plan on the starting model.
    bytes=$(sed -n 's/^plan: packed file \([0-9]*\) bytes.*/\1/p' "$5.log")
    [[ -n "$bytes" ]] || bytes=$("$AQBERT" inspect --plan "$5/plan.json" --model "$4" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["file_bytes"])')
    python3 - "$@" "$bytes" <<'PY'
import json, os, sys
start, seed, label, model, d, secs, file_bytes = sys.argv[1:8]
cfg = json.load(open(f"{d}/search_config.json"))
plan = json.load(open(f"{d}/plan.json"))
target, tol = cfg["targetMiB"], cfg["tolerance"]
moves = len(json.load(open(f"{d}/budget_repair.json"))["moves"]) if os.path.exists(f"{d}/budget_repair.json") else 0
size = lambda m: m["shape"][0] // len(m["bits"]) * m["shape"][1]
weights = sum(size(m) * len(m["bits"]) for m in plan["matrices"].values())
bits = sum(size(m) * sum(m["bits"]) for m in plan["matrices"].values()) / weights
pruned = sum(size(m) * sum(1 for x in m["bits"] if x == 0) for m in plan["matrices"].values()) / weights
tables = plan.get("embeddings", {})
if tables:
    rows = lambda e, g: min(e["shape"][0], (g + 1) * e["rows_per_group"]) - g * e["rows_per_group"]
    emb = sum(b * rows(e, g) * e["shape"][1] for e in tables.values() for g, b in enumerate(e["bits"])) \
        / sum(e["shape"][0] * e["shape"][1] for e in tables.values())
    emb_text = f"{emb:.3f}"
else:
    emb_text = "8"
if cfg.get("budget") == "file":
    cap = round(target * 1048576)
    inside = (1 - 2 * tol) * cap <= int(file_bytes) <= cap
    sizes = f"size={file_bytes}B target={cap}B"
else:
    mib = plan["provenance"]["achievedMiB"]
    inside = abs(mib - target) <= tol * target
    sizes = f"size={mib:.3f}MiB target={target:.3f}MiB file={file_bytes}B"
print(f"start={start} seed={seed} budget={label} {sizes} avg_bits={bits:.3f} emb_bits={emb_text} pruned={100*pruned:.1f}% "
      f"inside={'yes' if inside else 'no'} repair_moves={moves} seconds={secs}")
PY
}

first=""
for pair in $STARTS; do
    name="${pair%%=*}" model="${pair#*=}"
    for seed in $SEEDS; do
        for spec in $(for b in $BUDGETS; do echo "bits:$b"; done) $(for m in $FILE_BUDGETS; do echo "file:$m"; done); do
            kind="${spec%%:*}" value="${spec#*:}"
            dir="$OUT/$name-$seed-$kind-$value"
            if [[ "$kind" == bits ]]; then flags=(--target-bits "$value"); label="${value}bits"; else flags=(--target-mb "$value" --budget file); label="${value}MB"; fi
            if [[ ! -f "$dir/plan.json" ]]; then
                rm -rf "$dir"
                secs=$(search "$model" "${flags[@]}" --seed "$seed" "$dir") || { status=1; continue; }
            else
                secs="-"
            fi
            line=$(report "$name" "$seed" "$label" "$model" "$dir" "$secs")
            echo "$line"
            [[ "$line" == *"inside=yes"* ]] || status=1
            [[ -n "$first" ]] || first="$model|$dir|${flags[*]} --seed $seed"
        done
    done
done
if [[ -n "$first" ]]; then
    IFS='|' read -r model dir flagline <<< "$first"
    read -r -a flags <<< "$flagline"
    rm -rf "$dir-repeat"
    search "$model" "${flags[@]}" "$dir-repeat" > /dev/null
    if cmp -s "$dir/plan.json" "$dir-repeat/plan.json"; then
        echo "repeat $(basename "$dir") identical_plan=yes"
    else
        echo "repeat $(basename "$dir") identical_plan=no"; status=1
    fi
fi
echo "searches in $OUT" >&2
exit $status
