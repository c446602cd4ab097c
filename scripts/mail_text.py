#!/usr/bin/env python3
"""Writes a copy of a SpamAssassin split whose texts are what a reader of each e-mail sees: its Subject and From
lines, then the decoded text of its body, without the other headers.

Usage: python3 scripts/mail_text.py [--data data/spam] [--out data/spam-mail]

The raw e-mails start with their headers (Received, Return-Path, Message-Id, X-...: in the training split a median
of 51% of an e-mail's whitespace-separated words), and their bodies may be quoted-printable, base64 or multipart.
Each text becomes "Subject: S\nFrom: F\n\nBODY", where BODY is every text/plain part decoded, or, where those hold
fewer than 20 words, every text/html part decoded with its tags replaced by spaces; runs of blanks are squeezed.
Labels, ids and the order of the lines are kept, so benchmarks/transfer/spam_subsets.py --data OUT draws the same
e-mails into each subset as it does from the raw split. Standard library only.
"""

import argparse
import email
import email.header
import email.policy
import html
import json
import os
import re
import sys

TAG = re.compile(r"<[^>]*>")
STYLE = re.compile(r"<(style|script)\b.*?</\1\s*>", re.S | re.I)
BLANKS = re.compile(r"[ \t\r\f\v]+")
LINES = re.compile(r"\n\s*\n\s*")


def part_text(part):
    payload = part.get_payload(decode=True)
    if payload is None:
        return ""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1", errors="replace")


def html_text(s):
    s = TAG.sub(" ", STYLE.sub(" ", s))
    return html.unescape(s)


def mail_text(raw):
    msg = email.message_from_string(raw, policy=email.policy.compat32)
    plain, htm = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            plain.append(part_text(part))
        elif kind == "text/html":
            htm.append(html_text(part_text(part)))
    body = "\n".join(plain)
    if len(body.split()) < 20 and htm:  # no text part, or a stub beside the HTML one
        body = "\n".join(htm)
    if not body.strip():
        body = raw.split("\n\n", 1)[1] if "\n\n" in raw else raw
    body = LINES.sub("\n\n", BLANKS.sub(" ", body)).strip()

    def header(name):
        value = msg.get(name, "")
        try:
            value = str(email.header.make_header(email.header.decode_header(value)))
        except Exception:  # a malformed encoded word: keep the header as written
            value = str(value)
        return " ".join(value.split())

    return f"Subject: {header('Subject')}\nFrom: {header('From')}\n\n{body}"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(repo, "data", "spam"))
    parser.add_argument("--out", default=os.path.join(repo, "data", "spam-mail"))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    written = []  # (temporary file, target): the three splits replace their targets together, after all are written
    try:
        for split in ("train", "valid", "test"):
            src = os.path.join(args.data, f"{split}.jsonl")
            dst = os.path.join(args.out, f"{split}.jsonl")
            if not os.path.isfile(src):
                sys.exit(f"mail_text: {src} not found (scripts/fetch_spam_assassin.sh writes the split)")
            written.append((dst + ".tmp", dst))
            n = 0
            with open(src, encoding="utf-8") as f, open(dst + ".tmp", "w", encoding="utf-8") as g:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                        row["text"] = mail_text(row["text"])
                    except (ValueError, KeyError, TypeError, AttributeError) as e:
                        sys.exit(f"mail_text: {src}: line {number}: expected a JSON object with a \"text\" string ({e})")
                    g.write(json.dumps(row, ensure_ascii=False) + "\n")
                    n += 1
            print(f"mail_text: {n} e-mails to {dst}", file=sys.stderr)
    except BaseException:
        for tmp, _ in written:  # the previous output, if any, stays as it was
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    for tmp, dst in written:
        os.replace(tmp, dst)

if __name__ == "__main__":
    main()
