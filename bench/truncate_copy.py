#!/usr/bin/env python3
"""The first N examples of a task's data file, written in the file's own format.

    python bench/truncate_copy.py TASK IN OUT N

TASK: sst2 / mnli (TSV, header kept; or MNLI JSONL), conll2003 (N sentences, -DOCSTART- lines
kept), squad (N questions, articles and paragraphs cut to them). Used by the side-by-side
scripts (finetune_compare.sh LIMIT_TRAIN/LIMIT_DEV, trajectory_compare.sh).
"""
import json, sys
task, src, dst, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(src, encoding="utf-8", newline="") as f:
    text = f.read()
out = []
if task == "squad":
    d = json.loads(text)
    left, arts = n, []
    for art in d["data"]:
        paras = []
        for p in art["paragraphs"]:
            if left <= 0:
                break
            qas = p["qas"][:left]
            left -= len(qas)
            if qas:
                paras.append(dict(p, qas=qas))
        if paras:
            arts.append(dict(art, paragraphs=paras))
        if left <= 0:
            break
    d["data"] = arts
    result = json.dumps(d, ensure_ascii=False)
elif task == "conll2003":
    count, block = 0, []
    lines = text.split("\n")
    for l in lines + [""]:
        if l.strip():
            block.append(l)
            continue
        if block:
            if block[0].split()[0] == "-DOCSTART-":
                out += block + [""]
            elif count < n:
                out += block + [""]
                count += 1
            block = []
        if count >= n:
            break
    result = "\n".join(out) + ("\n" if out else "")
else:  # sst2 TSV (header kept), mnli JSONL or TSV (header kept)
    lines = [l for l in text.split("\n") if l.strip()]
    jsonl = bool(lines) and lines[0].lstrip().startswith("{")
    head = [] if jsonl else lines[:1]
    body = lines if jsonl else lines[1:]
    result = "\n".join(head + body[:n]) + "\n"
with open(dst, "w", encoding="utf-8", newline="") as f:
    f.write(result)
