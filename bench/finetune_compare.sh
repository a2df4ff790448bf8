#!/usr/bin/env bash
# Side-by-side fine-tuning: aqbert vs Hugging Face transformers + PyTorch (bench/hf_finetune.py),
# same data files, same hyper-parameters, same thread count, run one after the other.
#
# Builds nothing: run `swift build -c release` first so that $AQBERT exists.
# For each task in $TASKS it runs
#     $AQBERT finetune --model M --task T --train F --dev F --output D --epochs .. --lr ..
#         --batch-size .. --max-seq-length .. --seed .. --warmup-ratio .. --threads ..
#     $PYTHON bench/hf_finetune.py  (the same flags)
# and prints one line per task (stdout):
#     task=sst2 metric=accuracy aqbert=91.30 transformers=91.10 diff=+0.20 aqbert_s=.. transformers_s=.. time_ratio=..
# diff = aqbert - transformers (best epoch of each); *_s = training wall time including the
# per-epoch evaluation ("train_seconds"); time_ratio = aqbert_s / transformers_s (< 1: aqbert
# faster). SQuAD lines add aqbert_em= transformers_em= (exact match; metric= is F1).
#
# Data (originals under $DATA, default /work/shared/data):
#   sst2       train.tsv -> dev.tsv
#   conll2003  train.txt -> valid.txt
#   squad      dev-v1.1.json split by `aqbert split --train-articles 24`: first 24 articles train,
#              the remaining (last 24) evaluate
#   mnli       dev_matched.jsonl split by `aqbert split --held-out-percent 20 --seed 42`: train on
#              80%, evaluate on the held-out 20%
# Every command run is echoed to stderr and appended to $LOGDIR/commands.sh; each run's
# stdout/stderr goes to $LOGDIR/<side>_<task>.log and its outputs to $LOGDIR/<side>_<task>/.
#
# Environment:
#   TASKS        tasks to run (default "sst2 conll2003 squad mnli")
#   THREADS      threads for both sides (default 2)
#   PARALLEL     if 1, run the two sides at the same time, each pinned with taskset to its own
#                cores (aqbert on the first THREADS cores, transformers on the next THREADS);
#                both then see the same outside load, which keeps time_ratio fair on a shared
#                machine. Needs 2*THREADS cores.
#   EPOCHS       epochs for every task (blank = task default: 3, squad 2)
#   LR, BATCH_SIZE, MAX_SEQ_LENGTH, WARMUP_RATIO, SEED
#                override the per-task defaults for both sides (blank = default: lr 2e-5,
#                conll 5e-5, squad 3e-5; batch 32, squad 12; seq 128, squad 384; warm-up 0.1;
#                seed 42)
#                (SQuAD keeps doc stride 128 on both sides, so MAX_SEQ_LENGTH must be > 128 when
#                squad is in TASKS)
#   LIMIT_TRAIN  if set, both sides train on the first N training examples only (truncated copies
#                of the train file in its own format; N questions for SQuAD, N sentences for CoNLL)
#   LIMIT_DEV    likewise for the dev file (quick runs only: the metric is then not comparable
#                with published numbers)
#   PYTHON       python with torch + transformers + seqeval (default /work/venv/bin/python)
#   AQBERT       aqbert binary (default .build/release/aqbert)
#   MODEL        HF model dir (default ~/.cache/aqbert/models/all-MiniLM-L6-v2 if present,
#                else /work/models/all-MiniLM-L6-v2)
#   DATA         data root (default /work/shared/data)
#   LOGDIR       where logs, split files and outputs go (default: a new temp dir, kept)
# Exit status: 0 when every task produced both results, 1 otherwise.
set -euo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-/work/venv/bin/python}"
AQBERT="${AQBERT:-.build/release/aqbert}"
TASKS="${TASKS:-sst2 conll2003 squad mnli}"
THREADS="${THREADS:-2}"
EPOCHS="${EPOCHS:-}"
LIMIT_TRAIN="${LIMIT_TRAIN:-}"
LIMIT_DEV="${LIMIT_DEV:-}"
DATA="${DATA:-/work/shared/data}"
if [[ -z "${MODEL:-}" ]]; then
    if [[ -f "$HOME/.cache/aqbert/models/all-MiniLM-L6-v2/config.json" ]]; then
        MODEL="$HOME/.cache/aqbert/models/all-MiniLM-L6-v2"
    else
        MODEL=/work/models/all-MiniLM-L6-v2
    fi
fi
HF_SCRIPT="$PWD/bench/hf_finetune.py"

