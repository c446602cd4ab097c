#!/usr/bin/env python3
"""Draws the learning curves of the transfer benchmark as an SVG: test accuracy against the number of labelled
e-mails, one line per method (mean over the seeds, a bar from the lowest to the highest run).

Usage: python3 benchmarks/transfer/plot_transfer.py runs/transfer/results.csv [--tfidf runs/transfer/tfidf.json ...]
           [--out docs/transfer_curves.svg]

results.csv is run_transfer.sh's (method,labels,seed,test_accuracy,seconds); --tfidf is spam_subsets.py --json's
output (the TF-IDF + logistic regression baseline on the same subsets), repeatable: a later file's sizes replace an
earlier one's (e.g. seeds 0-4 at 200 labels, seeds 0-2 at the other sizes). Standard library only.
"""

import argparse
import csv
import json
import math
import statistics

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
NAMES = {"bert-pretrained": "pretrained BERT, fine-tuned", "transformer-scratch": "transformer from scratch",
         "tfidf_lr": "TF-IDF + logistic regression", "bert-lora8": "pretrained BERT, LoRA rank 8"}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results")
    p.add_argument("--tfidf", action="append", default=[])
    p.add_argument("--out", default="docs/transfer_curves.svg")
    a = p.parse_args()

    runs = {}  # method -> labels -> [accuracy]
    with open(a.results) as f:
        for row in csv.DictReader(f):
            if row["labels"] == "all":
                continue
            runs.setdefault(row["method"], {}).setdefault(int(row["labels"]), []).append(float(row["test_accuracy"]))
    for path in a.tfidf:
        with open(path) as f:
            for labels, values in json.load(f)["tfidf_lr"].items():
                if labels != "all":
                    runs.setdefault("tfidf_lr", {})[int(labels)] = values
    runs = {m: v for m, v in runs.items() if len(v) > 1}  # a curve needs two sizes
    sizes = sorted({n for v in runs.values() for n in v})
    values = [x for v in runs.values() for xs in v.values() for x in xs]
    lo, hi = math.floor(min(values) * 20) / 20, min(1.0, math.ceil(max(values) * 20) / 20)

    w, h, left, right, top, bottom = 640, 400, 60, 230, 20, 50
    def x_of(n):
        return left + (math.log(n) - math.log(sizes[0])) / (math.log(sizes[-1]) - math.log(sizes[0])) * (w - left - right)
    def y_of(v):
        return top + (hi - v) / (hi - lo) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    steps = int(round((hi - lo) / 0.05))
    for i in range(steps + 1):
        v = lo + i * 0.05
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for n in sizes:
        out.append(f'<text x="{x_of(n):.1f}" y="{h - bottom + 18}" text-anchor="middle">{n}</text>')
    out.append(f'<text x="{(left + w - right) / 2:.0f}" y="{h - 10}" text-anchor="middle">labelled e-mails</text>')
    out.append(f'<text x="14" y="{(top + h - bottom) / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(top + h - bottom) / 2:.0f})">test accuracy</text>')
    for k, (method, by_size) in enumerate(sorted(runs.items())):
        color = COLORS[k % len(COLORS)]
        points = [(x_of(n), y_of(statistics.mean(by_size[n]))) for n in sorted(by_size)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                   + " ".join(f"{x:.1f},{y:.1f}" for x, y in points) + '"/>')
        for n in sorted(by_size):
            x = x_of(n)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y_of(min(by_size[n])):.1f}" '
                       f'y2="{y_of(max(by_size[n])):.1f}" stroke="{color}"/>')
            out.append(f'<circle cx="{x:.1f}" cy="{y_of(statistics.mean(by_size[n])):.1f}" r="3" fill="{color}"/>')
        ly = top + 10 + 20 * k
        out.append(f'<line x1="{w - right + 12}" x2="{w - right + 32}" y1="{ly}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"/>')
        out.append(f'<text x="{w - right + 38}" y="{ly + 4}">{NAMES.get(method, method)}</text>')
    out.append("</svg>")
    with open(a.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"plot_transfer: wrote {a.out}")


if __name__ == "__main__":
    main()
