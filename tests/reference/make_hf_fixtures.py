#!/usr/bin/python3
"""Writes the Hugging Face model folders and expected outputs that eigenformer's BERT and GPT-2 tests compare
against, using the PyTorch re-implementations hf_bert.py, hf_gpt2.py and hf_folder.py (transformers 4.46 semantics).

Run from the repository root with Debian's python3-torch (PyTorch 1.13, CPU):
    /usr/bin/python3 tests/reference/make_hf_fixtures.py [--check] [--no-write]

Outputs, under tests/reference/hf/ (tiny random weights, every file small):
  bert-mlm/      BertForMaskedLM as save_pretrained writes it (no pooler, no tied decoder.weight / decoder.bias)
  bert-cls/      BertForSequenceClassification, 3 labels with id2label / label2id
  bert-legacy/   BertForPreTraining keys as old transformers wrote them: LayerNorm.gamma / .beta, the
                 bert.embeddings.position_ids buffer (I64), pooler, cls.seq_relationship, the tied decoder.weight
  bert-bare/     a BertModel checkpoint: keys without the "bert." prefix
  bert-f16/ bert-bf16/ bert-sharded/   bert-mlm in F16, in BF16, and in two shards with an index
  gpt2/          GPT2LMHeadModel as save_pretrained writes it ("transformer." prefix, no lm_head.weight)
  gpt2-original/ the OpenAI-converted layout: no prefix, h.N.attn.bias and h.N.attn.masked_bias buffers
  gpt2-lm-head/  with a separate lm_head.weight equal to transformer.wte.weight
  gpt2-f16/ gpt2-sharded/
  bert_expected.safetensors, gpt2_expected.safetensors   inputs and float64 outputs, losses and gradients

Every BERT folder holds the same weight values, and so does every GPT-2 folder: the values are rounded so that F32,
F16 and BF16 hold them exactly, so one set of expected outputs serves every variant. Expected outputs are computed
in float64 (F32 weights converted to double, eval mode, dropout off).

--check reads every written file back with an independent reader and compares it with memory, reloads every folder
into the reference models and compares their outputs, and cross-checks the reference models against
torch.nn.TransformerEncoderLayer. --no-write skips writing (with --check: verify the files on disk).
"""

import argparse
import collections
import copy
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hf_bert  # noqa: E402
import hf_folder  # noqa: E402
import hf_gpt2  # noqa: E402

GENERATOR = "tests/reference/make_hf_fixtures.py"
TOTAL_BUDGET = 1536 * 1024  # all of tests/reference/hf

BERT_SIZES = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64)
GPT2_SIZES = dict(vocab_size=101, n_positions=64, n_embd=24, n_layer=2, n_head=4)  # n_inner None: 4 * n_embd
GPT2_EOS = GPT2_SIZES["vocab_size"] - 1  # <|endoftext|>, also bos and the padding id
CLS_LABELS = {0: "negative", 1: "neutral", 2: "positive"}
GREEDY_NEW_TOKENS = 50
GREEDY_MIN_MARGIN = 1e-3


# ----------------------------------------------------------------------------------------------------------------
# vocabularies

def bert_vocab():
    """[PAD] [UNK] [CLS] [SEP] [MASK], punctuation, whole words, then ## word pieces: BERT_SIZES["vocab_size"]."""
    words = ("the a cat dog sat on mat ran to park and then it was fun he she they we you is are in of big small "
             "red blue green house tree bird sang song sun moon day night good bad happy sad play read book walk "
             "talk eat food water").split()
    pieces = ["##" + p for p in "ed ing er ly est en es ful less ness ish able".split()]
    pieces += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'-") + words + pieces
    assert len(tokens) == len(set(tokens)) == BERT_SIZES["vocab_size"]
    return tokens


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (space -> "Ġ"), in GPT-2's order of ids."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return collections.OrderedDict(zip(bs, [chr(c) for c in cs]))


def gpt2_bpe():
    """A tiny byte-level BPE trained on a fixed text: (vocab dict token -> id, list of merges), vocab size
    GPT2_SIZES["vocab_size"] with <|endoftext|> last. Ids: the base characters in GPT-2's byte order, then one per
    merge in merge order (as GPT-2's vocab is built)."""
    text = ("the cat sat on the mat and then the dog ran to the park . she read a book in the sun and he sang a "
            "song at night . they walk and talk , we eat good food and drink water . the big red bird sang in the "
            "green tree . it was a happy day , then a sad night . you play in the house and the small blue moon "
            "is good .")
    table = bytes_to_unicode()
    words = []
    for k, word in enumerate(text.split(" ")):
        raw = (" " if k else "") + word
        words.append("".join(table[b] for b in raw.encode("utf-8")))
    counts = collections.Counter(words)
    order = {ch: i for i, ch in enumerate(table.values())}
    vocab = sorted(set("".join(counts)), key=order.__getitem__)
    target = GPT2_SIZES["vocab_size"] - 1
    seqs = {w: list(w) for w in counts}
    merges = []
    while len(vocab) < target:
        pairs = collections.Counter()
        for w, c in counts.items():
            for a, b in zip(seqs[w], seqs[w][1:]):
                pairs[(a, b)] += c
        candidates = sorted((p for p in pairs if p[0] + p[1] not in vocab), key=lambda p: (-pairs[p], p))
        if not candidates:
            raise RuntimeError("gpt2_bpe: the text has too few pairs for the vocabulary size")
        a, b = candidates[0]
        merges.append((a, b))
        vocab.append(a + b)
        for w in seqs:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    vocab.append("<|endoftext|>")
    return {token: i for i, token in enumerate(vocab)}, merges


def tokenizer_files_bert():
    return {"vocab.txt": "".join(t + "\n" for t in bert_vocab()).encode("utf-8")}


def tokenizer_files_gpt2():
    vocab, merges = gpt2_bpe()
    return {"vocab.json": (json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"),
            "merges.txt": ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode("utf-8")}


# ----------------------------------------------------------------------------------------------------------------
# weights

def randomize_(model, seed, stds):
    """Fills every parameter from N(0, 1) draws of a seeded generator: LayerNorm weight 1 + 0.1 z, LayerNorm and
    other biases 0.1 z, weights stds[kind] * z (kind: the module's class name). Tied parameters are filled once."""
    generator = torch.Generator().manual_seed(seed)
    seen = set()

    def fill(p, scale, offset=0.0):
        if id(p) in seen:
            return
        seen.add(id(p))
        with torch.no_grad():
            p.copy_(offset + scale * torch.randn(p.shape, generator=generator, dtype=torch.float32))

    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm):
            fill(module.weight, 0.1, 1.0)
            fill(module.bias, 0.1)
        elif isinstance(module, (nn.Linear, nn.Embedding, hf_gpt2.Conv1D)):
            if id(module.weight) not in seen:  # a tied output layer is already filled
                fill(module.weight, stds["wpe" if name.endswith("wpe") else type(module).__name__])
            if getattr(module, "bias", None) is not None:
                fill(module.bias, 0.1)
    for p in model.parameters():
        fill(p, 0.1)


