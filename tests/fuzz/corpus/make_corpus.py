#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz/safetensors_fuzz.cpp: a few tiny valid safetensors files covering every
dtype eigenformer reads, metadata, rank-0 and zero-size tensors. Rerun with
`python3 tests/fuzz/corpus/make_corpus.py`; the layout follows the format (8-byte little-endian header length,
compact JSON padded with spaces to a multiple of 8, data tensors packed in header order)."""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")


def pack(fmt, values):
    return struct.pack("<" + fmt * len(values), *values)


def write(name, tensors, metadata=None):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for key, dtype, shape, raw in tensors:
        header[key] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


os.makedirs(HERE, exist_ok=True)
write("empty.safetensors", [])
write("metadata.safetensors", [], {"format": "pt", "note": "h\u00e9llo"})
write("model.safetensors", [
    ("weight", "F32", [2, 2], pack("f", [1.0, -2.5, 0.0, 3.0])),
    ("bias", "F64", [2], pack("d", [0.5, -1e-300])),
    ("ids", "I64", [1, 3], pack("q", [101, -1, 2**63 - 1])),
    ("mask", "BOOL", [3], bytes([1, 0, 1])),
], {"format": "pt"})
write("half.safetensors", [
    ("h", "F16", [6], pack("H", [0x3c00, 0x0001, 0x03ff, 0x7c00, 0xfe00, 0x8000])),
    ("b", "BF16", [2, 2], pack("H", [0x4049, 0x0001, 0xff80, 0x7fc0])),
])
write("ints.safetensors", [
    ("i32", "I32", [2], pack("i", [-2**31, 7])),
    ("u8", "U8", [4], bytes([0, 1, 128, 255])),
    ("scalar", "F32", [], pack("f", [42.5])),
    ("empty", "F32", [0, 3], b""),
])
print("wrote", sorted(os.listdir(HERE)))
