#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that eigenformer's C++ tests compare against.

Run with Debian's python3-torch (PyTorch 1.13, CPU):
    /usr/bin/python3 tests/reference/make_fixtures.py [--check] [--no-write] [--fast-path-report]

Outputs (next to this script), all in the safetensors format, written here with struct + json because Debian has
no safetensors package:
  seed_init.safetensors      the seed model's initial state_dict() under its plain names (for the demo's --init)
  seed_model.safetensors     the seed document's MiniTransformerClassifier (post-norm, relu, CLS pooling):
                             init weights, logits, loss, gradients, 5 Adam and 5 AdamW steps
  variant_model.safetensors  pre-norm, gelu, final encoder LayerNorm, learned positions, key padding, mean pooling
  mha.safetensors            nn.MultiheadAttention with key padding / causal masks, and a hand-written
                             scaled-dot-product attention with a fully masked row

--check reads every file back with an independent reader and compares it with the tensors in memory.
--no-write skips writing (with --check: verify that the files on disk match what this torch produces).
--fast-path-report prints how PyTorch's inference fast paths differ from the math used for the fixtures.

Safetensors layout: 8-byte little-endian header length N, then N bytes of JSON header padded with spaces to a
multiple of 8, then the data buffer. The header holds "__metadata__" (string -> string) and, per tensor,
{"dtype", "shape", "data_offsets": [begin, end]} with offsets relative to the buffer start. Tensors are stored
sorted by name with contiguous offsets starting at 0, so the same tensors always give the same bytes.
"""

import argparse
import collections
import hashlib
import json
import os
import struct
import sys
import warnings

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = "tests/reference/make_fixtures.py"
# Files stay under 200 KB, except the seed model: it holds four copies (init, grad, adam.final, adamw.final) of its
# 18,818 float parameters, 4 x 18,818 x 4 bytes = 301 KB, which no F32 layout with those four sets can shrink.
SIZE_BUDGET = {"seed_model.safetensors": 320 * 1024}


# ----------------------------------------------------------------------------------------------------------------
# safetensors writer

_WRITE_DTYPES = {  # torch dtype -> (safetensors dtype, little-endian numpy dtype)
    torch.float32: ("F32", "<f4"),
    torch.float64: ("F64", "<f8"),
    torch.int64: ("I64", "<i8"),
    torch.bool: ("BOOL", "|u1"),  # one byte per element, 0 or 1
}


def tensor_bytes(t):
    """Returns (safetensors dtype, shape list, little-endian bytes) of a CPU tensor."""
    t = t.detach().cpu().contiguous()
    if t.dtype not in _WRITE_DTYPES:
        raise TypeError(f"tensor_bytes: unsupported dtype {t.dtype}")
    name, np_dtype = _WRITE_DTYPES[t.dtype]
    array = t.numpy()
    if t.dtype == torch.bool:
        array = array.astype(np.uint8)
    return name, list(t.shape), np.ascontiguousarray(array.astype(np_dtype, copy=False)).tobytes()


def encode_safetensors(tensors, metadata):
    """Returns the bytes of a safetensors file holding `tensors` (name -> torch.Tensor) and `metadata`."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"encode_safetensors: metadata must map str to str, got {key!r}: {type(value).__name__}")
    header = collections.OrderedDict()
    header["__metadata__"] = collections.OrderedDict(sorted(metadata.items()))
    chunks = []
    offset = 0
    for name in sorted(tensors):
        dtype, shape, data = tensor_bytes(tensors[name])
        header[name] = collections.OrderedDict(
            [("dtype", dtype), ("shape", shape), ("data_offsets", [offset, offset + len(data)])])
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


# ----------------------------------------------------------------------------------------------------------------
# independent reader (used by --check; shares nothing with the writer above)

