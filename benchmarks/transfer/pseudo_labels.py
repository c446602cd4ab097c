#!/usr/bin/env python3
"""Writes a self-training set: the labelled subset with its labels, plus the other training e-mails labelled by a
fine-tuned model where it is confident.

Usage:
  python3 benchmarks/transfer/pseudo_labels.py texts --train data/spam/train.jsonl > texts.txt
  text_classifier predict --model RUN < texts.txt > predictions.tsv
  python3 benchmarks/transfer/pseudo_labels.py merge --train data/spam/train.jsonl --labelled SUBSET.jsonl \
      --predictions predictions.tsv --threshold 0.9 --out SELF.jsonl

`texts` prints each e-mail of --train on one line (line breaks and tabs become spaces, which the BERT normalizer
treats alike), the input `predict` reads. `merge` keeps the e-mails of --labelled with their own labels and adds
every other e-mail of --train whose predicted probability is at least --threshold, with the predicted label (the
true labels of those e-mails are never read). Standard library only.
"""

import argparse
import json
import sys


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def one_line(text):
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    texts = sub.add_parser("texts", help="print the --train texts one a line")
    texts.add_argument("--train", required=True)
    merge = sub.add_parser("merge", help="write the labelled subset plus the confident predictions")
    merge.add_argument("--train", required=True)
    merge.add_argument("--labelled", required=True)
    merge.add_argument("--predictions", required=True, help="predict's output: label<TAB>probability a line")
    merge.add_argument("--threshold", type=float, default=0.9)
    merge.add_argument("--out", required=True)
    args = parser.parse_args()

    train = read_jsonl(args.train)
    if args.command == "texts":
        for row in train:
            sys.stdout.write(one_line(row["text"]) + "\n")
        return

    if not 0.0 <= args.threshold <= 1.0:
        sys.exit(f"pseudo_labels: --threshold is {args.threshold}, expected a probability in [0, 1]")
    predictions = []
    with open(args.predictions, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                predictions.append((fields[0], float(fields[1])))
            except (IndexError, ValueError):
                sys.exit(f"pseudo_labels: {args.predictions}:{number} is {line.strip()!r}, "
                         "expected label<TAB>probability")
    if len(predictions) != len(train):
        sys.exit(f"pseudo_labels: {args.predictions} has {len(predictions)} lines, expected {len(train)} "
                 f"(one per e-mail of {args.train})")
    labelled = read_jsonl(args.labelled)
    labelled_texts = {row["text"] for row in labelled}
    rows = [{"text": row["text"], "label": row["label"]} for row in labelled]
    counts = {}
    for row, (label, probability) in zip(train, predictions):
        if row["text"] in labelled_texts or probability < args.threshold:
            continue
        rows.append({"text": row["text"], "label": label})
        counts[label] = counts.get(label, 0) + 1
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    added = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    print(f"pseudo_labels: {len(labelled)} labelled + {len(rows) - len(labelled)} predicted ({added}) of "
          f"{len(train) - len(labelled)} unlabelled, threshold {args.threshold}: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
