#!/usr/bin/env python3
"""Reference inference for `bench/infer_compare.sh`: one implementation per process (so that
peak memory is its own), the same inputs and thread count as `aqbert bench infer`.

    python bench/hf_infer.py --model FP32_DIR --impl torch-fp32|torch-int8|ort-int8 \
        --batch N --seq N --threads N [--steps 20] [--warmup 3] [--workdir DIR]

- torch-fp32: AutoModelForSequenceClassification in float32, eval mode, torch.inference_mode.
- torch-int8: the same after torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, qint8)
  (int8 weights, activations quantized per batch at run time).
- ort-int8: the fp32 model exported to ONNX (opset 17, dynamic batch and sequence axes), then
  onnxruntime.quantization.quantize_dynamic(weight_type=QInt8), run by onnxruntime with
  intra_op_num_threads = --threads. The ONNX files are cached in --workdir.

Inputs: token ids id[b][t] = (1000 + 7919 * (b * seq + t)) % vocab_size, attention mask all
ones, token types 0: exactly what `aqbert bench infer` feeds. Prints one line per figure
(`latency_ms`, `sequences_per_second`, `peak_rss_mib`), the median over --steps timed passes.
"""

import argparse
import os
import resource
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--impl", required=True, choices=["torch-fp32", "torch-int8", "ort-int8"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    config = AutoConfig.from_pretrained(a.model)
    vocab = config.vocab_size
    n = a.batch * a.seq
    ids = np.array([(1000 + 7919 * i) % vocab for i in range(n)], dtype=np.int64).reshape(a.batch, a.seq)
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)

    if a.impl.startswith("torch"):
        model = AutoModelForSequenceClassification.from_pretrained(a.model, torch_dtype=torch.float32).eval()
        if a.impl == "torch-int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        t_ids, t_mask, t_types = (torch.from_numpy(x) for x in (ids, mask, types))

        def run():
            with torch.inference_mode():
                return model(input_ids=t_ids, attention_mask=t_mask, token_type_ids=t_types).logits
    else:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        work = a.workdir or os.path.join(a.model, ".onnx")
        os.makedirs(work, exist_ok=True)
        fp32_path = os.path.join(work, "model.onnx")
        int8_path = os.path.join(work, "model.int8.onnx")
        if not os.path.exists(int8_path):
            model = AutoModelForSequenceClassification.from_pretrained(a.model, torch_dtype=torch.float32).eval()
            sample = tuple(torch.from_numpy(x[:1, :8]) for x in (ids, mask, types))
            torch.onnx.export(model, sample, fp32_path, input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={k: {0: "batch", 1: "seq"} for k in ["input_ids", "attention_mask", "token_type_ids"]})
            quantize_dynamic(fp32_path, int8_path, weight_type=QuantType.QInt8)
            del model
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(int8_path, so, providers=["CPUExecutionProvider"])
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

        def run():
            return session.run(["logits"], feed)[0]

    times = []
    for step in range(a.warmup + a.steps):
        start = time.perf_counter()
        run()
        s = time.perf_counter() - start
        if step >= a.warmup:
            times.append(s)
    median = statistics.median(times)
    print(f"implementation: {a.impl} (torch {torch.__version__})")
    print(f"config: {os.path.basename(os.path.normpath(a.model))} batch={a.batch} seq={a.seq} threads={a.threads}")
    print(f"latency_ms: {1000 * median:.3f}")
    print(f"sequences_per_second: {a.batch / median:.2f}")
    print(f"peak_rss_mib: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


if __name__ == "__main__":
    sys.exit(main())
