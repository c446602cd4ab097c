#!/usr/bin/python3
"""Writes the fixtures of eigenformer's decoder tests that hf/gpt2_expected.safetensors does not hold, with the
PyTorch mirror of transformers' GPT-2 (hf_gpt2.py, transformers 4.46 semantics) in float64.

Run from the repository root with Debian's python3-torch (PyTorch 1.13, CPU):
    /usr/bin/python3 tests/reference/make_gpt2_decoder_fixtures.py [--check]

Outputs, under tests/reference/gpt2_decoder/:
  gpt2-variant/   a GPT2LMHeadModel folder with the settings hf/gpt2 leaves at their defaults: activation quick_gelu,
                  n_inner 40, scale_attn_by_inverse_layer_idx, an untied lm_head (tie_word_embeddings false)
  expected.safetensors
    real.loss, real.grad.<name>   hf/gpt2 on gpt2_expected's left-padded batch with every loss term whose logits
                                  come from a padding position left out (labels -100 there too): transformers'
                                  eager attention lets a padding query attend uniformly to every key, which no
                                  implementation that masks padding reproduces, so only real positions are compared
    batch.prompt_ids, batch.attention_mask, batch.sequences, batch.step_logits
                                  greedy generate() of hf/gpt2 on three left-padded prompts of different lengths
                                  (pad = eos), 20 new tokens, the cache, and the (B, V) logits of every step
    variant.logits, variant.greedy  gpt2-variant on gpt2_expected's batch and its 20-token greedy continuation of
                                  gpt2_expected's prompt
    activation.x, activation.<name>  every activation of transformers' ACT2FN that eigenformer computes, on x

--check reloads the files and compares them with what this run computed.
"""

import argparse
import collections
import copy
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import hf_bert  # noqa: E402
import hf_folder  # noqa: E402
import hf_gpt2  # noqa: E402
import make_hf_fixtures as base  # noqa: E402

OUT = os.path.join(HERE, "gpt2_decoder")
ACTIVATIONS = ["relu", "relu2", "gelu", "gelu_python", "gelu_new", "gelu_fast", "gelu_accurate", "gelu_pytorch_tanh",
               "quick_gelu", "silu", "swish", "tanh", "sigmoid", "linear"]
BATCH_PROMPTS = [[11, 22, 33, 44, 55], [7, 8], [90, 80, 70, 60, 50, 40, 30]]
NEW_TOKENS = 20


def read_expected():
    with open(os.path.join(HERE, "hf", "gpt2_expected.safetensors"), "rb") as f:
        tensors, _ = hf_folder.decode_safetensors(f.read(), "gpt2_expected.safetensors")
    return tensors


def real_loss(model64, inputs):
    """Loss and gradients with the terms predicted from padding positions left out."""
    labels = inputs["labels"].clone()
    mask = inputs["attention_mask"]
    labels[:, 1:][mask[:, :-1] == 0] = -100  # label t + 1 is predicted at position t
    model64.zero_grad()
    out = model64(inputs["input_ids"], attention_mask=mask, position_ids=inputs["position_ids"], labels=labels)
    out.loss.backward()
    tensors = collections.OrderedDict()
    tensors["real.labels"] = labels
    tensors["real.loss"] = out.loss.detach().reshape(1).clone()
    for name, p in model64.named_parameters():
        tensors[f"real.grad.{name}"] = p.grad.detach().clone()
    return tensors


def batch_greedy(model64):
    eos = base.GPT2_EOS
    longest = max(len(p) for p in BATCH_PROMPTS)
    ids = torch.full((len(BATCH_PROMPTS), longest), eos, dtype=torch.int64)
    mask = torch.zeros(len(BATCH_PROMPTS), longest, dtype=torch.int64)
    for r, p in enumerate(BATCH_PROMPTS):
        ids[r, longest - len(p):] = torch.tensor(p)
        mask[r, longest - len(p):] = 1
    with torch.no_grad():
        sequences, steps = hf_gpt2.greedy_generate(model64, ids, mask, max_new_tokens=NEW_TOKENS, eos_token_id=eos)
    return collections.OrderedDict([("batch.prompt_ids", ids), ("batch.attention_mask", mask),
                                    ("batch.sequences", sequences), ("batch.step_logits", torch.stack(steps))])


