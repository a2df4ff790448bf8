#!/usr/bin/env bash
# Side-by-side training-step benchmark: aqbert (Swift) vs PyTorch.
#
# Builds nothing: run `swift build -c release` first so that .build/release/aqbert exists.
# For each (config, batch, seq) in {(base, 8, 128), (minilm, 32, 128)} and each thread count in
# $THREADS (default "1 2"), runs
#     .build/release/aqbert bench train --config C --batch B --seq T --threads N --steps S
#     $PYTHON bench/torch_train_step.py --config C --batch B --seq T --threads N --steps S
# one after the other and prints one line per pair:
#     config=C batch=B seq=T threads=N aqbert_step_s=.. torch_step_s=.. ratio=.. aqbert_rss_mib=.. torch_rss_mib=.. aqbert_gflops=.. torch_gflops=..
# ratio = aqbert_step_s / torch_step_s (< 1 means aqbert is faster).
#
# Environment:
#   PYTHON        python with torch + transformers (default /work/venv/bin/python)
#   AQBERT        aqbert binary (default .build/release/aqbert)
#   BASE_STEPS    timed steps for base   (default 5)
#   MINILM_STEPS  timed steps for minilm (default 10)
#   WARMUP        untimed warm-up steps passed to both sides (default 2)
#   THREADS       thread counts to run (default "1 2")
#   KEEP_LOGS     directory to keep each run's full stdout/stderr (default: a temp dir, deleted)
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-/work/venv/bin/python}"
AQBERT="${AQBERT:-.build/release/aqbert}"
BASE_STEPS="${BASE_STEPS:-5}"
MINILM_STEPS="${MINILM_STEPS:-10}"
WARMUP="${WARMUP:-2}"
THREADS="${THREADS:-1 2}"

if [[ ! -x "$AQBERT" ]]; then
    echo "error: $AQBERT not found or not executable; run 'swift build -c release' first" >&2
    exit 1
fi
if ! "$PYTHON" -c "import torch, transformers" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch and transformers (set PYTHON=...)" >&2
    exit 1
fi

if [[ -n "${KEEP_LOGS:-}" ]]; then
    LOGDIR="$KEEP_LOGS"
    mkdir -p "$LOGDIR"
else
    LOGDIR="$(mktemp -d)"
    trap 'rm -rf "$LOGDIR"' EXIT
fi

# get KEY FILE -> value of the "KEY: value" line (first whitespace-separated word of the value)
get() {
    local v
    v="$(awk -v k="$1:" '$1 == k { print $2; exit }' "$2")"
    if [[ -z "$v" ]]; then
        echo "error: no '$1:' line in $2:" >&2
        sed 's/^/    /' "$2" >&2
        exit 1
    fi
    printf '%s' "$v"
}

run_pair() {
    local config="$1" batch="$2" seq="$3" steps="$4" threads="$5"
    local args=(--config "$config" --batch "$batch" --seq "$seq" --threads "$threads" --steps "$steps" --warmup "$WARMUP")
    local tag="${config}-b${batch}-s${seq}-t${threads}"
    local a_out="$LOGDIR/$tag.aqbert.out" t_out="$LOGDIR/$tag.torch.out"

    if ! "$AQBERT" bench train "${args[@]}" >"$a_out" 2>"$LOGDIR/$tag.aqbert.err"; then
        echo "error: aqbert failed for $tag:" >&2
        cat "$LOGDIR/$tag.aqbert.err" >&2
        exit 1
    fi
    if ! "$PYTHON" bench/torch_train_step.py "${args[@]}" >"$t_out" 2>"$LOGDIR/$tag.torch.err"; then
        echo "error: torch failed for $tag:" >&2
        cat "$LOGDIR/$tag.torch.err" >&2
        exit 1
    fi

    local a_s t_s a_rss t_rss a_gf t_gf ratio
    a_s="$(get median_step_seconds "$a_out")"
    t_s="$(get median_step_seconds "$t_out")"
    a_rss="$(get peak_rss_mib "$a_out")"
    t_rss="$(get peak_rss_mib "$t_out")"
    a_gf="$(get gflops "$a_out")"
    t_gf="$(get gflops "$t_out")"
    sg="$(get reference_sgemm_gflops "$a_out")"
    ratio="$(awk -v a="$a_s" -v t="$t_s" 'BEGIN { if (t > 0) printf "%.3f", a / t; else print "nan" }')"
    echo "config=$config batch=$batch seq=$seq threads=$threads aqbert_step_s=$a_s torch_step_s=$t_s ratio=$ratio aqbert_rss_mib=$a_rss torch_rss_mib=$t_rss aqbert_gflops=$a_gf torch_gflops=$t_gf sgemm_gflops=$sg"
}

echo "# $(lscpu 2>/dev/null | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), $(nproc) CPUs; $("$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
for threads in $THREADS; do
    run_pair base 8 128 "$BASE_STEPS" "$threads"
    run_pair minilm 32 128 "$MINILM_STEPS" "$threads"
done
