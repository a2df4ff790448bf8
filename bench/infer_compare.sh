#!/usr/bin/env bash
# Side-by-side inference: aqbert fp32, aqbert packed, PyTorch fp32, PyTorch dynamic int8
# (quantize_dynamic) and ONNX Runtime int8 (dynamic quantization), on the same inputs
# (bench/hf_infer.py's ids), batch sizes, sequence length and thread counts, one after the
# other. Each implementation runs in its own process, so peak memory is its own.
#
#   FP32=DIR PACKED=DIR bash bench/infer_compare.sh
#
# FP32 is the fine-tuned fp32 model the packed one came from (a transformers-loadable
# directory); PACKED the `aqbert export` output. Builds nothing: run `swift build -c release`.
# Prints one line per implementation and setting:
#   impl=aqbert-packed batch=1 seq=128 threads=1 latency_ms=.. sequences_per_second=.. peak_rss_mib=..
# and, per setting, the ratios of aqbert-packed to the others (latency: < 1 is faster).
# Environment: BATCHES (default "1 32"), SEQ (128), THREADS ("1 2"), STEPS (20; 5 for batch > 1),
# PYTHON (/work/venv/bin/python), AQBERT (.build/release/aqbert), LOGDIR (a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-/work/venv/bin/python}"
AQBERT="${AQBERT:-.build/release/aqbert}"
BATCHES="${BATCHES:-1 32}"
SEQ="${SEQ:-128}"
THREADS="${THREADS:-1 2}"
: "${FP32:?set FP32 to the fine-tuned fp32 model directory}"
: "${PACKED:?set PACKED to the aqbert export output}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
"$PYTHON" -c "import torch, transformers, onnxruntime, onnx" 2>/dev/null \
    || { echo "error: $PYTHON cannot import torch, transformers, onnxruntime and onnx (pip install torch transformers onnxruntime onnx onnxscript)" >&2; exit 1; }
LOGDIR="${LOGDIR:-$(mktemp -d -t infer_compare.XXXXXX)}"
mkdir -p "$LOGDIR/onnx"
echo "logs: $LOGDIR" >&2

field() { sed -n "s/^$1: //p" "$2" | head -1; }
for threads in $THREADS; do
    for batch in $BATCHES; do
        steps="${STEPS:-$([[ $batch -gt 1 ]] && echo 5 || echo 20)}"
        declare -A lat=() tput=()
        for impl in aqbert-fp32 aqbert-packed torch-fp32 torch-int8 ort-int8; do
            log="$LOGDIR/${impl}_b${batch}_t${threads}.log"
            case "$impl" in
                aqbert-fp32)   cmd=("$AQBERT" bench infer --model "$FP32" --batch "$batch" --seq "$SEQ" --threads "$threads" --steps "$steps") ;;
                aqbert-packed) cmd=("$AQBERT" bench infer --model "$PACKED" --batch "$batch" --seq "$SEQ" --threads "$threads" --steps "$steps") ;;
                *)             cmd=("$PYTHON" bench/hf_infer.py --model "$FP32" --impl "$impl" --batch "$batch" --seq "$SEQ"
                                    --threads "$threads" --steps "$steps" --workdir "$LOGDIR/onnx") ;;
            esac
            echo "+ ${cmd[*]}" >&2
            if ! OMP_NUM_THREADS="$threads" "${cmd[@]}" >"$log" 2>"$log.err"; then
                echo "impl=$impl batch=$batch seq=$SEQ threads=$threads error=see $log.err"
                continue
            fi
            lat[$impl]="$(field latency_ms "$log")"; tput[$impl]="$(field sequences_per_second "$log")"
            echo "impl=$impl batch=$batch seq=$SEQ threads=$threads latency_ms=${lat[$impl]} sequences_per_second=${tput[$impl]} peak_rss_mib=$(field peak_rss_mib "$log")"
        done
        if [[ -n "${lat[aqbert-packed]:-}" ]]; then
            line="ratios batch=$batch threads=$threads (aqbert-packed latency / other):"
            for other in aqbert-fp32 torch-fp32 torch-int8 ort-int8; do
                [[ -n "${lat[$other]:-}" ]] && line+=" $other=$(awk -v a="${lat[aqbert-packed]}" -v b="${lat[$other]}" 'BEGIN{printf "%.2f", a/b}')"
            done
            echo "$line"
        fi
        unset lat tput
    done
done