def variant_model():
    config = hf_gpt2.GPT2Config(**dict(base.GPT2_SIZES, n_inner=40), activation_function="quick_gelu",
                                scale_attn_by_inverse_layer_idx=True, tie_word_embeddings=False,
                                bos_token_id=base.GPT2_EOS, eos_token_id=base.GPT2_EOS)
    torch.manual_seed(0)
    model = hf_gpt2.GPT2LMHeadModel(config)
    base.randomize_(model, 1234, dict(base.GPT2_STDS, Linear=0.3))
    base.round_to_half_precisions_(model)
    if model.lm_head.weight is model.transformer.wte.weight:
        raise AssertionError("variant_model: lm_head is tied, expected its own weight")
    return model


def compute():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    expected = read_expected()
    inputs = {k: expected[k] for k in ("input_ids", "attention_mask", "position_ids", "labels", "greedy.prompt")}
    gpt2, report = hf_folder.from_pretrained(os.path.join(HERE, "hf", "gpt2"), dtype=torch.float64)
    if report["missing"] or report["unexpected"]:
        raise AssertionError(f"hf/gpt2 did not load cleanly: {report}")
    tensors = real_loss(gpt2, inputs)
    tensors.update(batch_greedy(gpt2))

    variant = variant_model()
    files = hf_folder.save_pretrained_files(copy.deepcopy(variant))
    files.update(base.tokenizer_files_gpt2())
    variant64 = base.as_double(variant)
    with torch.no_grad():
        tensors["variant.logits"] = variant64(inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                              position_ids=inputs["position_ids"]).logits.clone()
        tensors["variant.greedy"], _ = hf_gpt2.greedy_generate(variant64, inputs["greedy.prompt"],
                                                               max_new_tokens=NEW_TOKENS, eos_token_id=base.GPT2_EOS)
    x = torch.linspace(-6.0, 6.0, 49, dtype=torch.float64)
    tensors["activation.x"] = x
    for name in ACTIVATIONS:
        tensors[f"activation.{name}"] = hf_bert.get_activation(name)(x)
    metadata = {"generator": "tests/reference/make_gpt2_decoder_fixtures.py", "torch_version": torch.__version__,
                "mirrors": f"transformers {hf_folder.TRANSFORMERS_VERSION} GPT2LMHeadModel (eager attention)",
                "computation": "float64", "batch_prompts": json.dumps(BATCH_PROMPTS)}
    return files, tensors, metadata


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="reload the written files and compare")
    args = parser.parse_args()
    files, tensors, metadata = compute()
    hf_folder.write_files(os.path.join(OUT, "gpt2-variant"), files)
    with open(os.path.join(OUT, "expected.safetensors"), "wb") as f:
        f.write(hf_folder.encode_safetensors(tensors, metadata))
    if args.check:
        with open(os.path.join(OUT, "expected.safetensors"), "rb") as f:
            back, meta = hf_folder.decode_safetensors(f.read(), "expected.safetensors")
        for name, t in tensors.items():
            if not torch.equal(back[name], t):
                raise AssertionError(f"{name} differs after reading it back")
        model, report = hf_folder.from_pretrained(os.path.join(OUT, "gpt2-variant"), dtype=torch.float64)
        if report["missing"] or report["unexpected"]:
            raise AssertionError(f"gpt2-variant did not load cleanly: {report}")
        with torch.no_grad():
            again = model(tensors["input_ids"] if "input_ids" in tensors else read_expected()["input_ids"],
                          attention_mask=read_expected()["attention_mask"],
                          position_ids=read_expected()["position_ids"]).logits
        if not torch.equal(again, tensors["variant.logits"]):
            raise AssertionError("gpt2-variant reloaded gives other logits")
        print("check: files read back equal; gpt2-variant reloads to the same logits")
    steps = tensors["batch.step_logits"]
    top2 = steps.topk(2, dim=-1).values
    print(f"wrote {OUT}: real loss {tensors['real.loss'].item():.6f}, batch greedy min margin "
          f"{(top2[..., 0] - top2[..., 1]).min().item():.4g}")


if __name__ == "__main__":
    main()