def read_safetensors(path):
    """Parses a safetensors file strictly; returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 != 0 or 8 + n > len(blob):
        raise ValueError(f"{path}: bad header length {n}")
    raw = blob[8:8 + n]
    if not raw.rstrip(b" ").endswith(b"}"):
        raise ValueError(f"{path}: header is not a JSON object padded with spaces")
    header = json.loads(raw.decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    buffer = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: __metadata__ is not a string -> string map")
    sizes = {"F32": ("<f4", 4), "F64": ("<f8", 8), "I64": ("<i8", 8), "BOOL": ("u1", 1)}
    names = list(header)
    if names != sorted(names):
        raise ValueError(f"{path}: tensor entries are not sorted by name")
    arrays = {}
    expected_begin = 0
    for name in names:
        entry = header[name]
        if list(entry) != ["dtype", "shape", "data_offsets"]:
            raise ValueError(f"{path}: {name}: unexpected keys {list(entry)}")
        np_dtype, width = sizes[entry["dtype"]]
        shape = entry["shape"]
        begin, end = entry["data_offsets"]
        if begin != expected_begin or end - begin != width * int(np.prod(shape, dtype=np.int64)) or end > len(buffer):
            raise ValueError(f"{path}: {name}: offsets [{begin}, {end}] do not follow on or match shape {shape}")
        expected_begin = end
        array = np.frombuffer(buffer[begin:end], dtype=np_dtype).reshape(shape)
        if entry["dtype"] == "BOOL":
            if not np.isin(array, (0, 1)).all():
                raise ValueError(f"{path}: {name}: BOOL bytes other than 0/1")
            array = array.astype(bool)
        arrays[name] = array
    if expected_begin != len(buffer):
        raise ValueError(f"{path}: buffer has {len(buffer)} bytes, tensors cover {expected_begin}")
    return arrays, dict(metadata)


def check_file(path, tensors, metadata):
    """Reads `path` back and compares every tensor and metadata entry with the in-memory ones; returns a summary."""
    arrays, meta = read_safetensors(path)
    if set(arrays) != set(tensors):
        raise AssertionError(f"{path}: names differ: missing {sorted(set(tensors) - set(arrays))}, "
                             f"extra {sorted(set(arrays) - set(tensors))}")
    if meta != metadata:
        raise AssertionError(f"{path}: metadata differs")
    for name, t in tensors.items():
        expected = t.detach().cpu().numpy()
        got = arrays[name]
        if got.shape != expected.shape or got.dtype != expected.dtype:
            raise AssertionError(f"{path}: {name}: got {got.dtype}{got.shape}, expected {expected.dtype}{expected.shape}")
        if not np.array_equal(got, expected) or not np.isfinite(got.astype(np.float64)).all():
            raise AssertionError(f"{path}: {name}: values differ from the in-memory tensor (or are not finite)")
    return len(arrays)


# ----------------------------------------------------------------------------------------------------------------
# models

class MiniTransformerClassifier(nn.Module):
    """The seed document's model, with dropout as an argument (0.0 for the fixtures)."""

    def __init__(self, vocab_size=50, d_model=32, nhead=4, num_layers=2, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        encoder_layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, dim_feedforward=64,
                                                   dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(encoder_layer, num_layers=num_layers)
        self.classifier = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, 2))

    def forward(self, input_ids):
        x = self.embedding(input_ids)          # (B, T, C)
        encoded = self.encoder(x)              # (B, T, C)
        return self.classifier(encoded[:, 0])  # CLS = position 0 -> (B, 2)


class VariantClassifier(nn.Module):
    """Pre-norm gelu encoder with a final LayerNorm, learned positions, key padding and masked mean pooling."""

    def __init__(self, vocab_size=37, d_model=16, nhead=2, num_layers=2, dim_feedforward=24, dropout=0.0,
                 max_len=8, num_classes=3):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Embedding(max_len, d_model)
        encoder_layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward,
                                                   dropout=dropout, activation="gelu", batch_first=True,
                                                   norm_first=True)
        # enable_nested_tensor=False: never convert to a nested tensor (that path zeroes padded positions).
        self.encoder = nn.TransformerEncoder(encoder_layer, num_layers=num_layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, num_classes))

    def forward(self, input_ids, padding_mask):
        T = input_ids.shape[1]
        x = self.embedding(input_ids) + self.pos_embedding(torch.arange(T))       # (B, T, C)
        encoded = self.encoder(x, src_key_padding_mask=padding_mask)              # (B, T, C)
        keep = (~padding_mask).unsqueeze(-1).to(encoded.dtype)                    # (B, T, 1), 1 = real token
        pooled = (encoded * keep).sum(dim=1) / keep.sum(dim=1)                    # (B, C) mean over real tokens
        return self.classifier(pooled)


