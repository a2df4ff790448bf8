#!/usr/bin/env python3
"""Reference fine-tuning with Hugging Face transformers + PyTorch, for side-by-side runs with
`aqbert finetune` under the same hyper-parameters (METHOD.md section 7).

    python bench/hf_finetune.py --model DIR --task sst2|mnli|conll2003|squad \
        --train FILE --dev FILE --output DIR [--epochs N] [--lr F] [--batch-size N]
        [--max-seq-length N] [--seed N] [--warmup-ratio F] [--threads N] [--eval-batch-size N]
        [--doc-stride 128] [--max-answer-length 30] [--n-best 20] [--no-shuffle] [--save-model]

A plain PyTorch loop (no `Trainer`, so nothing hidden differs from aqbert's loop):
- model: AutoModelFor{SequenceClassification,TokenClassification,QuestionAnswering} from the
  model dir in float32, new head initialised by transformers after torch.manual_seed(seed);
- AdamW(lr, betas (0.9, 0.999), eps 1e-8), weight decay 0.01 except parameters whose name ends
  in "bias" or contains "LayerNorm" (0.0); linear warm-up over ceil(total_steps * warmup_ratio)
  updates, then linear decay to 0 (get_linear_schedule_with_warmup);
- per update: forward (train mode, dropout as in the config), loss, backward,
  clip_grad_norm_(1.0), optimizer step, scheduler step, zero_grad;
- batches: a fresh permutation of the training features every epoch from a seeded
  torch.Generator (file order with --no-shuffle), the last partial batch kept; dynamic
  padding (each batch padded to its longest row);
- evaluation on the dev file after every epoch; the best epoch (accuracy / F1 / F1) is reported.

Data files are read in their original formats (the same files aqbert reads):
- sst2: GLUE TSV with header `sentence<TAB>label` (0 = negative, 1 = positive);
- mnli: JSONL (`premise`, `hypothesis`, `label` as a name or 0/1/2) or GLUE TSV (`sentence1`,
  `sentence2`, `gold_label` by header); labels ["entailment", "neutral", "contradiction"];
- conll2003: `word POS chunk NER` lines, `-DOCSTART-` skipped, blank line between sentences;
- squad: SQuAD v1.1 JSON.

Output (in --output): eval_results.json, training_args.json; weights only with --save-model.
Progress goes to stderr.
"""

import argparse
import collections
import json
import math
import os
import platform
import random
import re
import string
import sys
import time

T0 = time.time()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    get_linear_schedule_with_warmup,
)

TASKS = ("sst2", "mnli", "conll2003", "squad")
MNLI_LABELS = ["entailment", "neutral", "contradiction"]
SST2_LABELS = ["negative", "positive"]

# The transformers example code the SQuAD pre/post-processing below follows (adapted to plain
# Python lists and dynamic padding; the logic is unchanged):
#   huggingface/transformers examples/pytorch/question-answering/run_qa.py
#     commit 03ea97ae17f461340572ce7c7250b22d7a146893 (check_min_version("4.55.0.dev0")):
#     prepare_train_features, prepare_validation_features
#   huggingface/transformers examples/pytorch/question-answering/utils_qa.py
#     commit 31f57e9efd761882d1296f7f6ade11ee87a3900e: postprocess_qa_predictions
# and the official SQuAD v1.1 evaluation script (evaluate-v1.1.py) for EM / F1.
HF_QA_EXAMPLES_COMMIT = {
    "run_qa.py": "03ea97ae17f461340572ce7c7250b22d7a146893",
    "utils_qa.py": "31f57e9efd761882d1296f7f6ade11ee87a3900e",
}

TASK_DEFAULTS = {
    "sst2": dict(epochs=3, lr=2e-5, batch_size=32, max_seq_length=128, eval_batch_size=64),
    "mnli": dict(epochs=3, lr=2e-5, batch_size=32, max_seq_length=128, eval_batch_size=64),
    "conll2003": dict(epochs=3, lr=5e-5, batch_size=32, max_seq_length=128, eval_batch_size=64),
    "squad": dict(epochs=2, lr=3e-5, batch_size=12, max_seq_length=384, eval_batch_size=32),
}
PRIMARY_METRIC = {"sst2": "accuracy", "mnli": "accuracy", "conll2003": "f1", "squad": "f1"}