if [[ ! -x "$AQBERT" ]]; then
    echo "error: $AQBERT not found or not executable; run 'swift build -c release' first (or set AQBERT=...)" >&2
    exit 1
fi
if ! "$PYTHON" -c "import torch, transformers, seqeval" 2>/dev/null; then
    echo "error: $PYTHON cannot import torch, transformers and seqeval (set PYTHON=..., or pip install seqeval)" >&2
    exit 1
fi
if [[ ! -f "$MODEL/config.json" ]]; then
    echo "error: no model at $MODEL (config.json missing; set MODEL=...)" >&2
    exit 1
fi
if [[ -n "${SEED:-}" && ! "$SEED" =~ ^[0-9]+$ ]]; then
    echo "error: SEED must be a non-negative integer (got '$SEED')" >&2
    exit 1
fi
for v in THREADS EPOCHS LIMIT_TRAIN LIMIT_DEV BATCH_SIZE MAX_SEQ_LENGTH; do
    if [[ -n "${!v:-}" && ! "${!v:-}" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: $v must be a positive integer (got '${!v:-}')" >&2
        exit 1
    fi
done

if [[ "${PARALLEL:-0}" == 1 ]] && (( 2 * THREADS > $(nproc) )); then
    echo "error: PARALLEL=1 needs 2*THREADS cores (THREADS=$THREADS, $(nproc) cores)" >&2
    exit 1
fi

if [[ " $TASKS " == *" squad "* && -n "${MAX_SEQ_LENGTH:-}" && "${MAX_SEQ_LENGTH}" -le 128 ]]; then
    echo "error: MAX_SEQ_LENGTH=$MAX_SEQ_LENGTH with squad: the doc stride is 128 on both sides, so it must be > 128" >&2
    exit 1
fi

LOGDIR="${LOGDIR:-$(mktemp -d -t finetune_compare.XXXXXX)}"
mkdir -p "$LOGDIR/data"
LOGDIR="$(cd "$LOGDIR" && pwd)"

COMMANDS="$LOGDIR/commands.sh"
SUMMARY="$LOGDIR/summary.txt"
echo "# finetune_compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) (cwd $PWD)" >>"$COMMANDS"
echo "logs, split files and outputs: $LOGDIR" >&2

# run LOG CMD... : echo the command (stderr + commands.sh), run it with stdout/stderr to LOG.
run() {
    local logfile="$1"
    shift
    local line
    line="$(printf '%q ' "$@")"
    line="${line% }"
    echo "+ $line" >&2
    echo "$line" >>"$COMMANDS"
    "$@" >"$logfile" 2>&1
}

# truncate_copy TASK IN OUT N : the first N examples of IN, written to OUT in IN's own format.
truncate_copy() { "$PYTHON" "$PWD/bench/truncate_copy.py" "$@"; }

status=0
for task in $TASKS; do
    # task defaults (METHOD.md section 7; identical to aqbert's and hf_finetune.py's)
    case "$task" in
        sst2)      metric=accuracy; ep=3; lr=2e-5; bs=32; seq=128
                   train="$DATA/sst2/train.tsv"; dev="$DATA/sst2/dev.tsv"; ext=tsv ;;
        mnli)      metric=accuracy; ep=3; lr=2e-5; bs=32; seq=128; ext=jsonl
                   train="$LOGDIR/data/mnli_train.jsonl"; dev="$LOGDIR/data/mnli_dev.jsonl" ;;
        conll2003) metric=f1; ep=3; lr=5e-5; bs=32; seq=128
                   train="$DATA/conll2003/train.txt"; dev="$DATA/conll2003/valid.txt"; ext=txt ;;
        squad)     metric=f1; ep=2; lr=3e-5; bs=12; seq=384; ext=json
                   train="$LOGDIR/data/squad_train.json"; dev="$LOGDIR/data/squad_dev.json" ;;
        *) echo "error: unknown task '$task' (sst2, mnli, conll2003, squad)" >&2; exit 1 ;;
    esac
    ep="${EPOCHS:-$ep}"; lr="${LR:-$lr}"; bs="${BATCH_SIZE:-$bs}"; seq="${MAX_SEQ_LENGTH:-$seq}"
    warm="${WARMUP_RATIO:-0.1}"; seed="${SEED:-42}"

    # split files (aqbert writes them in the original format; both sides read them)
    if [[ "$task" == mnli ]]; then
        if ! run "$LOGDIR/split_mnli.log" "$AQBERT" split --task mnli --data "$DATA/mnli/dev_matched.jsonl" \
            --held-out-percent 20 --seed 42 --train-output "$train" --dev-output "$dev"; then
            echo "task=mnli error=split-failed log=$LOGDIR/split_mnli.log" | tee -a "$SUMMARY"
            status=1; continue
        fi
    elif [[ "$task" == squad ]]; then
        if ! run "$LOGDIR/split_squad.log" "$AQBERT" split --task squad --data "$DATA/squad11/dev-v1.1.json" \
            --train-articles 24 --train-output "$train" --dev-output "$dev"; then
            echo "task=squad error=split-failed log=$LOGDIR/split_squad.log" | tee -a "$SUMMARY"
            status=1; continue
        fi
    fi
    if [[ -n "$LIMIT_TRAIN" ]]; then
        small="$LOGDIR/data/${task}_train_first${LIMIT_TRAIN}.$ext"
        truncate_copy "$task" "$train" "$small" "$LIMIT_TRAIN"
        train="$small"
    fi
    if [[ -n "$LIMIT_DEV" ]]; then
        small="$LOGDIR/data/${task}_dev_first${LIMIT_DEV}.$ext"
        truncate_copy "$task" "$dev" "$small" "$LIMIT_DEV"
        dev="$small"
    fi

    hp=(--epochs "$ep" --lr "$lr" --batch-size "$bs" --max-seq-length "$seq" --seed "$seed"
        --warmup-ratio "$warm" --threads "$THREADS")
    a_out="$LOGDIR/aqbert_$task"; h_out="$LOGDIR/transformers_$task"
    rm -rf "$a_out" "$h_out"
    a_ok=1; h_ok=1
    a_cmd=("$AQBERT" finetune --model "$MODEL" --task "$task" --train "$train" --dev "$dev" --output "$a_out" "${hp[@]}")
    h_cmd=("$PYTHON" "$HF_SCRIPT" --model "$MODEL" --task "$task" --train "$train" --dev "$dev" --output "$h_out" "${hp[@]}")
    if [[ "${PARALLEL:-0}" == 1 ]]; then
        run "$LOGDIR/aqbert_$task.log" taskset -c "0-$((THREADS - 1))" "${a_cmd[@]}" &
        a_pid=$!
        run "$LOGDIR/transformers_$task.log" taskset -c "$THREADS-$((2 * THREADS - 1))" "${h_cmd[@]}" &
        h_pid=$!
        wait "$a_pid" || a_ok=0
        wait "$h_pid" || h_ok=0
    else
        run "$LOGDIR/aqbert_$task.log" "${a_cmd[@]}" || a_ok=0
        run "$LOGDIR/transformers_$task.log" "${h_cmd[@]}" || h_ok=0
    fi
    [[ -f "$a_out/eval_results.json" ]] || a_ok=0
    [[ -f "$h_out/eval_results.json" ]] || h_ok=0
    if [[ $a_ok == 0 || $h_ok == 0 ]]; then
        why=""
        [[ $a_ok == 0 ]] && why+=" aqbert-failed log=$LOGDIR/aqbert_$task.log"
        [[ $h_ok == 0 ]] && why+=" transformers-failed log=$LOGDIR/transformers_$task.log"
        echo "task=$task error=${why# }" | tee -a "$SUMMARY"
        status=1; continue
    fi

    line="$("$PYTHON" - "$task" "$metric" "$a_out/eval_results.json" "$h_out/eval_results.json" <<'PY'