# ----------------------------------------------------------------------------------------------------------------
# training fixtures

def train_steps(model, init_state, make_optimizer, forward, labels, steps=5):
    """From `init_state`, runs the seed loop (forward, loss, zero_grad, backward, step); returns losses, accs."""
    model.load_state_dict(init_state)
    for p in model.parameters():
        p.grad = None
    optimizer = make_optimizer(model.parameters())
    criterion = nn.CrossEntropyLoss()
    losses, accs = [], []
    for _ in range(steps):
        logits = forward()
        loss = criterion(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach().clone())
        accs.append((logits.argmax(dim=-1) == labels).float().mean().item())
    return torch.stack(losses), accs


def model_fixture(model, forward, inputs, labels, config):
    """Collects init./grad./adam./adamw. tensors for `model`; `forward()` runs it on the fixed inputs."""
    model.train()  # dropout is 0.0, so train() only matters for choosing PyTorch's standard (non fast-path) math
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    names = [name for name, _ in model.named_parameters()]
    if sorted(names) != sorted(init_state):
        raise AssertionError("model has buffers or tied parameters; the fixture layout assumes neither")

    tensors = dict(inputs)
    tensors["labels"] = labels
    for name in names:
        tensors[f"init.{name}"] = init_state[name]

    logits = forward()
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    tensors["logits"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    for name, p in model.named_parameters():
        tensors[f"grad.{name}"] = p.grad.detach().clone()

    runs = {
        "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
        "adamw": lambda params: torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01),
    }
    accs_by_run = {}
    for run, make_optimizer in runs.items():
        losses, accs = train_steps(model, init_state, make_optimizer, forward, labels)
        if not torch.equal(losses[0], loss.detach()):
            raise AssertionError(f"{run}: first loss {losses[0].item()} differs from the fixture loss {loss.item()}")
        tensors[f"{run}.losses"] = losses
        for name, p in model.named_parameters():
            tensors[f"{run}.final.{name}"] = p.detach().clone()
        accs_by_run[run] = accs

    metadata = {"config": json.dumps(config, sort_keys=True, separators=(",", ":")), "generator": GENERATOR,
                "torch_version": torch.__version__}
    return tensors, metadata, accs_by_run


def seed_fixture():
    torch.manual_seed(0)
    model = MiniTransformerClassifier(dropout=0.0)
    input_ids = torch.tensor([[1, 5, 2, 9], [3, 7, 8, 0]], dtype=torch.int64)  # (B=2, T=4)
    labels = torch.tensor([1, 0], dtype=torch.int64)
    config = {"vocab_size": 50, "d_model": 32, "nhead": 4, "num_layers": 2, "dim_feedforward": 64,
              "dropout": 0.0, "activation": "relu", "norm_first": False, "pooling": "cls",
              "positional": "none", "max_len": 0, "num_classes": 2}
    tensors, metadata, accs = model_fixture(model, lambda: model(input_ids), {"input_ids": input_ids}, labels,
                                            config)
    lines = [f"epoch {k} | loss {loss:.4f} | acc {acc:.3f}"
             for k, (loss, acc) in enumerate(zip(tensors["adam.losses"].tolist(), accs["adam"]), start=1)]
    metadata["seed_demo_losses"] = "\n".join(lines)
    return tensors, metadata, lines


VARIANT_CONFIG = {"vocab_size": 37, "d_model": 16, "nhead": 2, "num_layers": 2, "dim_feedforward": 24,
                  "dropout": 0.0, "activation": "gelu", "norm_first": True, "pooling": "mean",
                  "positional": "learned", "max_len": 8, "num_classes": 3}