def round_to_half_precisions_(model):
    """Rounds every parameter to a value that F32, F16 and BF16 all hold exactly: BF16 rounding, magnitudes below
    2^-17 (where F16 subnormals lose BF16's bits) set to 0."""
    with torch.no_grad():
        for p in model.parameters():
            r = p.to(torch.bfloat16).to(torch.float32)
            r[r.abs() < 2.0 ** -17] = 0.0
            p.copy_(r)
            for dtype in (torch.float16, torch.bfloat16):
                if not torch.equal(p.to(dtype).to(torch.float32), p):
                    raise AssertionError(f"round_to_half_precisions_: a value is not exact in {dtype}")


# ----------------------------------------------------------------------------------------------------------------
# BERT

def bert_inputs():
    v = {t: i for i, t in enumerate(bert_vocab())}
    rows = [["[CLS]", "the", "cat", "sat", "[SEP]", "it", "was", "fun", "[SEP]"],         # pair, no padding
            ["[CLS]", "a", "dog", "ran", "[SEP]", "he", "sang", "[SEP]", "[PAD]"],        # pair, 1 padding
            ["[CLS]", "the", "big", "red", "house", "[SEP]", "[PAD]", "[PAD]", "[PAD]"]]  # single, 3 padding
    types = [[0, 0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1, 1, 1, 0], [0] * 9]
    # MLM: (row, position, input token): [MASK], a kept token, and a random replacement, as BERT's 80/10/10.
    masked = [(0, 2, "[MASK]"), (0, 6, "was"), (1, 3, "[MASK]"), (1, 5, "moon"), (2, 4, "[MASK]")]
    input_ids = torch.tensor([[v[t] for t in row] for row in rows], dtype=torch.int64)   # (B=3, T=9)
    mlm_labels = torch.full_like(input_ids, -100)
    for r, t, token in masked:
        mlm_labels[r, t] = input_ids[r, t]
        input_ids[r, t] = v[token]
    attention_mask = (torch.tensor([[t != "[PAD]" for t in row] for row in rows])).to(torch.int64)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "token_type_ids": torch.tensor(types, dtype=torch.int64),
            "cls_labels": torch.tensor([2, 0, 1], dtype=torch.int64), "mlm_labels": mlm_labels}


def bert_models():
    """(pretraining, mlm, cls, bare) in float32, all holding one set of weights."""
    config = hf_bert.BertConfig(**BERT_SIZES)
    torch.manual_seed(0)
    pretraining = hf_bert.BertForPreTraining(copy.deepcopy(config))
    randomize_(pretraining, 1, {"Embedding": 0.5, "Linear": 0.2})
    round_to_half_precisions_(pretraining)
    source = pretraining.state_dict()

    mlm = hf_bert.BertForMaskedLM(copy.deepcopy(config))
    mlm.load_state_dict({k: v for k, v in source.items() if k in mlm.state_dict()}, strict=True)
    cls = hf_bert.BertForSequenceClassification(hf_bert.BertConfig(**BERT_SIZES, id2label=CLS_LABELS,
                                                                   label2id={v: k for k, v in CLS_LABELS.items()}))
    classifier = nn.Linear(BERT_SIZES["hidden_size"], len(CLS_LABELS))
    randomize_(classifier, 2, {"Linear": 0.3})
    round_to_half_precisions_(classifier)
    state = {k: v for k, v in source.items() if k.startswith("bert.")}
    state.update({"classifier." + k: v for k, v in classifier.state_dict().items()})
    cls.load_state_dict(state, strict=True)
    bare = hf_bert.BertModel(copy.deepcopy(config))
    bare.load_state_dict({k[len("bert."):]: v for k, v in source.items() if k.startswith("bert.")}, strict=True)
    return pretraining, mlm, cls, bare


def bert_legacy_files(pretraining):
    """BertForPreTraining as transformers 3.x / early 4.x left it (and the original Google conversion named it):
    LayerNorm gamma / beta, the position_ids buffer, the tied decoder.weight saved as its own tensor, config.json
    of that era (architectures BertForMaskedLM, as bert-base-uncased's says)."""
    tensors = collections.OrderedDict()
    for key, value in pretraining.state_dict().items():
        if key == "cls.predictions.decoder.bias":
            continue  # not among the original conversion's keys
        if ".LayerNorm." in key:
            key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        tensors[key] = value.detach().clone()
    tensors["bert.embeddings.position_ids"] = torch.arange(BERT_SIZES["max_position_embeddings"])[None, :]
    config = dict(BERT_SIZES, architectures=["BertForMaskedLM"], attention_probs_dropout_prob=0.1,
                  gradient_checkpointing=False, hidden_act="gelu", hidden_dropout_prob=0.1, initializer_range=0.02,
                  layer_norm_eps=1e-12, model_type="bert", pad_token_id=0, position_embedding_type="absolute",
                  transformers_version="4.6.0.dev0", type_vocab_size=2, use_cache=True)
    files = {hf_folder.CONFIG_NAME: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")}
    files.update(hf_folder.weight_files(tensors))
    return files


def as_double(model):
    model = copy.deepcopy(model).double().eval()
    model.tie_weights()
    return model


def bert_expected(mlm, cls, inputs):
    tensors = collections.OrderedDict((k, v.clone()) for k, v in inputs.items())
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]

    mlm64 = as_double(mlm)
    out = mlm64(ids, attention_mask=mask, token_type_ids=types, labels=inputs["mlm_labels"])
    out.loss.backward()
    for k, h in enumerate(out.hidden_states):
        tensors[f"bert.hidden_states.{k}"] = h.detach().clone()
    tensors["mlm.logits"] = out.logits.detach().clone()
    tensors["mlm.loss"] = out.loss.detach().reshape(1).clone()
    for name, p in mlm64.named_parameters():  # the tied decoder weight is bert.embeddings.word_embeddings.weight
        tensors[f"mlm.grad.{name}"] = p.grad.detach().clone()

    cls64 = as_double(cls)
    out = cls64(ids, attention_mask=mask, token_type_ids=types, labels=inputs["cls_labels"])
    out.loss.backward()
    tensors["bert.pooler_output"] = out.pooler_output.detach().clone()
    tensors["cls.logits"] = out.logits.detach().clone()
    tensors["cls.loss"] = out.loss.detach().reshape(1).clone()
    for name, p in cls64.named_parameters():
        tensors[f"cls.grad.{name}"] = p.grad.detach().clone()
    return tensors, mlm64, cls64