import json, sys
task, metric, fa, fh = sys.argv[1:5]
a, h = json.load(open(fa)), json.load(open(fh))
def m(d, k, f):
    try:
        return float(d["metrics"][k])
    except (KeyError, TypeError, ValueError):
        sys.exit(f"error: {f} has no metrics.{k}")
def s(d, f):
    try:
        return float(d["train_seconds"])
    except (KeyError, TypeError, ValueError):
        sys.exit(f"error: {f} has no train_seconds")
va, vh = m(a, metric, fa), m(h, metric, fh)
sa, sh = s(a, fa), s(h, fh)
ratio = f"{sa / sh:.2f}" if sh > 0 else "nan"
out = (f"task={task} metric={metric} aqbert={va:.2f} transformers={vh:.2f} diff={va - vh:+.2f} "
       f"aqbert_s={sa:.1f} transformers_s={sh:.1f} time_ratio={ratio}")
if task == "squad":
    out += f" aqbert_em={m(a, 'exact_match', fa):.2f} transformers_em={m(h, 'exact_match', fh):.2f}"
print(out)
PY
)" || { echo "task=$task error=bad-eval_results" | tee -a "$SUMMARY"; status=1; continue; }
    echo "$line" | tee -a "$SUMMARY"
done
echo "summary: $SUMMARY; commands: $COMMANDS" >&2
exit $status