def variant_inputs():
    input_ids = torch.tensor([[4, 11, 23, 7, 36, 2],    # length 6
                              [9, 30, 17, 5, 0, 0],     # length 4
                              [14, 3, 0, 0, 0, 0]],     # length 2; pad id 0 only at the ends
                             dtype=torch.int64)         # (B=3, T=6)
    labels = torch.tensor([2, 0, 1], dtype=torch.int64)
    return input_ids, input_ids == 0, labels


def variant_model():
    c = VARIANT_CONFIG
    torch.manual_seed(0)
    return VariantClassifier(vocab_size=c["vocab_size"], d_model=c["d_model"], nhead=c["nhead"],
                             num_layers=c["num_layers"], dim_feedforward=c["dim_feedforward"],
                             dropout=c["dropout"], max_len=c["max_len"], num_classes=c["num_classes"])


def variant_fixture():
    model = variant_model()
    input_ids, padding_mask, labels = variant_inputs()
    tensors, metadata, _ = model_fixture(model, lambda: model(input_ids, padding_mask),
                                         {"input_ids": input_ids, "padding_mask": padding_mask}, labels,
                                         VARIANT_CONFIG)
    return tensors, metadata


# ----------------------------------------------------------------------------------------------------------------
# attention fixtures

def mha_case(mha, x, upstream, prefix, **kwargs):
    """Runs mha(x, x, x, **kwargs) in training mode with grad enabled (the standard math, not the fast path)."""
    for p in mha.parameters():
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    out, weights = mha(x, x, x, need_weights=True, average_attn_weights=True, **kwargs)
    (out * upstream).sum().backward()
    return {
        f"{prefix}.output": out.detach().clone(),             # (B, T, C)
        f"{prefix}.attn_weights": weights.detach().clone(),   # (B, T, T), averaged over heads
        f"{prefix}.grad.x": x.grad.detach().clone(),
        f"{prefix}.grad.in_proj_weight": mha.in_proj_weight.grad.detach().clone(),
        f"{prefix}.grad.in_proj_bias": mha.in_proj_bias.grad.detach().clone(),
        f"{prefix}.grad.out_proj.weight": mha.out_proj.weight.grad.detach().clone(),
        f"{prefix}.grad.out_proj.bias": mha.out_proj.bias.grad.detach().clone(),
    }


def masked_attention(q, k, v, key_padding_mask):
    """softmax(q k^T / sqrt(D)) v with keys masked where key_padding_mask is True; returns (output, probs).

    PyTorch's masked_fill(-inf) + softmax gives NaN for a query whose keys are all masked. The reference here
    defines such a row as contributing nothing: probs = 0 and output = 0, with the gradients of that definition
    (zero for the row's q, no contribution to k and v). No -inf enters the graph, so every gradient is finite:
    masked scores are replaced by 0 before exp and the exp is multiplied by 0, and an empty row divides by 1.
    """
    keep = (~key_padding_mask)[:, None, None, :]                                    # (B, 1, 1, Tk)
    scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)                         # (B, H, Tq, Tk)
    row_max = scores.masked_fill(~keep, float("-inf")).amax(dim=-1, keepdim=True)   # shift cancels in softmax
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    e = torch.exp((scores - row_max).masked_fill(~keep, 0.0)) * keep.to(scores.dtype)
    denom = e.sum(dim=-1, keepdim=True)
    denom = torch.where(denom > 0, denom, torch.ones_like(denom))                  # empty row: 0 / 1 = 0
    probs = e / denom
    return probs @ v, probs                                                         # (B, H, Tq, Dv), probs


