#!/usr/bin/env python3
"""PyTorch half of the aqbert training-step benchmark.

    python bench/torch_train_step.py --config base --batch 8 --seq 128 --threads 1 --steps 5

Times `--steps` training steps (after `--warmup` untimed ones) of a randomly initialised
BertForSequenceClassification (2 labels, default dropout 0.1, train mode) with AdamW
(lr 2e-5, weight decay 0.01 on all parameters).  One step = zero_grad(set_to_none=True) +
forward + loss + backward + optimizer.step().

stdout is exactly six `key: value` lines (the Swift `aqbert bench train` prints the same
keys; bench/train_step.sh parses both).  Diagnostics go to stderr.  The FLOP count is
documented in bench/README.md and must stay identical to the Swift side.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

CONFIGS = {
    # name: (hidden, layers, heads, intermediate, vocab)
    "base": (768, 12, 12, 3072, 30522),
    "minilm": (384, 6, 12, 1536, 30522),
    "tiny": (128, 2, 2, 512, 30522),
}
NUM_LABELS = 2


def matmul_flops_per_step(config: str, batch: int, seq: int, labels: int = NUM_LABELS) -> float:
    """3 x forward matmul FLOPs (see bench/README.md)."""
    H, L, _heads, I, _vocab = CONFIGS[config]
    tokens = batch * seq
    per_layer = tokens * (2 * H * 3 * H + 2 * H * H + 2 * 2 * H * I) + 4 * batch * seq * seq * H
    forward = L * per_layer + 2 * batch * H * labels + 2 * batch * H * H
    return 3.0 * forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    # Thread pools must be sized before torch does any parallel work.
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    H, L, heads, I, vocab = CONFIGS[args.config]
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=H,
        num_hidden_layers=L,
        num_attention_heads=heads,
        intermediate_size=I,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        num_labels=NUM_LABELS,
    )
    model = BertForSequenceClassification(config).to(torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    g = torch.Generator().manual_seed(args.seed + 1)
    input_ids = torch.randint(0, vocab, (args.batch, args.seq), generator=g)
    attention_mask = torch.ones(args.batch, args.seq, dtype=torch.int64)
    token_type_ids = torch.zeros(args.batch, args.seq, dtype=torch.int64)
    labels = torch.randint(0, NUM_LABELS, (args.batch,), generator=g)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            labels=labels,
        )
        out.loss.backward()
        opt.step()
        return out.loss.item()

    for _ in range(args.warmup):
        step()
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        print(f"step {i}: {times[-1]:.4f} s loss {loss:.4f}", file=sys.stderr)

    median = statistics.median(times)
    tokens = args.batch * args.seq
    flops = matmul_flops_per_step(args.config, args.batch, args.seq)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    print(
        f"# attn_implementation={model.config._attn_implementation} "
        f"transformers={transformers.__version__} torch_threads={torch.get_num_threads()} "
        f"params={sum(p.numel() for p in model.parameters())}",
        file=sys.stderr,
    )

    print(f"implementation: pytorch {torch.__version__}")
    print(f"config: {args.config} batch={args.batch} seq={args.seq} threads={args.threads}")
    print(f"median_step_seconds: {median:.6f}")
    print(f"tokens_per_second: {tokens / median:.1f}")
    print(f"gflops: {flops / median / 1e9:.1f}")
    print(f"peak_rss_mib: {peak_rss_mib:.1f}")


if __name__ == "__main__":
    main()