# ----------------------------------------------------------------------------------------------------------------
# GPT-2

# Position embeddings as large as the token embeddings keep greedy decoding off short loops.
GPT2_STDS = {"Embedding": 0.4, "wpe": 0.5, "Conv1D": 0.3}


def gpt2_model(seed):
    config = hf_gpt2.GPT2Config(**GPT2_SIZES, bos_token_id=GPT2_EOS, eos_token_id=GPT2_EOS)
    torch.manual_seed(0)
    model = hf_gpt2.GPT2LMHeadModel(config)
    randomize_(model, seed, GPT2_STDS)
    round_to_half_precisions_(model)
    return model


def gpt2_inputs():
    generator = torch.Generator().manual_seed(7)
    B, T = 3, 10
    ids = torch.randint(0, GPT2_EOS, (B, T), generator=generator)  # never <|endoftext|>
    lengths = [10, 7, 4]                                           # left padding: 0, 3, 6 positions
    attention_mask = torch.zeros(B, T, dtype=torch.int64)
    for r, n in enumerate(lengths):
        attention_mask[r, T - n:] = 1
    input_ids = ids.masked_fill(attention_mask == 0, GPT2_EOS)       # padded with eos, as generate pads GPT-2
    prompt = torch.randint(0, GPT2_EOS, (1, 5), generator=generator)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "position_ids": hf_gpt2.generation_position_ids(attention_mask),
            "labels": input_ids.masked_fill(attention_mask == 0, -100), "greedy.prompt": prompt}


def greedy_check(model64, prompt):
    """Greedy decoding with the cache; returns (sequence, smallest top-1 - top-2 margin, max |step - full| of the
    logits against one forward over the whole sequence)."""
    sequence, step_logits = hf_gpt2.greedy_generate(model64, prompt, max_new_tokens=GREEDY_NEW_TOKENS,
                                                    eos_token_id=GPT2_EOS)
    steps = torch.cat(step_logits)                                        # (new, V)
    top2 = steps.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    with torch.no_grad():
        full = model64(sequence[:, :-1]).logits[0, prompt.shape[1] - 1:]   # (new, V)
    return sequence, margin, (full - steps).abs().max().item()


def gpt2_select(prompt):
    """The first weight seed whose greedy continuation has every margin >= GREEDY_MIN_MARGIN (so that a float32
    implementation takes the same path), no eos, at least 10 distinct tokens and none more than 20 times."""
    for seed in range(100):
        model = gpt2_model(seed)
        sequence, margin, cache_diff = greedy_check(as_double(model), prompt)
        generated = sequence[0, prompt.shape[1]:].tolist()
        if (len(generated) == GREEDY_NEW_TOKENS and margin >= GREEDY_MIN_MARGIN and GPT2_EOS not in generated
                and len(set(generated)) >= 10 and max(generated.count(t) for t in generated) <= 20):
            return seed, model, sequence, margin, cache_diff
    raise RuntimeError("gpt2_select: no seed below 100 gives clear greedy margins")


def gpt2_expected(model, inputs, sequence, margin):
    tensors = collections.OrderedDict((k, v.clone()) for k, v in inputs.items())
    model64 = as_double(model)
    out = model64(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                  position_ids=inputs["position_ids"], labels=inputs["labels"])
    out.loss.backward()
    tensors["logits"] = out.logits.detach().clone()
    tensors["loss"] = out.loss.detach().reshape(1).clone()
    for name, p in model64.named_parameters():  # lm_head.weight is transformer.wte.weight
        tensors[f"grad.{name}"] = p.grad.detach().clone()
    tensors["greedy.output"] = sequence.clone()
    return tensors, model64


