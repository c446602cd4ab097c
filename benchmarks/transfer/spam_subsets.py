#!/usr/bin/env python3
"""Writes the few-label training subsets of the SpamAssassin split and scores TF-IDF + logistic regression on them.

Usage: python3 benchmarks/transfer/spam_subsets.py [--data data/spam] [--out data/spam/subsets]
           [--sizes 50,100,200,500] [--seeds 0,1,2,3,4] [--json results.json]

Subset N of seed s: the first N e-mails of train.jsonl after random.Random(s).shuffle (the lines, in file order
before the shuffle), written as <out>/train-N-seed-s.jsonl; "all" is train.jsonl itself. The baseline is
scikit-learn's TF-IDF (sublinear tf, 50,000 features) with logistic regression (C = 10), fit on each subset and
scored on test.jsonl, as the reference figures were measured. Prints a table of mean [min-max] test accuracy per N.
Needs python3-sklearn (Debian) for the baseline.
"""

import argparse
import json
import os
import random
import statistics
import sys


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [line for line in f if line.strip()]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(repo, "data", "spam"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--json")
    args = parser.parse_args()
    out = args.out or os.path.join(args.data, "subsets")
    os.makedirs(out, exist_ok=True)
    train_lines = read_jsonl(os.path.join(args.data, "train.jsonl"))
    test = [json.loads(line) for line in read_jsonl(os.path.join(args.data, "test.jsonl"))]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]

    subsets = {}
    for seed in seeds:
        lines = list(train_lines)
        random.Random(seed).shuffle(lines)
        for n in sizes:
            path = os.path.join(out, f"train-{n}-seed-{seed}.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(lines[:n])
            subsets[(n, seed)] = [json.loads(line) for line in lines[:n]]
    print(f"spam_subsets: wrote {len(subsets)} subsets to {out}", file=sys.stderr)

    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        sys.exit("spam_subsets: the baseline needs scikit-learn (apt-get install python3-sklearn)")

    def score(examples):
        vec = TfidfVectorizer(sublinear_tf=True, max_features=50000)
        x = vec.fit_transform([e["text"] for e in examples])
        clf = LogisticRegression(C=10, max_iter=2000).fit(x, [e["label"] for e in examples])
        predicted = clf.predict(vec.transform([e["text"] for e in test]))
        return sum(p == e["label"] for p, e in zip(predicted, test)) / len(test)

    results = {}
    for n in sizes:
        results[str(n)] = [score(subsets[(n, seed)]) for seed in seeds]
    results["all"] = [score([json.loads(line) for line in train_lines])]
    print("| N labelled | TF-IDF + LR test accuracy, mean [min-max] |")
    print("|---:|---|")
    for key, values in results.items():
        print(f"| {key} | {statistics.mean(values):.4f} [{min(values):.4f}-{max(values):.4f}] |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"tfidf_lr": results}, f, indent=1)


if __name__ == "__main__":
    main()
