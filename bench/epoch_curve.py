#!/usr/bin/env python3
"""Accuracy (or F1) after each QAT epoch, one line per run, as an SVG picture.

Usage:
    python3 bench/epoch_curve.py --metric accuracy --title "SST-2 ..." --reference 85.55 \
        --output Docs/figures/qat-epochs.svg "uniform 2-bit=RUN_DIR" "AQ-BERT 2.0=RUN_DIR" ...

Each RUN_DIR is a `retrain` (or `finetune`) output: its eval_results.json holds the dev metric
after every epoch of one schedule (`history`). --reference draws a dashed horizontal line (the
fp32 model). Standard library only; prints the points it drew, one line per run.
"""
import argparse
import json
import sys
from pathlib import Path

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    p.add_argument("--metric", default="accuracy")
    p.add_argument("--title", default="Dev metric after each QAT epoch")
    p.add_argument("--reference", type=float, help="fp32 metric (dashed line)")
    p.add_argument("--output", required=True)
    a = p.parse_args()
    series = []
    for item in a.runs:
        label, _, path = item.partition("=")
        if not path:
            print(f"error: {item!r} is not LABEL=RUN_DIR", file=sys.stderr)
            return 1
        try:
            history = json.loads((Path(path) / "eval_results.json").read_text())["history"]
            points = [(h["epoch"], h["metrics"][a.metric]) for h in history]
        except (OSError, KeyError, ValueError) as e:
            print(f"error: {path}: no {a.metric} history in eval_results.json ({e})", file=sys.stderr)
            return 1
        series.append((label, points))
    values = [v for _, pts in series for _, v in pts] + ([a.reference] if a.reference is not None else [])
    lo, hi = min(values), max(values)
    lo, hi = (lo - 1, hi + 1) if hi - lo < 2 else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    max_epoch = max(e for _, pts in series for e, _ in pts)
    w, h, left, right, top, bottom = 640, 400, 60, 200, 40, 50
    pw, ph = w - left - right, h - top - bottom
    x = lambda e: left + (e - 1) / max(1, max_epoch - 1) * pw
    y = lambda v: top + (hi - v) / (hi - lo) * ph
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="20" font-size="14">{a.title}</text>',
           f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
           f'<text x="{left + pw / 2}" y="{h - 10}" text-anchor="middle">QAT epoch</text>',
           f'<text x="15" y="{top + ph / 2}" transform="rotate(-90 15 {top + ph / 2})" text-anchor="middle">dev {a.metric}</text>']
    for e in range(1, max_epoch + 1):
        out.append(f'<text x="{x(e):.1f}" y="{top + ph + 16}" text-anchor="middle">{e}</text>')
    for k in range(6):
        v = lo + k * (hi - lo) / 5
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#ddd"/>')
    if a.reference is not None:
        out.append(f'<line x1="{left}" y1="{y(a.reference):.1f}" x2="{left + pw}" y2="{y(a.reference):.1f}" stroke="black" stroke-dasharray="5,4"/>')
        out.append(f'<text x="{left + pw + 8}" y="{y(a.reference) + 4:.1f}">fp32 {a.reference:.2f}</text>')
    for i, (label, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{" ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in pts)}"/>')
        for e, v in pts:
            out.append(f'<circle cx="{x(e):.1f}" cy="{y(v):.1f}" r="3" fill="{c}"/>')
        ly = top + 20 * i + 10 + (40 if a.reference is not None else 0)
        out.append(f'<line x1="{left + pw + 8}" y1="{ly - 4}" x2="{left + pw + 28}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 32}" y="{ly}">{label}</text>')
        print(f"{label}: " + " ".join(f"epoch {e} {v:.2f}" for e, v in pts))
    out.append("</svg>")
    Path(a.output).write_text("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