def mha_fixture():
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(embed_dim=12, num_heads=3, dropout=0.0, batch_first=True)
    mha.train()
    x = torch.randn(2, 5, 12)                          # (B, T, C)
    upstream = torch.randn(2, 5, 12)                   # d loss / d output
    key_padding_mask = torch.zeros(2, 5, dtype=torch.bool)
    key_padding_mask[1, 3:] = True                     # second sequence: last 2 positions are padding
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)  # True above the diagonal = not allowed

    tensors = {
        "in_proj_weight": mha.in_proj_weight.detach().clone(),   # (3C, C): rows q, k, v
        "in_proj_bias": mha.in_proj_bias.detach().clone(),
        "out_proj.weight": mha.out_proj.weight.detach().clone(),
        "out_proj.bias": mha.out_proj.bias.detach().clone(),
        "x": x, "key_padding_mask": key_padding_mask, "upstream": upstream,
    }
    tensors.update(mha_case(mha, x, upstream, "padded", key_padding_mask=key_padding_mask))
    tensors.update(mha_case(mha, x, upstream, "causal", attn_mask=causal))

    q = torch.randn(2, 3, 4, 5)   # (B, H, Tq, D)
    k = torch.randn(2, 3, 6, 5)   # (B, H, Tk, D)
    v = torch.randn(2, 3, 6, 7)   # (B, H, Tk, Dv)
    sdpa_mask = torch.tensor([[False, False, False, False, True, True],   # 4 valid keys
                              [True, True, True, True, True, True]])      # every key masked: empty rows
    sdpa_upstream = torch.randn(2, 3, 4, 7)
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
    output, probs = masked_attention(qg, kg, vg, sdpa_mask)
    (output * sdpa_upstream).sum().backward()
    tensors.update({
        "sdpa.q": q, "sdpa.k": k, "sdpa.v": v, "sdpa.key_padding_mask": sdpa_mask,
        "sdpa.output": output.detach().clone(), "sdpa.probs": probs.detach().clone(),
        "sdpa.upstream": sdpa_upstream,
        "sdpa.grad.q": qg.grad.detach().clone(), "sdpa.grad.k": kg.grad.detach().clone(),
        "sdpa.grad.v": vg.grad.detach().clone(),
    })

    # The valid rows must agree with PyTorch's own masked softmax (which is NaN only on the empty rows).
    with torch.no_grad():
        scores = (q @ k.transpose(-2, -1) / 5 ** 0.5).masked_fill(sdpa_mask[:, None, None, :], float("-inf"))
        torch_out = torch.softmax(scores, dim=-1) @ v
        if not torch.allclose(torch_out[0], output[0], rtol=1e-5, atol=1e-6) or output[1].abs().max() != 0:
            raise AssertionError("sdpa: manual masked attention disagrees with torch.softmax on valid rows")
    # The MHA cases must agree with this manual attention (a cross-check of the fixture, not of PyTorch).
    check_mha_against_manual(mha, x, key_padding_mask, tensors["padded.output"])

    config = {"embed_dim": 12, "num_heads": 3, "dropout": 0.0, "batch_first": True, "bias": True}
    metadata = {"config": json.dumps(config, sort_keys=True, separators=(",", ":")), "generator": GENERATOR,
                "torch_version": torch.__version__}
    return tensors, metadata


def check_mha_against_manual(mha, x, key_padding_mask, expected):
    with torch.no_grad():
        B, T, C = x.shape
        H = mha.num_heads
        qkv = x @ mha.in_proj_weight.T + mha.in_proj_bias                      # (B, T, 3C)
        q, k, v = (t.reshape(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=-1))
        heads, _ = masked_attention(q, k, v, key_padding_mask)                 # (B, H, T, D)
        out = heads.transpose(1, 2).reshape(B, T, C) @ mha.out_proj.weight.T + mha.out_proj.bias
        if not torch.allclose(out, expected, rtol=1e-5, atol=1e-6):
            raise AssertionError(f"mha: manual attention differs by {(out - expected).abs().max().item()}")


# ----------------------------------------------------------------------------------------------------------------
# fast-path report (informational; nothing here goes into the fixtures)

