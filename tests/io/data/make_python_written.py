#!/usr/bin/env python3
"""Writes python_written.safetensors, the interop fixture of tests/io/safetensors_test.cpp.

The tensors come from PyTorch and their bytes are PyTorch's own (little-endian, row-major); the file layout is
written by hand with struct + json following the safetensors format (Debian has no safetensors package): tensors
ordered by decreasing dtype alignment then name, compact JSON, header padded with spaces to a multiple of 8 bytes.
Run it from anywhere with `/usr/bin/python3 tests/io/data/make_python_written.py`; --print shows the values the
C++ test expects (as float64), to paste there.
"""
import json
import os
import struct
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "python_written.safetensors")

inf, nan = float("inf"), float("nan")
TENSORS = {
    "encoder.weight": torch.tensor([[0.1, -2.5, 3.0], [1e-3, 65504.0, -0.0]], dtype=torch.float32),
    "encoder.bias": torch.tensor([1.0 / 3.0, -1e-300, 2.5], dtype=torch.float64),
    # 1, -2, max, min normal, min subnormal, max subnormal, a rounded value, -0, inf, -inf, nan
    "half": torch.tensor([1.0, -2.0, 65504.0, 2.0**-14, 2.0**-24, 2.0**-14 - 2.0**-24, 0.1, -0.0, inf, -inf, nan],
                         dtype=torch.float16),
    # pi rounded, a subnormal, the largest finite, -inf
    "bf16": torch.tensor([[3.14159, -1e-40], [3.3895313892515355e38, -inf]], dtype=torch.bfloat16),
    "ids": torch.tensor([[101, 2023, -1], [0, 2**63 - 1, -2**63]], dtype=torch.int64),
    "ids32": torch.tensor([1, -2, 2**31 - 1, -2**31], dtype=torch.int32),
    "bytes": torch.tensor([0, 7, 255], dtype=torch.uint8),
    "mask": torch.tensor([[True, False], [False, True]]),
    "scalar": torch.tensor(42.5, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
}
METADATA = {"format": "pt", "producer": "make_python_written.py"}

# The reference serializer's dtype order (safetensors' Dtype enum), largest alignment first.
DTYPES = {torch.bool: "BOOL", torch.uint8: "U8", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32",
          torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
RANK = {name: i for i, name in enumerate(DTYPES.values())}


def tensor_bytes(t):
    assert sys.byteorder == "little"
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def main():
    order = sorted(TENSORS, key=lambda n: (-RANK[DTYPES[TENSORS[n].dtype]], n))
    header, data, offset = {"__metadata__": METADATA}, b"", 0
    for name in order:
        t = TENSORS[name]
        raw = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(OUT, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
    print(f"wrote {OUT} ({8 + len(text) + len(data)} bytes)")
    if "--print" in sys.argv:
        for name in order:
            t = TENSORS[name]
            values = t.double().reshape(-1).tolist() if t.is_floating_point() else t.reshape(-1).tolist()
            print(name, DTYPES[t.dtype], list(t.shape), [repr(v) for v in values])


if __name__ == "__main__":
    main()
