#!/usr/bin/env bash
# Are aqbert's and transformers' SQuAD training loops the same computation on real data?
# Both sides start from one checkpoint (the pre-trained encoder plus a question-answering head
# written once by transformers, every dropout probability 0), train on the same first $LIMIT
# questions of the SQuAD training split (the first 24 articles of dev-v1.1), windows taken in
# file order (`--no-shuffle` on both), for one epoch, and every update's loss is compared. With
# the random parts (head initialisation, dropout masks, batch order) removed, the two loss
# sequences must agree up to float rounding; a systematic gap would point at a difference in
# the loop (windows, loss, schedule, clipping, AdamW).
#
#   AQBERT=.build/release/aqbert bash bench/trajectory_compare.sh
#
# Prints one line (stdout):
#   task=squad examples=N dropout=0 steps=S aqbert_first=.. transformers_first=.. aqbert_last=..
#       transformers_last=.. mean_abs_diff=.. max_abs_diff=.. mean_diff=.. mean_diff_last_half=..
# (diff = aqbert - transformers, per update; mean_diff and mean_diff_last_half are signed means
# over all updates and over the second half: a systematic gap shows there).
#
# DROPOUT=1 keeps the model's dropout probabilities instead: then each side draws its own masks,
# the per-update losses differ, and only their mean difference says something (a dropout that
# one side applies more strongly shows as a systematic positive or negative mean).
#
# Environment: LIMIT (training questions: 480), DROPOUT (0), THREADS (1), SEED (42), LR / BATCH_SIZE /
# MAX_SEQ_LENGTH (finetune's squad defaults: 3e-5, 12, 384), PYTHON (/work/venv/bin/python),
# AQBERT (.build/release/aqbert), MODEL (~/.cache/aqbert/models/all-MiniLM-L6-v2), DATA
# (/work/shared/data), LOGDIR (a new temp dir, kept: both logs, the step losses).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-/work/venv/bin/python}"
AQBERT="${AQBERT:-.build/release/aqbert}"
LIMIT="${LIMIT:-480}"
DROPOUT="${DROPOUT:-0}"
THREADS="${THREADS:-1}"
SEED="${SEED:-42}"
DATA="${DATA:-/work/shared/data}"
MODEL="${MODEL:-${AQBERT_HOME:-$HOME/.cache/aqbert}/models/all-MiniLM-L6-v2}"
LOGDIR="${LOGDIR:-$(mktemp -d -t trajectory_compare.XXXXXX)}"
[[ -x "$AQBERT" ]] || { echo "error: $AQBERT not found; run 'swift build -c release' first" >&2; exit 1; }
[[ -f "$MODEL/config.json" ]] || { echo "error: no model at $MODEL; run Scripts/fetch-minilm.sh or set MODEL" >&2; exit 1; }
"$PYTHON" -c "import torch, transformers" 2>/dev/null \
    || { echo "error: $PYTHON cannot import torch and transformers (set PYTHON=...)" >&2; exit 1; }
mkdir -p "$LOGDIR/data"
LOGDIR="$(cd "$LOGDIR" && pwd)"
echo "logs and data: $LOGDIR" >&2

# The starting model, written once by transformers: the pre-trained encoder plus a question-
# answering head initialised with torch.manual_seed($SEED), every dropout probability 0 (unless
# DROPOUT=1), tokenizer
# files copied. Both sides load this one checkpoint, so neither initialises a head of its own.
start="$LOGDIR/start-model"
"$PYTHON" - "$MODEL" "$start" "$SEED" "$DROPOUT" <<'PY'
import shutil, sys
from pathlib import Path
import torch
from transformers import AutoConfig, AutoModelForQuestionAnswering
src, dst, seed, keep_dropout = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
config = AutoConfig.from_pretrained(src)
if not keep_dropout:
    config.hidden_dropout_prob = 0.0
    config.attention_probs_dropout_prob = 0.0
torch.manual_seed(seed)
AutoModelForQuestionAnswering.from_pretrained(src, config=config).save_pretrained(dst, safe_serialization=True)
for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    if (src / name).exists():
        shutil.copy(src / name, dst / name)
PY

src="$LOGDIR/data/squad_first24.json"
[[ -f "$src" ]] || "$AQBERT" split --task squad --data "$DATA/squad11/dev-v1.1.json" --train-articles 24 \
    --train-output "$src" --dev-output "$LOGDIR/data/squad_rest.json" >&2
train="$LOGDIR/data/train.json"; dev="$LOGDIR/data/dev.json"
"$PYTHON" bench/truncate_copy.py squad "$src" "$train" "$LIMIT"
# The dev file only has to exist (both sides evaluate once at the epoch's end): a few questions.
"$PYTHON" bench/truncate_copy.py squad "$src" "$dev" 16

flags=(--task squad --train "$train" --dev "$dev" --epochs 1 --seed "$SEED" --threads "$THREADS" --no-shuffle)
[[ -n "${LR:-}" ]] && flags+=(--lr "$LR")
[[ -n "${BATCH_SIZE:-}" ]] && flags+=(--batch-size "$BATCH_SIZE")
[[ -n "${MAX_SEQ_LENGTH:-}" ]] && flags+=(--max-seq-length "$MAX_SEQ_LENGTH")

rm -rf "$LOGDIR/aqbert" "$LOGDIR/transformers"
set -x
"$AQBERT" finetune --model "$start" "${flags[@]}" --output "$LOGDIR/aqbert" --save-steps 0 --log-every 1 --json \
    >"$LOGDIR/aqbert.log" 2>&1
"$PYTHON" bench/hf_finetune.py --model "$start" "${flags[@]}" --output "$LOGDIR/transformers" \
    --step-losses "$LOGDIR/transformers_losses.txt" >"$LOGDIR/transformers.log" 2>&1
{ set +x; } 2>/dev/null
grep '"event":"step"' "$LOGDIR/aqbert.log" | sed 's/.*"loss":\([^,]*\),.*/\1/' >"$LOGDIR/aqbert_losses.txt"

"$PYTHON" - squad "$LIMIT" "$DROPOUT" "$LOGDIR/aqbert_losses.txt" "$LOGDIR/transformers_losses.txt" <<'PY'
import sys
task, limit, dropout, a_path, t_path = sys.argv[1:6]
a = [float(l) for l in open(a_path) if l.strip()]
t = [float(l) for l in open(t_path) if l.strip()]
if len(a) != len(t) or not a:
    sys.exit(f"error: {len(a)} aqbert updates, {len(t)} transformers updates")
d = [x - y for x, y in zip(a, t)]
half = d[len(d) // 2:]
print(f"task={task} examples={limit} dropout={dropout} steps={len(a)} aqbert_first={a[0]:.6f} transformers_first={t[0]:.6f} "
      f"aqbert_last={a[-1]:.6f} transformers_last={t[-1]:.6f} "
      f"mean_abs_diff={sum(map(abs, d)) / len(d):.6f} max_abs_diff={max(map(abs, d)):.6f} "
      f"mean_diff={sum(d) / len(d):+.6f} mean_diff_last_half={sum(half) / len(half):+.6f}")
PY