def fast_path_report():
    print("fast-path report (eval mode + no_grad, where PyTorch may use fused kernels / nested tensors):")
    input_ids, padding_mask, _ = variant_inputs()
    valid = ~padding_mask

    model = variant_model().eval()
    with torch.no_grad():
        slow = model(input_ids, padding_mask)
        model.train()
        train = model(input_ids, padding_mask)
    print(f"  variant (norm_first, so never nested): eval vs train logits max |diff| "
          f"{(slow - train).abs().max().item():.3e}")

    # A post-norm copy of the variant with enable_nested_tensor=True takes the nested-tensor path in eval mode.
    for nested in (False, True):
        torch.manual_seed(0)
        layer = nn.TransformerEncoderLayer(16, 2, 24, dropout=0.0, activation="gelu", batch_first=True)
        encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested).eval()
        src = torch.randn(3, 6, 16)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "nested tensors are in prototype stage"
            out = encoder(src, src_key_padding_mask=padding_mask)
            encoder.train()
            ref = encoder(src, src_key_padding_mask=padding_mask)
        print(f"  post-norm encoder, enable_nested_tensor={nested}: eval vs train max |diff| on real tokens "
              f"{(out - ref)[valid].abs().max().item():.3e}, on padded positions "
              f"{(out - ref)[padding_mask].abs().max().item():.3e} (eval output there: "
              f"max |out| {out[padding_mask].abs().max().item():.3e})")

    torch.manual_seed(0)
    seed = MiniTransformerClassifier(dropout=0.0)
    ids = torch.tensor([[1, 5, 2, 9], [3, 7, 8, 0]])
    with torch.no_grad():
        train = seed(ids)
        seed.eval()
        fast = seed(ids)
    print(f"  seed model (no padding): eval (fused encoder layer) vs train logits max |diff| "
          f"{(fast - train).abs().max().item():.3e}")

    # The fixture's MHA has 3 heads, and PyTorch 1.13 takes no fast path for an odd head count: use 2 heads here.
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(embed_dim=12, num_heads=2, dropout=0.0, batch_first=True)
    x = torch.randn(2, 5, 12)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    with torch.no_grad():
        mha.train()
        ref, _ = mha(x, x, x, key_padding_mask=mask, need_weights=False)
        mha.eval()
        fast, _ = mha(x, x, x, key_padding_mask=mask, need_weights=False)
    print(f"  MHA (2 heads) padded, eval+no_grad (native MHA) vs train: max |diff| on real rows "
          f"{(fast - ref)[~mask].abs().max().item():.3e}, on padded query rows "
          f"{(fast - ref)[mask].abs().max().item():.3e}")


# ----------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="read every file back and compare with memory")
    parser.add_argument("--no-write", action="store_true", help="do not write the files")
    parser.add_argument("--fast-path-report", action="store_true", help="print fast-path vs standard-path diffs")
    parser.add_argument("--out-dir", default=HERE, help="directory for the .safetensors files (default: here)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    seed_tensors, seed_meta, demo_lines = seed_fixture()
    variant_tensors, variant_meta = variant_fixture()
    mha_tensors, mha_meta = mha_fixture()
    # The seed model's initial state_dict() under its plain names: what a user exports from PyTorch and passes to
    # the C++ demo with --init.
    seed_init = {name[len("init."):]: t for name, t in seed_tensors.items() if name.startswith("init.")}
    fixtures = [
        ("seed_model.safetensors", seed_tensors, seed_meta),
        ("seed_init.safetensors", seed_init, {"config": seed_meta["config"]}),
        ("variant_model.safetensors", variant_tensors, variant_meta),
        ("mha.safetensors", mha_tensors, mha_meta),
    ]

    print("seed demo (dropout 0.0, Adam lr 1e-3, from the fixture's init):")
    for line in demo_lines:
        print("  " + line)

    for file_name, tensors, metadata in fixtures:
        path = os.path.join(args.out_dir, file_name)
        blob = encode_safetensors(tensors, metadata)
        if not args.no_write:
            with open(path, "wb") as f:
                f.write(blob)
        line = f"{file_name}: {len(tensors)} tensors, {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}"
        if args.check:
            count = check_file(path, tensors, metadata)
            line += f", check ok ({count} tensors read back)"
        print(line)
        budget = SIZE_BUDGET.get(file_name, 200 * 1024)
        if len(blob) >= budget:
            print(f"error: {file_name} is {len(blob)} bytes, over its {budget // 1024} KB budget", file=sys.stderr)
            return 1

    if args.fast_path_report:
        fast_path_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