def log(msg):
    print(f"[hf_finetune {time.time() - T0:8.1f}s] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------------------------
# Data readers (original formats)
# ----------------------------------------------------------------------------------------------

def _lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def _tsv_rows(path):
    """GLUE TSV (no quoting: GLUE files use QUOTE_NONE): (header columns, [(line_no, fields)])."""
    lines = _lines(path)
    rows = [(i + 1, l.split("\t")) for i, l in enumerate(lines) if l.strip() != ""]
    if not rows:
        fail(f"{path}: empty file")
    header = rows[0][1]
    return header, rows[1:]


def _column(header, names, path):
    for n in names:
        if n in header:
            return header.index(n)
    fail(f"{path}: no column {' or '.join(repr(n) for n in names)} in header {header}")


def read_sst2(path):
    header, rows = _tsv_rows(path)
    si, li = _column(header, ["sentence"], path), _column(header, ["label"], path)
    out = []
    for ln, f in rows:
        if len(f) <= max(si, li):
            fail(f"{path}:{ln}: expected at least {max(si, li) + 1} tab-separated fields")
        lab = f[li].strip()
        if lab not in ("0", "1"):
            fail(f"{path}:{ln}: label {lab!r} is not 0 or 1")
        out.append({"text": f[si], "pair": None, "label": int(lab)})
    return out


def _mnli_label(value, where):
    if isinstance(value, str):
        v = value.strip()
        if v in MNLI_LABELS:
            return MNLI_LABELS.index(v)
        if v in ("0", "1", "2"):
            return int(v)
        if v in ("-", ""):
            return None  # no gold label (annotators disagreed): skipped, as GLUE does
    elif isinstance(value, int) and not isinstance(value, bool):
        if value in (0, 1, 2):
            return value
        if value == -1:
            return None
    fail(f"{where}: unknown MNLI label {value!r} (expected one of {MNLI_LABELS})")


def read_mnli(path):
    lines = _lines(path)
    first = next((l for l in lines if l.strip()), "")
    out, skipped = [], 0
    if first.lstrip().startswith("{"):
        for i, l in enumerate(lines):
            if not l.strip():
                continue
            try:
                o = json.loads(l)
            except json.JSONDecodeError as e:
                fail(f"{path}:{i + 1}: invalid JSON ({e})")
            for k in ("premise", "hypothesis", "label"):
                if k not in o:
                    fail(f"{path}:{i + 1}: missing key {k!r}")
            lab = _mnli_label(o["label"], f"{path}:{i + 1}")
            if lab is None:
                skipped += 1
                continue
            out.append({"text": o["premise"], "pair": o["hypothesis"], "label": lab})
    else:
        header, rows = _tsv_rows(path)
        a, b = _column(header, ["sentence1"], path), _column(header, ["sentence2"], path)
        g = _column(header, ["gold_label", "label"], path)
        for ln, f in rows:
            if len(f) <= max(a, b, g):
                fail(f"{path}:{ln}: expected at least {max(a, b, g) + 1} tab-separated fields")
            lab = _mnli_label(f[g], f"{path}:{ln}")
            if lab is None:
                skipped += 1
                continue
            out.append({"text": f[a], "pair": f[b], "label": lab})
    if skipped:
        log(f"{path}: skipped {skipped} examples without a gold label")
    return out


def read_conll(path):
    sents, words, tags = [], [], []
    for i, l in enumerate(_lines(path)):
        cols = l.split()
        if not cols:
            if words:
                sents.append({"words": words, "tags": tags})
                words, tags = [], []
            continue
        if cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            fail(f"{path}:{i + 1}: expected `word POS chunk NER`")
        words.append(cols[0])
        tags.append(cols[-1])
    if words:
        sents.append({"words": words, "tags": tags})
    return sents


def read_squad(path):
    """Flattened like the `squad` dataset loader: one example per question, context as-is."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not isinstance(d, dict) or not isinstance(d.get("data"), list):
        fail(f"{path}: not a SQuAD JSON file (expected an object with a \"data\" array)")
    out = []
    for art in d["data"]:
        title = art.get("title", "")
        for para in art["paragraphs"]:
            context = para["context"]
            for qa in para["qas"]:
                if qa.get("is_impossible"):
                    continue
                out.append({
                    "id": qa["id"], "title": title, "context": context, "question": qa["question"],
                    "answers": {"answer_start": [a["answer_start"] for a in qa["answers"]],
                                "text": [a["text"] for a in qa["answers"]]},
                })
    return out


# ----------------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------------

def classification_features(tok, examples, max_len):
    texts = [e["text"] for e in examples]
    pairs = [e["pair"] for e in examples] if examples and examples[0]["pair"] is not None else None
    enc = tok(texts, pairs, truncation=True, max_length=max_len) if pairs is not None else \
        tok(texts, truncation=True, max_length=max_len)
    return [{"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
             "labels": e["label"]} for i, e in enumerate(examples)]


def conll_features(tok, sents, label_to_id, max_len):
    """HF run_ner tokenize_and_align_labels with label_all_tokens=False: the first word piece of
    each word carries the word's label, other pieces and special tokens -100."""
    enc = tok([s["words"] for s in sents], is_split_into_words=True, truncation=True, max_length=max_len)
    feats = []
    for i, s in enumerate(sents):
        word_ids = enc.word_ids(i)
        labels, first_token = [], {}
        prev = None
        for k, w in enumerate(word_ids):
            if w is None:
                labels.append(-100)
            elif w != prev:
                labels.append(label_to_id.get(s["tags"][w], -100) if label_to_id is not None else -100)
                first_token[w] = k
            else:
                labels.append(-100)
            prev = w
        feats.append({"input_ids": enc["input_ids"][i], "token_type_ids": enc["token_type_ids"][i],
                      "labels": labels, "first_token": first_token})
    return feats


def squad_tokenize(tok, examples, max_seq_length, doc_stride):
    """The windows of run_qa.py's two prepare_*_features: question first (padding side right),
    the context truncated into overlapping windows, offsets kept, no padding."""
    pad_on_right = tok.padding_side == "right"
    questions = [e["question"].lstrip() for e in examples]
    contexts = [e["context"] for e in examples]
    tokenized = tok(
        questions if pad_on_right else contexts,
        contexts if pad_on_right else questions,
        truncation="only_second" if pad_on_right else "only_first",
        max_length=max_seq_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    return tokenized, pad_on_right


def squad_train_features(tok, examples, max_seq_length, doc_stride):
    """run_qa.py prepare_train_features (commit in HF_QA_EXAMPLES_COMMIT), no padding."""
    tokenized, pad_on_right = squad_tokenize(tok, examples, max_seq_length, doc_stride)
    sample_mapping = tokenized["overflow_to_sample_mapping"]
    offset_mapping = tokenized["offset_mapping"]
    feats = []
    for i, offsets in enumerate(offset_mapping):
        input_ids = tokenized["input_ids"][i]
        if tok.cls_token_id in input_ids:
            cls_index = input_ids.index(tok.cls_token_id)
        elif tok.bos_token_id is not None and tok.bos_token_id in input_ids:
            cls_index = input_ids.index(tok.bos_token_id)
        else:
            cls_index = 0
        sequence_ids = tokenized.sequence_ids(i)
        answers = examples[sample_mapping[i]]["answers"]
        if len(answers["answer_start"]) == 0:
            start_pos, end_pos = cls_index, cls_index
        else:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            token_start_index = 0
            while sequence_ids[token_start_index] != (1 if pad_on_right else 0):
                token_start_index += 1
            token_end_index = len(input_ids) - 1
            while sequence_ids[token_end_index] != (1 if pad_on_right else 0):
                token_end_index -= 1
            if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
                start_pos, end_pos = cls_index, cls_index
            else:
                # (HF's note: this can go after the last offset if the answer is the last word.)
                while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                    token_start_index += 1
                start_pos = token_start_index - 1
                while offsets[token_end_index][1] >= end_char:
                    token_end_index -= 1
                end_pos = token_end_index + 1
        feats.append({"input_ids": input_ids, "token_type_ids": tokenized["token_type_ids"][i],
                      "start_positions": start_pos, "end_positions": end_pos})
    return feats


def squad_validation_features(tok, examples, max_seq_length, doc_stride):
    """run_qa.py prepare_validation_features, no padding: offsets outside the context are None."""
    tokenized, pad_on_right = squad_tokenize(tok, examples, max_seq_length, doc_stride)
    sample_mapping = tokenized["overflow_to_sample_mapping"]
    context_index = 1 if pad_on_right else 0
    feats = []
    for i in range(len(tokenized["input_ids"])):
        sequence_ids = tokenized.sequence_ids(i)
        offsets = [(o if sequence_ids[k] == context_index else None)
                   for k, o in enumerate(tokenized["offset_mapping"][i])]
        feats.append({"input_ids": tokenized["input_ids"][i], "token_type_ids": tokenized["token_type_ids"][i],
                      "example_id": examples[sample_mapping[i]]["id"], "offset_mapping": offsets})
    return feats


def collate(feats, pad_id, with_labels=True):
    """Right-pads to the longest row of the batch."""
    t = max(len(f["input_ids"]) for f in feats)
    b = len(feats)
    ids = torch.full((b, t), pad_id, dtype=torch.long)
    types = torch.zeros((b, t), dtype=torch.long)
    mask = torch.zeros((b, t), dtype=torch.long)
    for r, f in enumerate(feats):
        n = len(f["input_ids"])
        ids[r, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
        types[r, :n] = torch.tensor(f["token_type_ids"], dtype=torch.long)
        mask[r, :n] = 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    if with_labels:
        if "start_positions" in feats[0]:
            batch["start_positions"] = torch.tensor([f["start_positions"] for f in feats], dtype=torch.long)
            batch["end_positions"] = torch.tensor([f["end_positions"] for f in feats], dtype=torch.long)
        elif isinstance(feats[0]["labels"], list):
            lab = torch.full((b, t), -100, dtype=torch.long)
            for r, f in enumerate(feats):
                lab[r, :len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
            batch["labels"] = lab
        else:
            batch["labels"] = torch.tensor([f["labels"] for f in feats], dtype=torch.long)
    return batch


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------

# Official SQuAD v1.1 evaluation (evaluate-v1.1.py): normalize_answer, f1, exact match, max over
# the gold answers, averaged over every question of the dev file.
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def squad_exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, gt) for gt in ground_truths)


def squad_evaluate(examples, predictions):
    f1 = exact_match = total = 0
    for ex in examples:
        total += 1
        if ex["id"] not in predictions:
            print(f"Unanswered question {ex['id']} will receive score 0.", file=sys.stderr)
            continue
        ground_truths = ex["answers"]["text"]
        prediction = predictions[ex["id"]]
        exact_match += metric_max_over_ground_truths(squad_exact_match_score, prediction, ground_truths)
        f1 += metric_max_over_ground_truths(squad_f1_score, prediction, ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def postprocess_qa_predictions(examples, features, all_start_logits, all_end_logits,
                               n_best_size=20, max_answer_length=30):
    """utils_qa.postprocess_qa_predictions (version_2_with_negative=False). The logits of each
    feature cover its own tokens only (no padding positions), as with pad-free features."""
    example_id_to_index = {k: i for i, k in enumerate(e["id"] for e in examples)}
    features_per_example = collections.defaultdict(list)
    for i, feature in enumerate(features):
        features_per_example[example_id_to_index[feature["example_id"]]].append(i)

    all_predictions = collections.OrderedDict()
    for example_index, example in enumerate(examples):
        feature_indices = features_per_example[example_index]
        prelim_predictions = []
        for feature_index in feature_indices:
            start_logits = all_start_logits[feature_index]
            end_logits = all_end_logits[feature_index]
            offset_mapping = features[feature_index]["offset_mapping"]
            start_indexes = np.argsort(start_logits)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(end_logits)[-1: -n_best_size - 1: -1].tolist()
            for start_index in start_indexes:
                for end_index in end_indexes:
                    if (start_index >= len(offset_mapping) or end_index >= len(offset_mapping)
                            or offset_mapping[start_index] is None or offset_mapping[end_index] is None):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append({
                        "offsets": (offset_mapping[start_index][0], offset_mapping[end_index][1]),
                        "score": start_logits[start_index] + end_logits[end_index],
                    })
        predictions = sorted(prelim_predictions, key=lambda x: x["score"], reverse=True)[:n_best_size]
        context = example["context"]
        for pred in predictions:
            offsets = pred.pop("offsets")
            pred["text"] = context[offsets[0]: offsets[1]]
        if len(predictions) == 0 or (len(predictions) == 1 and predictions[0]["text"] == ""):
            predictions.insert(0, {"text": "empty", "score": 0.0})
        all_predictions[example["id"]] = predictions[0]["text"]
    return all_predictions


def conll_metrics(gold_sents, pred_tags):
    from seqeval.metrics import f1_score, precision_score, recall_score
    y_true = [s["tags"] for s in gold_sents]
    # seqeval default mode = conlleval semantics; entity-level micro averages.
    return {
        "precision": 100.0 * float(precision_score(y_true, pred_tags)),
        "recall": 100.0 * float(recall_score(y_true, pred_tags)),
        "f1": 100.0 * float(f1_score(y_true, pred_tags)),
    }


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model directory (config.json, weights, tokenizer)")
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-seq-length", type=int)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--eval-batch-size", type=int)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--max-answer-length", type=int, default=30)
    p.add_argument("--n-best", type=int, default=20)
    p.add_argument("--log-every", type=int, default=0, help="progress line every N updates (0 = ~20 per epoch)")
    p.add_argument("--no-shuffle", action="store_true",
                   help="training features in file order every epoch (as aqbert finetune --no-shuffle)")
    p.add_argument("--step-losses", help="also write every update's training loss to this file, one per line")
    p.add_argument("--save-model", action="store_true", help="also save the final model weights and tokenizer in --output")
    a = p.parse_args(argv)
    for k, v in TASK_DEFAULTS[a.task].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.epochs < 1:
        p.error("--epochs must be at least 1")
    if not a.lr > 0:
        p.error("--lr must be positive")
    if a.batch_size < 1 or a.eval_batch_size < 1:
        p.error("batch sizes must be at least 1")
    if a.max_seq_length < 8:
        p.error("--max-seq-length must be at least 8")
    if not 0 <= a.warmup_ratio < 1:
        p.error("--warmup-ratio must be in [0, 1)")
    if a.task == "squad" and a.doc_stride >= a.max_seq_length:
        p.error("--doc-stride must be smaller than --max-seq-length")
    if a.threads < 0:
        p.error("--threads must be >= 0")
    return a


def main(argv=None):
    args = parse_args(argv)
    for path in (args.train, args.dev):
        if not os.path.isfile(path):
            fail(f"no such file: {path}")
    if not os.path.isdir(args.model):
        fail(f"no such model directory: {args.model}")
    os.makedirs(args.output, exist_ok=True)

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    tok = AutoTokenizer.from_pretrained(args.model)
    if not getattr(tok, "is_fast", False):
        fail("a fast tokenizer (tokenizer.json) is required for offsets and word ids")
    max_len = min(args.max_seq_length, tok.model_max_length)
    task = args.task

    # ---- data ----
    label_list = None
    if task in ("sst2", "mnli"):
        reader = read_sst2 if task == "sst2" else read_mnli
        train_ex, dev_ex = reader(args.train), reader(args.dev)
        label_list = SST2_LABELS if task == "sst2" else MNLI_LABELS
        train_feats = classification_features(tok, train_ex, max_len)
        dev_feats = classification_features(tok, dev_ex, max_len)
    elif task == "conll2003":
        train_ex, dev_ex = read_conll(args.train), read_conll(args.dev)
        tags = {t for s in train_ex for t in s["tags"]}
        label_list = ["O"] + sorted(tags - {"O"})
        label_to_id = {l: i for i, l in enumerate(label_list)}
        unseen = sorted({t for s in dev_ex for t in s["tags"]} - set(label_list))
        if unseen:
            log(f"dev tags not in the training tags (never predicted): {unseen}")
        train_feats = conll_features(tok, train_ex, label_to_id, max_len)
        dev_feats = conll_features(tok, dev_ex, None, max_len)
    else:
        train_ex, dev_ex = read_squad(args.train), read_squad(args.dev)
        train_feats = squad_train_features(tok, train_ex, max_len, args.doc_stride)
        dev_feats = squad_validation_features(tok, dev_ex, max_len, args.doc_stride)
    if not train_ex or not dev_ex:
        fail("empty training or dev set")
    log(f"task {task}: {len(train_ex)} train examples -> {len(train_feats)} features; "
        f"{len(dev_ex)} dev examples -> {len(dev_feats)} features; max length {max_len}")

    # ---- model ----
    torch.manual_seed(args.seed)
    common = dict(dtype=torch.float32)
    if task in ("sst2", "mnli"):
        model = AutoModelForSequenceClassification.from_pretrained(
            args.model, num_labels=len(label_list), id2label=dict(enumerate(label_list)),
            label2id={l: i for i, l in enumerate(label_list)}, **common)
    elif task == "conll2003":
        model = AutoModelForTokenClassification.from_pretrained(
            args.model, num_labels=len(label_list), id2label=dict(enumerate(label_list)),
            label2id={l: i for i, l in enumerate(label_list)}, **common)
    else:
        model = AutoModelForQuestionAnswering.from_pretrained(args.model, **common)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

    decay, no_decay = [], []
    for n, prm in model.named_parameters():
        if not prm.requires_grad:
            continue
        (no_decay if (n.endswith("bias") or "LayerNorm" in n) else decay).append(prm)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    steps_per_epoch = math.ceil(len(train_feats) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = math.ceil(total_steps * args.warmup_ratio)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model {type(model).__name__}: {n_params} parameters ({len(decay)} tensors with weight decay, "
        f"{len(no_decay)} without); {steps_per_epoch} updates/epoch, {total_steps} total, {warmup_steps} warm-up; "
        f"threads {torch.get_num_threads()}")

    training_args = {
        "task": task, "model": os.path.abspath(args.model), "train": os.path.abspath(args.train),
        "dev": os.path.abspath(args.dev), "epochs": args.epochs, "learning_rate": args.lr,
        "batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
        "max_seq_length": max_len, "seed": args.seed, "warmup_ratio": args.warmup_ratio,
        "warmup_steps": warmup_steps, "total_steps": total_steps, "weight_decay": args.weight_decay,
        "no_weight_decay": "name ends in 'bias' or contains 'LayerNorm'",
        "adam_betas": [0.9, 0.999], "adam_epsilon": 1e-8, "max_grad_norm": args.max_grad_norm,
        "scheduler": "linear warm-up then linear decay to 0", "padding": "dynamic (longest in batch)",
        "threads": torch.get_num_threads(), "labels": label_list,
        "doc_stride": args.doc_stride if task == "squad" else None,
        "max_answer_length": args.max_answer_length if task == "squad" else None,
        "n_best_size": args.n_best if task == "squad" else None,
        "implementation": f"transformers {transformers.__version__} + torch {torch.__version__}",
        "python": platform.python_version(),
        "hf_qa_examples_commit": HF_QA_EXAMPLES_COMMIT if task == "squad" else None,
    }
    with open(os.path.join(args.output, "training_args.json"), "w") as f:
        json.dump(training_args, f, indent=2)
        f.write("\n")

    # ---- evaluation ----
    def evaluate():
        model.eval()
        eb = args.eval_batch_size
        with torch.no_grad():
            if task in ("sst2", "mnli"):
                correct = 0
                for s in range(0, len(dev_feats), eb):
                    chunk = dev_feats[s:s + eb]
                    batch = collate(chunk, pad_id, with_labels=False)
                    pred = model(**batch).logits.argmax(-1)
                    correct += sum(int(p) == f["labels"] for p, f in zip(pred.tolist(), chunk))
                metrics = {"accuracy": 100.0 * correct / len(dev_feats)}
            elif task == "conll2003":
                pred_tags = []
                for s in range(0, len(dev_feats), eb):
                    chunk = dev_feats[s:s + eb]
                    batch = collate(chunk, pad_id, with_labels=False)
                    pred = model(**batch).logits.argmax(-1).tolist()
                    for row, f, sent in zip(pred, chunk, dev_ex[s:s + eb]):
                        # words cut by truncation (or with no word piece) are predicted "O"
                        pred_tags.append([label_list[row[f["first_token"][w]]] if w in f["first_token"] else "O"
                                          for w in range(len(sent["words"]))])
                metrics = conll_metrics(dev_ex, pred_tags)
            else:
                starts, ends = [], []
                for s in range(0, len(dev_feats), eb):
                    chunk = dev_feats[s:s + eb]
                    batch = collate(chunk, pad_id, with_labels=False)
                    out = model(**batch)
                    sl, el = out.start_logits.numpy(), out.end_logits.numpy()
                    for r, f in enumerate(chunk):
                        n = len(f["input_ids"])
                        starts.append(sl[r, :n].copy())
                        ends.append(el[r, :n].copy())
                preds = postprocess_qa_predictions(dev_ex, dev_feats, starts, ends,
                                                   n_best_size=args.n_best, max_answer_length=args.max_answer_length)
                metrics = squad_evaluate(dev_ex, preds)
        model.train()
        return metrics

    # ---- training ----
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    log_every = args.log_every or max(1, steps_per_epoch // 20)
    params = [p for p in model.parameters() if p.requires_grad]
    history, best = [], None
    primary = PRIMARY_METRIC[task]
    model.train()
    t_train = time.time()
    step = 0
    step_losses = open(args.step_losses, "w") if args.step_losses else None
    for epoch in range(1, args.epochs + 1):
        t_epoch = time.time()
        order = (list(range(len(train_feats))) if args.no_shuffle
                 else torch.randperm(len(train_feats), generator=gen).tolist())
        loss_sum, loss_n = 0.0, 0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            batch = collate([train_feats[i] for i in idx], pad_id)
            out = model(**batch)
            loss = out.loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            loss_sum += loss.item()
            loss_n += 1
            if step_losses:
                step_losses.write(f"{loss.item()!r}\n")
            if step % log_every == 0 or b == steps_per_epoch - 1:
                log(f"epoch {epoch} step {b + 1}/{steps_per_epoch} loss {loss.item():.4f} "
                    f"avg {loss_sum / loss_n:.4f} lr {scheduler.get_last_lr()[0]:.3e} "
                    f"{(time.time() - t_epoch) / (b + 1):.3f}s/step")
        train_epoch_s = time.time() - t_epoch
        t_eval = time.time()
        metrics = evaluate()
        eval_s = time.time() - t_eval
        entry = {"epoch": epoch, "metrics": metrics, "train_loss": loss_sum / max(loss_n, 1),
                 "epoch_train_seconds": train_epoch_s, "eval_seconds": eval_s}
        history.append(entry)
        log(f"epoch {epoch} done: train {train_epoch_s:.1f}s, eval {eval_s:.1f}s, "
            + " ".join(f"{k}={v:.2f}" for k, v in metrics.items()))
        if best is None or metrics[primary] > best["metrics"][primary]:
            best = entry
    train_seconds = time.time() - t_train

    if args.save_model:
        model.save_pretrained(args.output)
        tok.save_pretrained(args.output)

    result = {
        "task": task,
        "metrics": best["metrics"],
        "best_epoch": best["epoch"],
        # as aqbert: "examples" = evaluated (dev) examples: questions (squad), sentences (conll2003)
        "examples": len(dev_ex),
        "train_examples": len(train_ex),
        "train_features": len(train_feats),
        "dev_features": len(dev_feats),
        "history": history,
        "train_seconds": train_seconds,
        "total_seconds": time.time() - T0,
        "implementation": training_args["implementation"],
    }
    with open(os.path.join(args.output, "eval_results.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    log(f"best epoch {best['epoch']}: " + " ".join(f"{k}={v:.2f}" for k, v in best["metrics"].items())
        + f"; train {train_seconds:.1f}s, total {result['total_seconds']:.1f}s -> {args.output}/eval_results.json")


if __name__ == "__main__":
    main()
