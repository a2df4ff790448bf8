#!/usr/bin/env bash
# Sentence embeddings with all-MiniLM-L6-v2: sets up, fetches the model, builds aqbert
# (release), tokenises and embeds Examples/sentences.txt, and prints each sentence's nearest
# neighbour by cosine similarity of the mean-pooled embeddings, then one inference benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source Scripts/setup.sh
aq_setup
model="$(Scripts/fetch-minilm.sh)"
swift build -c release >&2
bin=.build/release/aqbert
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
$bin tokenize --model "$model" --input Examples/sentences.txt --output "$out/tokens.jsonl"
$bin encode --model "$model" --input Examples/sentences.txt --output "$out/embeddings.jsonl" --pooling mean
echo "== all-MiniLM-L6-v2 sentence embeddings (mean pooling): nearest neighbour of each sentence"
awk -v texts=Examples/sentences.txt '
    BEGIN { n = 0; while ((getline line < texts) > 0) { n++; text[n] = line } }
    {
        s = $0; sub(/.*"embedding": \[/, "", s); sub(/\]\}.*/, "", s)
        k = split(s, v, ", "); row = NR; dim = k
        for (i = 1; i <= k; i++) e[row, i] = v[i] + 0
    }
    END {
        for (a = 1; a <= NR; a++) {
            na = 0; for (i = 1; i <= dim; i++) na += e[a, i] * e[a, i]
            best = -2; bi = 0
            for (b = 1; b <= NR; b++) if (b != a) {
                dot = 0; nb = 0
                for (i = 1; i <= dim; i++) { dot += e[a, i] * e[b, i]; nb += e[b, i] * e[b, i] }
                c = dot / sqrt(na * nb); if (c > best) { best = c; bi = b }
            }
            printf "%.3f  %s\n       -> %s\n", best, text[a], text[bi]
        }
    }' "$out/embeddings.jsonl"
echo "== tokens of the first sentence"
head -1 "$out/tokens.jsonl"
echo "== inference: MiniLM, batch 8, seq 128"
$bin bench forward --model "$model" --batch 8 --seq 128 --steps 5 2>/dev/null