def gpt2_original_files(model):
    """The layout of OpenAI's converted GPT-2 checkpoints: GPT2Model keys without "transformer.", with the causal
    mask buffer h.N.attn.bias (1, 1, n_positions, n_positions) and h.N.attn.masked_bias (-1e4) saved, no lm_head;
    config.json of that era (n_ctx, task_specific_params; no transformers_version, torch_dtype, scale_attn_*)."""
    tensors = collections.OrderedDict()
    P = GPT2_SIZES["n_positions"]
    for key, value in model.transformer.state_dict().items():
        tensors[key] = value.detach().clone()
    for i in range(GPT2_SIZES["n_layer"]):
        tensors[f"h.{i}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)
        tensors[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    config = dict(GPT2_SIZES, activation_function="gelu_new", architectures=["GPT2LMHeadModel"], attn_pdrop=0.1,
                  bos_token_id=GPT2_EOS, embd_pdrop=0.1, eos_token_id=GPT2_EOS, initializer_range=0.02,
                  layer_norm_epsilon=1e-05, model_type="gpt2", n_ctx=P, resid_pdrop=0.1, summary_activation=None,
                  summary_first_dropout=0.1, summary_proj_to_labels=True, summary_type="cls_index",
                  summary_use_proj=True,
                  task_specific_params={"text-generation": {"do_sample": True, "max_length": 50}})
    files = {hf_folder.CONFIG_NAME: (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")}
    files.update(hf_folder.weight_files(tensors))
    return files


def gpt2_lm_head_files(model):
    """save_pretrained's files with lm_head.weight kept as its own tensor (a checkpoint written by torch.save of the
    full state dict, converted to safetensors)."""
    files = hf_folder.save_pretrained_files(copy.deepcopy(model))
    state = collections.OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    del files[hf_folder.WEIGHTS_NAME]
    files.update(hf_folder.weight_files(state))
    return files


# ----------------------------------------------------------------------------------------------------------------
# independent reader (used by --check; shares nothing with hf_folder's writer or reader)

_NP = {"F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2), "I64": ("<i8", 8),
       "BOOL": ("u1", 1)}
_RANK = {"I64": 5, "F64": 4, "F32": 3, "BF16": 2, "F16": 1, "BOOL": 0}  # the safetensors library's layout order


def strict_read(path):
    """Parses a safetensors file strictly; returns (OrderedDict name -> (dtype, numpy array), metadata). BF16 comes
    back as its raw uint16 bits. Checks the library's layout: tensors by descending dtype rank then name,
    contiguous offsets from 0, header padded with spaces to a multiple of 8."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 or 8 + n > len(blob):
        raise ValueError(f"{path}: bad header length {n}")
    raw = blob[8:8 + n]
    if not raw.rstrip(b" ").endswith(b"}") or b"\n" in raw:
        raise ValueError(f"{path}: header is not one JSON line padded with spaces")
    header = json.loads(raw, object_pairs_hook=collections.OrderedDict)
    metadata = header.pop("__metadata__", None)
    names = list(header)
    if names != sorted(names, key=lambda k: (-_RANK[header[k]["dtype"]], k)):
        raise ValueError(f"{path}: tensors are not in the safetensors library's order")
    out, position, buffer = collections.OrderedDict(), 0, blob[8 + n:]
    for name in names:
        entry = header[name]
        if list(entry) != ["dtype", "shape", "data_offsets"]:
            raise ValueError(f"{path}: {name}: keys {list(entry)}")
        np_dtype, width = _NP[entry["dtype"]]
        begin, end = entry["data_offsets"]
        if begin != position or end - begin != width * int(np.prod(entry["shape"], dtype=np.int64)):
            raise ValueError(f"{path}: {name}: offsets {begin}, {end} do not follow on or fit {entry['shape']}")
        position = end
        out[name] = (entry["dtype"], np.frombuffer(buffer[begin:end], dtype=np_dtype).reshape(entry["shape"]))
    if position != len(buffer):
        raise ValueError(f"{path}: {len(buffer)} data bytes, tensors cover {position}")
    return out, metadata


def as_numpy(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return "BF16", t.view(torch.int16).numpy().view("<u2")
    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64", torch.bool: "BOOL"}
    return names[t.dtype], t.numpy()


def check_safetensors(path, tensors, metadata):
    arrays, meta = strict_read(path)
    if meta != metadata:
        raise AssertionError(f"{path}: metadata differs from memory")
    if set(arrays) != set(tensors):
        raise AssertionError(f"{path}: names differ: missing {sorted(set(tensors) - set(arrays))}, "
                             f"extra {sorted(set(arrays) - set(tensors))}")
    for name, t in tensors.items():
        dtype, expected = as_numpy(t)
        got_dtype, got = arrays[name]
        if got_dtype != dtype or got.shape != expected.shape or not np.array_equal(got, expected):
            raise AssertionError(f"{path}: {name}: {got_dtype}{got.shape} differs from memory {dtype}{expected.shape}")
        if dtype in ("F64", "F32", "F16") and not np.isfinite(got).all():
            raise AssertionError(f"{path}: {name}: not finite")
    return len(arrays)


# ----------------------------------------------------------------------------------------------------------------
# checks of the reference models

def check_folder_files(folder, files, expected):
    """Every file of a folder against memory: the bytes, the weights (strict reader; their union must be `expected`,
    name -> tensor), the shard index, config.json and the tokenizer files."""
    present = sorted(os.listdir(folder))
    if present != sorted(files):
        raise AssertionError(f"{folder}: holds {present}, expected {sorted(files)}")
    found, weight_map, total = {}, {}, 0
    for name, data in files.items():
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            if f.read() != data:
                raise AssertionError(f"{path}: bytes differ from what this run produces")
        if name.endswith(".safetensors"):
            arrays, metadata = strict_read(path)
            if metadata != {"format": "pt"}:
                raise AssertionError(f"{path}: __metadata__ is {metadata}")
            for key, value in arrays.items():
                if key in found:
                    raise AssertionError(f"{folder}: {key} is in two files")
                found[key] = value
                weight_map[key] = name
                total += value[1].nbytes
    if set(found) != set(expected):
        raise AssertionError(f"{folder}: missing {sorted(set(expected) - set(found))}, "
                             f"extra {sorted(set(found) - set(expected))}")
    for key, t in expected.items():
        dtype, value = as_numpy(t)
        if found[key][0] != dtype or found[key][1].shape != value.shape or not np.array_equal(found[key][1], value):
            raise AssertionError(f"{folder}: {key} differs from the model's tensor")
    if hf_folder.WEIGHTS_INDEX_NAME in files:
        index = json.loads(files[hf_folder.WEIGHTS_INDEX_NAME])
        if index != {"metadata": {"total_size": total}, "weight_map": weight_map} or len(set(weight_map.values())) < 2:
            raise AssertionError(f"{folder}: index does not match the shards")
    config = json.loads(files[hf_folder.CONFIG_NAME])
    if "vocab.txt" in files:
        lines = files["vocab.txt"].decode("utf-8").split("\n")
        if lines[-1] != "" or len(lines) - 1 != config["vocab_size"] or len(set(lines[:-1])) != config["vocab_size"]:
            raise AssertionError(f"{folder}: vocab.txt does not hold vocab_size distinct tokens")
        if lines[:5] != ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] or config["pad_token_id"] != 0:
            raise AssertionError(f"{folder}: special tokens out of place")
    if "vocab.json" in files:
        vocab = json.loads(files["vocab.json"])
        if sorted(vocab.values()) != list(range(config["vocab_size"])):
            raise AssertionError(f"{folder}: vocab.json ids are not 0 .. vocab_size - 1")
        if vocab["<|endoftext|>"] != config["eos_token_id"]:
            raise AssertionError(f"{folder}: <|endoftext|> is not eos_token_id")
        merges = files["merges.txt"].decode("utf-8").split("\n")
        if merges[0] != "#version: 0.2" or merges[-1] != "":
            raise AssertionError(f"{folder}: merges.txt header or final newline")
        for k, line in enumerate(merges[1:-1]):
            a, b = line.split(" ")
            if a not in vocab or b not in vocab or vocab.get(a + b) is None or vocab[a + b] <= max(vocab[a], vocab[b]):
                raise AssertionError(f"{folder}: merge {k} {line!r} does not build a later token of vocab.json")


def expected_weights(pretraining, mlm, cls, bare, gmodel):
    """What each folder's weight files must hold, spelled out from the models (independently of the writers)."""
    def state(model, drop=(), dtype=None):
        out = {k: v.detach() for k, v in model.state_dict().items() if k not in drop}
        return {k: (v.to(dtype) if dtype is not None else v) for k, v in out.items()}

    mlm_tied = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
    legacy = {}
    for k, v in state(pretraining, drop=("cls.predictions.decoder.bias",)).items():
        legacy[k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")] = v
    legacy["bert.embeddings.position_ids"] = torch.arange(BERT_SIZES["max_position_embeddings"])[None, :]
    original = {k[len("transformer."):]: v for k, v in state(gmodel, drop=("lm_head.weight",)).items()}
    P = GPT2_SIZES["n_positions"]
    for i in range(GPT2_SIZES["n_layer"]):
        original[f"h.{i}.attn.bias"] = torch.tril(torch.ones(P, P))[None, None]
        original[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return {"bert-mlm": state(mlm, mlm_tied), "bert-cls": state(cls), "bert-legacy": legacy,
            "bert-bare": state(bare), "bert-f16": state(mlm, mlm_tied, torch.float16),
            "bert-bf16": state(mlm, mlm_tied, torch.bfloat16), "bert-sharded": state(mlm, mlm_tied),
            "gpt2": state(gmodel, ("lm_head.weight",)), "gpt2-original": original, "gpt2-lm-head": state(gmodel),
            "gpt2-f16": state(gmodel, ("lm_head.weight",), torch.float16),
            "gpt2-sharded": state(gmodel, ("lm_head.weight",))}


def expected_bert_keys(config, head):
    """transformers' state_dict() names, written out from its module tree (not from the reference code)."""
    keys = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
            "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
            "bert.embeddings.LayerNorm.bias"]
    for i in range(config.num_hidden_layers):
        p = f"bert.encoder.layer.{i}."
        for sub in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                    "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"):
            keys += [p + sub + ".weight", p + sub + ".bias"]
    if head != "mlm":
        keys += ["bert.pooler.dense.weight", "bert.pooler.dense.bias"]
    if head == "mlm":
        keys += ["cls.predictions.bias", "cls.predictions.transform.dense.weight",
                 "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                 "cls.predictions.transform.LayerNorm.bias", "cls.predictions.decoder.weight",
                 "cls.predictions.decoder.bias"]
    if head == "cls":
        keys += ["classifier.weight", "classifier.bias"]
    return keys


def check_bert_semantics(mlm, cls, inputs, tensors, mlm64):
    config = mlm.config
    if list(mlm.state_dict()) != expected_bert_keys(config, "mlm"):
        raise AssertionError("BertForMaskedLM state_dict keys differ from transformers' names")
    if list(cls.state_dict()) != expected_bert_keys(config, "cls"):
        raise AssertionError("BertForSequenceClassification state_dict keys differ from transformers' names")
    if mlm.bert.pooler is not None or any("pooler" in k for k in mlm.state_dict()):
        raise AssertionError("BertForMaskedLM has a pooler")
    for model in (mlm, mlm64):
        decoder = model.cls.predictions.decoder
        if (decoder.weight is not model.bert.embeddings.word_embeddings.weight
                or decoder.bias is not model.cls.predictions.bias):
            raise AssertionError("MLM decoder is not tied to the word embeddings and to cls.predictions.bias")
    for model in (mlm, cls, mlm64):
        if any(m.eps != 1e-12 for m in model.modules() if isinstance(m, nn.LayerNorm)):
            raise AssertionError("a BERT LayerNorm eps is not 1e-12")
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    if (hf_bert.ACT2FN["gelu"](x) - 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))).abs().max() > 1e-15:
        raise AssertionError("hidden_act gelu is not the erf GELU")
    if (hf_bert.ACT2FN["gelu_new"](x) - F.gelu(x, approximate="tanh")).abs().max() > 1e-14:
        raise AssertionError("gelu_new is not the tanh approximation")
    mask = hf_bert.get_extended_attention_mask(inputs["attention_mask"], torch.float64)
    if mask.shape != (3, 1, 1, 9) or mask[1, 0, 0, 8] != torch.finfo(torch.float64).min or mask[1, 0, 0, 0] != 0:
        raise AssertionError("extended attention mask is not (1 - mask) * finfo.min")
    # The tied word-embedding gradient is the lookup gradient plus the decoder's.
    untied = as_double(mlm)
    untied.cls.predictions.decoder.weight = nn.Parameter(untied.bert.embeddings.word_embeddings.weight.detach().clone())
    out = untied(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"], labels=inputs["mlm_labels"])
    out.loss.backward()
    both = untied.bert.embeddings.word_embeddings.weight.grad + untied.cls.predictions.decoder.weight.grad
    if (both - tensors["mlm.grad.bert.embeddings.word_embeddings.weight"]).abs().max() > 1e-12:
        raise AssertionError("tied gradient is not the sum of the embedding and decoder gradients")
    # Padding: changing the token at a padded position changes no output at the real positions.
    ids = inputs["input_ids"].clone()
    ids[2, 7] = 17
    with torch.no_grad():
        other = mlm64(ids, inputs["attention_mask"], inputs["token_type_ids"]).logits
    real = inputs["attention_mask"].bool()
    if not torch.equal(other[real], tensors["mlm.logits"][real]):
        raise AssertionError("a padded token changes the outputs at real positions")
    # Losses as transformers computes them from the logits.
    if (F.cross_entropy(tensors["cls.logits"], inputs["cls_labels"]) - tensors["cls.loss"][0]).abs() > 1e-15:
        raise AssertionError("cls.loss is not the cross-entropy of cls.logits")
    keep = inputs["mlm_labels"] != -100
    manual = -torch.log_softmax(tensors["mlm.logits"][keep], -1).gather(1, inputs["mlm_labels"][keep][:, None]).mean()
    if (manual - tensors["mlm.loss"][0]).abs() > 1e-14:
        raise AssertionError("mlm.loss is not the mean cross-entropy over the labels that are not -100")
    # problem_type: one label is regression (MSE), float labels with several labels multi-label (BCE).
    reg = hf_bert.BertForSequenceClassification(hf_bert.BertConfig(**BERT_SIZES, num_labels=1)).double().eval()
    target = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    out = reg(inputs["input_ids"], inputs["attention_mask"], labels=target)
    if reg.config.problem_type != "regression" or (out.loss - F.mse_loss(out.logits[:, 0], target)).abs() > 1e-15:
        raise AssertionError("num_labels 1 is not an MSE regression")
    # _init_weights: N(0, 0.02) weights, zero biases, LayerNorm 1 / 0, zero padding row.
    torch.manual_seed(3)
    fresh = hf_bert.BertForMaskedLM(hf_bert.BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=1,
                                                       num_attention_heads=4, intermediate_size=128))
    w = fresh.bert.embeddings.word_embeddings.weight
    big = torch.cat([p.detach().flatten() for n, p in fresh.named_parameters() if n.endswith("weight")
                     and "LayerNorm" not in n])
    if (w[0] != 0).any() or abs(big.std().item() - 0.02) > 0.001 or fresh.cls.predictions.bias.abs().max() != 0:
        raise AssertionError("_init_weights statistics")
    if any((m.weight != 1).any() or (m.bias != 0).any() for m in fresh.modules() if isinstance(m, nn.LayerNorm)):
        raise AssertionError("_init_weights LayerNorm")


def check_bert_against_torch(mlm64, inputs, tensors):
    """Each BERT layer is torch's post-norm nn.TransformerEncoderLayer (gelu, eps 1e-12) with key padding."""
    config = mlm64.config
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    emb = mlm64.bert.embeddings
    T = ids.shape[1]
    with torch.no_grad():
        h = emb.word_embeddings.weight[ids] + emb.position_embeddings.weight[:T][None] + \
            emb.token_type_embeddings.weight[types]
        h = F.layer_norm(h, (config.hidden_size,), emb.LayerNorm.weight, emb.LayerNorm.bias, 1e-12)
        worst = (h - tensors["bert.hidden_states.0"]).abs().max().item()
        for i, layer in enumerate(mlm64.bert.encoder.layer):
            ref = nn.TransformerEncoderLayer(config.hidden_size, config.num_attention_heads,
                                             config.intermediate_size, dropout=0.0, activation="gelu",
                                             layer_norm_eps=1e-12, batch_first=True).double().train()
            a = layer.attention
            ref.self_attn.in_proj_weight.copy_(torch.cat([a.self.query.weight, a.self.key.weight, a.self.value.weight]))
            ref.self_attn.in_proj_bias.copy_(torch.cat([a.self.query.bias, a.self.key.bias, a.self.value.bias]))
            ref.self_attn.out_proj.weight.copy_(a.output.dense.weight)
            ref.self_attn.out_proj.bias.copy_(a.output.dense.bias)
            ref.norm1.load_state_dict(a.output.LayerNorm.state_dict())
            ref.linear1.load_state_dict(layer.intermediate.dense.state_dict())
            ref.linear2.load_state_dict(layer.output.dense.state_dict())
            ref.norm2.load_state_dict(layer.output.LayerNorm.state_dict())
            h = ref(h, src_key_padding_mask=mask == 0)
            worst = max(worst, (h - tensors[f"bert.hidden_states.{i + 1}"]).abs().max().item())
    if worst > 1e-12:
        raise AssertionError(f"BERT differs from nn.TransformerEncoderLayer by {worst:.3e}")
    return worst


def check_gpt2_against_torch(model64, inputs, logits):
    """Each GPT-2 block is torch's pre-norm nn.TransformerEncoderLayer (tanh GELU) with a causal and a key padding
    mask; compared at the real positions (torch gives NaN on a query row with every key masked)."""
    config = model64.config
    ids, mask, pos = inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"]
    T = ids.shape[1]
    real = mask.bool()
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    with torch.no_grad():
        tr = model64.transformer
        h = tr.wte.weight[ids] + tr.wpe.weight[pos]
        for block in tr.h:
            ref = nn.TransformerEncoderLayer(config.n_embd, config.n_head, 4 * config.n_embd, dropout=0.0,
                                             activation=lambda x: F.gelu(x, approximate="tanh"),
                                             layer_norm_eps=config.layer_norm_epsilon, batch_first=True,
                                             norm_first=True).double().train()
            ref.self_attn.in_proj_weight.copy_(block.attn.c_attn.weight.T)
            ref.self_attn.in_proj_bias.copy_(block.attn.c_attn.bias)
            ref.self_attn.out_proj.weight.copy_(block.attn.c_proj.weight.T)
            ref.self_attn.out_proj.bias.copy_(block.attn.c_proj.bias)
            ref.linear1.weight.copy_(block.mlp.c_fc.weight.T)
            ref.linear1.bias.copy_(block.mlp.c_fc.bias)
            ref.linear2.weight.copy_(block.mlp.c_proj.weight.T)
            ref.linear2.bias.copy_(block.mlp.c_proj.bias)
            ref.norm1.load_state_dict(block.ln_1.state_dict())
            ref.norm2.load_state_dict(block.ln_2.state_dict())
            h = ref(h, src_mask=causal, src_key_padding_mask=~real)
            h = torch.where(real[..., None], h, torch.zeros_like(h))  # padded rows are NaN here; no one reads them
        h = F.layer_norm(h, (config.n_embd,), tr.ln_f.weight, tr.ln_f.bias, config.layer_norm_epsilon)
        out = h @ tr.wte.weight.T
    worst = (out[real] - logits[real]).abs().max().item()
    if worst > 1e-12:
        raise AssertionError(f"GPT-2 differs from nn.TransformerEncoderLayer by {worst:.3e}")
    return worst


def check_gpt2_semantics(model, model64, inputs):
    if model.lm_head.weight is not model.transformer.wte.weight:
        raise AssertionError("lm_head is not tied to wte")
    block = model.transformer.h[0]
    E = GPT2_SIZES["n_embd"]
    if block.attn.c_attn.weight.shape != (E, 3 * E) or block.mlp.c_fc.weight.shape != (E, 4 * E):
        raise AssertionError("Conv1D weights are not (in, out), or n_inner is not 4 * n_embd")
    if any(k.endswith((".attn.bias", ".attn.masked_bias")) for k in model.state_dict()):
        raise AssertionError("the attention buffers are in the state dict")
    # Batched generation with the cache: every step's logits equal one forward over the sequence so far.
    sequences, steps = hf_gpt2.greedy_generate(model64, inputs["input_ids"], inputs["attention_mask"],
                                               max_new_tokens=4, eos_token_id=GPT2_EOS)
    worst = 0.0
    T = inputs["input_ids"].shape[1]
    for k, step in enumerate(steps):
        mask = torch.cat([inputs["attention_mask"], torch.ones(3, k, dtype=torch.int64)], dim=1)
        with torch.no_grad():
            full = model64(sequences[:, :T + k], attention_mask=mask,
                           position_ids=hf_gpt2.generation_position_ids(mask)).logits[:, -1]
        worst = max(worst, (full - step).abs().max().item())
    if worst > 1e-12:
        raise AssertionError(f"batched cached generation differs from full forwards by {worst:.3e}")
    # _init_weights: c_proj weights N(0, 0.02 / sqrt(2 n_layer)), the others N(0, 0.02).
    torch.manual_seed(4)
    fresh = hf_gpt2.GPT2LMHeadModel(hf_gpt2.GPT2Config(vocab_size=500, n_positions=64, n_embd=64, n_layer=8,
                                                       n_head=4))
    proj = torch.cat([b.attn.c_proj.weight.flatten() for b in fresh.transformer.h]
                     + [b.mlp.c_proj.weight.flatten() for b in fresh.transformer.h])
    if abs(proj.std().item() - 0.02 / math.sqrt(16)) > 0.0003 or abs(fresh.transformer.wte.weight.std() - 0.02) > 0.001:
        raise AssertionError("GPT-2 _init_weights statistics")
    # Left padding: position ids count real tokens only.
    if inputs["position_ids"][2].tolist() != [1, 1, 1, 1, 1, 1, 0, 1, 2, 3]:
        raise AssertionError("generation position ids")
    return worst


def check_reload(folder, architecture, expect, compare):
    """Loads a folder with hf_folder.from_pretrained in float64 and compares what `compare(model)` returns with the
    expected tensors exactly; `expect` holds the load report's expected missing / unexpected / renamed counts."""
    model, report = hf_folder.from_pretrained(folder, architecture, dtype=torch.float64)
    got = {"missing": report["missing"], "unexpected": report["unexpected"], "renamed": len(report["renamed"]),
           "prefix": report["prefix"]}
    if got != expect:
        raise AssertionError(f"{folder} as {architecture}: load report {got}, expected {expect}")
    for name, (value, reference) in compare(model).items():
        if not torch.equal(value, reference):
            raise AssertionError(f"{folder} as {architecture}: {name} differs by "
                                 f"{(value - reference).abs().max().item():.3e}")


# ----------------------------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="read every file back and cross-check the models")
    parser.add_argument("--no-write", action="store_true", help="do not write the files")
    parser.add_argument("--out-dir", default=os.path.join(HERE, "hf"), help="output directory (default: hf/ here)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    # ---- BERT
    pretraining, mlm, cls, bare = bert_models()
    bert_tok = tokenizer_files_bert()
    folders = collections.OrderedDict()
    folders["bert-mlm"] = hf_folder.save_pretrained_files(copy.deepcopy(mlm))
    folders["bert-cls"] = hf_folder.save_pretrained_files(copy.deepcopy(cls))
    folders["bert-legacy"] = bert_legacy_files(pretraining)
    folders["bert-bare"] = hf_folder.save_pretrained_files(copy.deepcopy(bare))
    folders["bert-f16"] = hf_folder.save_pretrained_files(copy.deepcopy(mlm).half())
    folders["bert-bf16"] = hf_folder.save_pretrained_files(copy.deepcopy(mlm).bfloat16())
    folders["bert-sharded"] = hf_folder.save_pretrained_files(copy.deepcopy(mlm), max_shard_size="50KB")
    for name in list(folders):
        folders[name].update(bert_tok)
    inputs = bert_inputs()
    bert_tensors, mlm64, cls64 = bert_expected(mlm, cls, inputs)
    vocab = bert_vocab()
    bert_meta = {
        "generator": GENERATOR, "torch_version": torch.__version__,
        "mirrors": f"transformers {hf_folder.TRANSFORMERS_VERSION} BertForMaskedLM / BertForSequenceClassification",
        "computation": "float64: the folders' weights converted to double, eval mode (dropout off)",
        "sources": json.dumps({
            "input_ids, attention_mask, token_type_ids": "inputs of both models",
            "bert.hidden_states.K": "hf/bert-mlm (BertForMaskedLM.bert): K = 0 embeddings output, K = 1.. layers; "
                                    "hf/bert-cls has the same encoder weights",
            "bert.pooler_output": "hf/bert-cls (BertForSequenceClassification.bert.pooler)",
            "cls.*": "hf/bert-cls, labels cls_labels; cls.grad.<name>: every named_parameters() of the model",
            "mlm.*": "hf/bert-mlm, labels mlm_labels (-100 = not predicted); mlm.grad.<name>: every "
                     "named_parameters(), the tied decoder weight's under bert.embeddings.word_embeddings.weight",
        }, indent=None, sort_keys=True),
        "tokens": json.dumps([[vocab[i] for i in row] for row in inputs["input_ids"].tolist()]),
        "config.bert-mlm": folders["bert-mlm"]["config.json"].decode("utf-8"),
        "config.bert-cls": folders["bert-cls"]["config.json"].decode("utf-8"),
        "weights": "every hf/bert-* folder holds these values (exact in F32, F16 and BF16)",
    }

    # ---- GPT-2
    inputs_g = gpt2_inputs()
    seed, gmodel, sequence, margin, cache_diff = gpt2_select(inputs_g["greedy.prompt"])
    if cache_diff > 1e-12:
        raise AssertionError(f"cached greedy logits differ from a full forward by {cache_diff:.3e}")
    gpt2_tok = tokenizer_files_gpt2()
    folders["gpt2"] = hf_folder.save_pretrained_files(copy.deepcopy(gmodel))
    folders["gpt2-original"] = gpt2_original_files(gmodel)
    folders["gpt2-lm-head"] = gpt2_lm_head_files(gmodel)
    folders["gpt2-f16"] = hf_folder.save_pretrained_files(copy.deepcopy(gmodel).half())
    folders["gpt2-sharded"] = hf_folder.save_pretrained_files(copy.deepcopy(gmodel), max_shard_size="40KB")
    for name in list(folders):
        if name.startswith("gpt2"):
            folders[name].update(gpt2_tok)
    gpt2_tensors, gmodel64 = gpt2_expected(gmodel, inputs_g, sequence, margin)
    gpt2_meta = {
        "generator": GENERATOR, "torch_version": torch.__version__,
        "mirrors": f"transformers {hf_folder.TRANSFORMERS_VERSION} GPT2LMHeadModel (eager attention) and "
                   "generate(do_sample=False) with the cache",
        "computation": "float64: the folders' weights converted to double, eval mode (dropout off)",
        "sources": json.dumps({
            "input_ids, attention_mask, position_ids": "a left-padded batch (pad id = eos), position_ids = "
                                                       "cumsum(attention_mask) - 1 with padding set to 1",
            "logits, loss, grad.<name>": "hf/gpt2 with labels (input_ids, -100 on padding); grad of every "
                                         "named_parameters(), lm_head.weight's under transformer.wte.weight",
            "greedy.output": f"greedy.prompt followed by {GREEDY_NEW_TOKENS} greedy tokens, decoded with the cache",
        }, sort_keys=True),
        "padding": "logits at padded positions, and the loss term each left-padded row predicts from its last "
                   "padding position, follow the eager additive mask: a padded query row gets finfo.min on every "
                   "key (causal where() then + mask; min + min = -inf), so it attends uniformly to the keys left "
                   "at finfo.min",
        "greedy_min_margin": f"{margin:.6g}",
        "greedy_cache_vs_full_max_abs_diff": f"{cache_diff:.3e}",
        "weight_seed": str(seed),
        "config.gpt2": folders["gpt2"]["config.json"].decode("utf-8"),
        "weights": "every hf/gpt2* folder holds these values (exact in F32, F16 and BF16)",
    }

    expected = [("bert_expected.safetensors", bert_tensors, bert_meta),
                ("gpt2_expected.safetensors", gpt2_tensors, gpt2_meta)]

    # ---- write
    total = 0
    for name, files in folders.items():
        folder = os.path.join(args.out_dir, name)
        if not args.no_write:
            os.makedirs(folder, exist_ok=True)
            for stale in set(os.listdir(folder)) - set(files):
                os.remove(os.path.join(folder, stale))
            hf_folder.write_files(folder, files)
        size = sum(len(d) for d in files.values())
        total += size
        print(f"hf/{name}: {', '.join(files)}: {size} bytes")
    blobs = {}
    for file_name, tensors, metadata in expected:
        blob = hf_folder.encode_safetensors(tensors, metadata)
        blobs[file_name] = blob
        if not args.no_write:
            with open(os.path.join(args.out_dir, file_name), "wb") as f:
                f.write(blob)
        total += len(blob)
        print(f"hf/{file_name}: {len(tensors)} tensors, {len(blob)} bytes, "
              f"sha256 {hashlib.sha256(blob).hexdigest()}")
    print(f"gpt2 weight seed {seed}, greedy min margin {margin:.4g}, cache vs full {cache_diff:.2e}; "
          f"total {total} bytes")
    if total >= TOTAL_BUDGET:
        print(f"error: hf/ holds {total} bytes, over its {TOTAL_BUDGET // 1024} KB budget", file=sys.stderr)
        return 1

    if not args.check:
        return 0

    # ---- check
    weights = expected_weights(pretraining, mlm, cls, bare, gmodel)
    for name, files in folders.items():
        check_folder_files(os.path.join(args.out_dir, name), files, weights[name])
    for file_name, tensors, metadata in expected:
        path = os.path.join(args.out_dir, file_name)
        with open(path, "rb") as f:
            if f.read() != blobs[file_name]:
                raise AssertionError(f"{path}: bytes differ from what this run produces")
        check_safetensors(path, tensors, metadata)
    for name, files in folders.items():
        config = json.loads(files["config.json"])
        cls_ = hf_bert.BertConfig if config["model_type"] == "bert" else hf_gpt2.GPT2Config
        if "transformers_version" in config and config["transformers_version"] == hf_folder.TRANSFORMERS_VERSION:
            again = cls_.from_dict(config).to_json_string().encode("utf-8")
            if again != files["config.json"]:
                raise AssertionError(f"hf/{name}/config.json does not survive from_dict + to_json_string")
    print("files: every file re-read and equal to memory")

    check_bert_semantics(mlm, cls, inputs, bert_tensors, mlm64)
    worst_b = check_bert_against_torch(mlm64, inputs, bert_tensors)
    worst_g = check_gpt2_against_torch(gmodel64, inputs_g, gpt2_tensors["logits"])
    worst_c = check_gpt2_semantics(gmodel, gmodel64, inputs_g)
    print(f"models: BERT vs nn.TransformerEncoderLayer {worst_b:.2e}, GPT-2 vs nn.TransformerEncoderLayer "
          f"{worst_g:.2e} (real positions), batched cached generation vs full forward {worst_c:.2e}")

    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    b = bert_tensors

    def mlm_outputs(model):
        with torch.no_grad():
            out = model(ids, mask, types, labels=inputs["mlm_labels"])
        return {"logits": (out.logits, b["mlm.logits"]), "loss": (out.loss.reshape(1), b["mlm.loss"])}

    def cls_outputs(model):
        with torch.no_grad():
            out = model(ids, mask, types, labels=inputs["cls_labels"])
        return {"logits": (out.logits, b["cls.logits"]), "pooler": (out.pooler_output, b["bert.pooler_output"])}

    def bare_outputs(model):
        with torch.no_grad():
            out = model(ids, mask, types)
        result = {f"hidden_states.{k}": (h, b[f"bert.hidden_states.{k}"]) for k, h in enumerate(out.hidden_states)}
        result["pooler"] = (out.pooler_output, b["bert.pooler_output"])
        return result

    def gpt2_outputs(model):
        with torch.no_grad():
            out = model(inputs_g["input_ids"], attention_mask=inputs_g["attention_mask"],
                        position_ids=inputs_g["position_ids"], labels=inputs_g["labels"])
        seq, _ = hf_gpt2.greedy_generate(model, inputs_g["greedy.prompt"], max_new_tokens=GREEDY_NEW_TOKENS,
                                        eos_token_id=GPT2_EOS)
        return {"logits": (out.logits, gpt2_tensors["logits"]), "loss": (out.loss.reshape(1), gpt2_tensors["loss"]),
                "greedy": (seq, gpt2_tensors["greedy.output"])}

    def gpt2_bare_outputs(model):
        with torch.no_grad():
            h = model(inputs_g["input_ids"], attention_mask=inputs_g["attention_mask"],
                      position_ids=inputs_g["position_ids"]).last_hidden_state
        return {"logits": (h @ model.wte.weight.T, gpt2_tensors["logits"])}

    clean = {"missing": [], "unexpected": [], "renamed": 0, "prefix": None}
    legacy_unexpected = ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "cls.seq_relationship.bias",
                         "cls.seq_relationship.weight"]
    n_ln = 2 + 4 * BERT_SIZES["num_hidden_layers"] + 2  # gamma / beta pairs: embeddings, 2 per layer, MLM transform
    reloads = [
        ("bert-mlm", None, clean, mlm_outputs),
        ("bert-cls", None, clean, cls_outputs),
        ("bert-legacy", None, dict(clean, unexpected=legacy_unexpected, renamed=n_ln), mlm_outputs),
        ("bert-legacy", "BertForPreTraining", dict(clean, renamed=n_ln), lambda m: {}),
        ("bert-legacy", "BertModel", dict(clean, unexpected=sorted(
            hf_folder.fix_key(k) for k in weights["bert-legacy"] if k.startswith("cls.")), renamed=n_ln,
            prefix="added"), bare_outputs),
        ("bert-bare", None, clean, bare_outputs),
        ("bert-bare", "BertForSequenceClassification",
         dict(clean, missing=["classifier.bias", "classifier.weight"], prefix="removed"), lambda m: {}),
        ("bert-f16", None, clean, mlm_outputs),
        ("bert-bf16", None, clean, mlm_outputs),
        ("bert-sharded", None, clean, mlm_outputs),
        ("gpt2", None, clean, gpt2_outputs),
        ("gpt2", "GPT2Model", dict(clean, prefix="added"), gpt2_bare_outputs),
        ("gpt2-original", None, dict(clean, prefix="removed"), gpt2_outputs),
        ("gpt2-lm-head", None, clean, gpt2_outputs),
        ("gpt2-f16", None, clean, gpt2_outputs),
        ("gpt2-sharded", None, clean, gpt2_outputs),
    ]
    for folder, architecture, expect, compare in reloads:
        check_reload(os.path.join(args.out_dir, folder), architecture, expect, compare)
    print(f"folders: {len(reloads)} loads into the reference models give the expected outputs exactly")

    # In float32 the greedy path is the same and the outputs stay within float32 rounding of the float64 ones.
    worst = {}
    for folder, compare in (("bert-mlm", mlm_outputs), ("bert-cls", cls_outputs), ("bert-bare", bare_outputs),
                            ("gpt2", gpt2_outputs)):
        model, _ = hf_folder.from_pretrained(os.path.join(args.out_dir, folder), dtype=torch.float32)
        for name, (value, reference) in compare(model).items():
            if name == "greedy":
                if not torch.equal(value, reference):
                    raise AssertionError("float32 greedy decoding takes another path")
                continue
            diff = ((value.double() - reference).abs() / (1 + reference.abs())).max().item()
            worst[f"{folder}.{name}"] = diff
    if max(worst.values()) > 1e-5:
        raise AssertionError(f"float32 outputs differ from float64 by {max(worst.values()):.3e}")
    print(f"float32: same greedy tokens; outputs within {max(worst.values()):.2e} (|diff| / (1 + |value|))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
