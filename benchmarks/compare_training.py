#!/usr/bin/env python3
"""Trains the same small GPT-2 for the same wall-clock time with eigenformer (examples/generate/train_gpt) and with
PyTorch, on the same tokens, and compares the validation perplexity each reaches.

Usage: /usr/bin/python3 benchmarks/compare_training.py build/release/examples/generate/train_gpt
         --fortunes /usr/share/games/fortunes [--epochs 3] [--threads 2] [--out runs/compare]
         [any other train_gpt option after --, e.g. -- --layers 4 --embd 256]

Method. train_gpt runs first: it learns its byte-level BPE, trains for --epochs (validation after each), writes
the encoded training and validation tokens (--save-tokens) and metrics.csv, whose per-epoch seconds (training and
validation) sum to its time T. Then PyTorch trains the same model on the same token stream for T seconds of wall
clock, training only (it gets our validation time to train in), and is evaluated once at the end on the same
validation blocks. The PyTorch model is tests/reference/hf_gpt2.py's GPT2LMHeadModel (transformers' GPT-2, module by
module; eager attention, which is what transformers uses with PyTorch 1.13), with the same recipe as train_gpt:
blocks of block_size + 1 tokens, batches of batch_size blocks reshuffled every epoch, AdamW (betas 0.9 / 0.999, eps
1e-8, the same weight decay on every parameter), the same warmup and cosine (or linear) decay over the steps of
--epochs epochs (transformers' schedule functions), gradient clipping at the same norm. Both sides get
OMP_WAIT_POLICY=PASSIVE, OMP_NUM_THREADS=threads and no OPENBLAS_CORETYPE; PyTorch runs on the OpenMP build of
OpenBLAS when Debian's libopenblas0-openmp is installed (as in compare_pytorch.py). The slower side reaches fewer
optimizer steps in T, so its learning rate has not decayed as far and its perplexity is higher.

Needs python3-torch (Debian) for the PyTorch side.
"""

import argparse
import csv
import json
import math
import os
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def read_safetensors_i64(path):
    """{name: list of ints} of a safetensors file of I64 rank-1 tensors, and its metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "I64":
            sys.exit(f"compare_training: {path}: {name} is {info['dtype']}, expected I64")
        begin, end = info["data_offsets"]
        out[name] = list(struct.unpack(f"<{(end - begin) // 8}q", data[begin:end]))
    return out, header.get("__metadata__", {})


def side_env(threads, torch_side):
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(threads)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_NUM_THREADS", None)
    if torch_side and os.path.isdir(OPENBLAS_OPENMP_DIR):
        rest = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP_DIR + (":" + rest if rest else "")
    return env


def run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"compare_training: {' '.join(cmd)} failed with status {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout, proc.stderr


# ----------------------------------------------------------------------------------------------------------------
# PyTorch worker: python3 compare_training.py --torch-worker CONFIG_JSON


def torch_worker(config):
    import torch
    from torch.nn import functional as F

    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import hf_gpt2

    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"])
    tokens, meta = read_safetensors_i64(config["tokens"])
    train = torch.tensor(tokens["train"], dtype=torch.long)
    valid = torch.tensor(tokens["valid"], dtype=torch.long)
    T, B = config["block_size"], config["batch_size"]
    gpt = hf_gpt2.GPT2Config(vocab_size=int(meta["vocab_size"]), n_positions=T, n_embd=config["embd"],
                             n_layer=config["layers"], n_head=config["heads"], resid_pdrop=config["dropout"],
                             embd_pdrop=config["dropout"], attn_pdrop=config["dropout"],
                             bos_token_id=int(meta["eos_token_id"]), eos_token_id=int(meta["eos_token_id"]))
    model = hf_gpt2.GPT2LMHeadModel(gpt)
    blocks = (len(train) - 1) // T
    batches = blocks // B + (blocks % B != 0)
    total_steps = batches * config["epochs"]
    warmup = round(config["warmup"] * total_steps)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=config["weight_decay"])

    def factor(step):  # transformers' get_{cosine,linear,constant}_schedule_with_warmup
        if config["schedule"] == "constant":
            return 1.0
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if config["schedule"] == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    starts = torch.arange(blocks) * T
    offsets = torch.arange(T + 1)
    model.train()
    budget = config["seconds"]
    begin = time.perf_counter()
    steps = 0
    done = False
    generator = torch.Generator().manual_seed(config["seed"])
    for epoch in range(config["epochs"] * 100):  # until the budget is spent (more epochs than ours if faster)
        order = torch.randperm(blocks, generator=generator)
        for b in range(batches):
            rows = train[(starts[order[b * B:(b + 1) * B]][:, None] + offsets)]  # (B, T + 1)
            logits = model(rows[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1))
            loss.backward()
            if config["clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
            if time.perf_counter() - begin >= budget or steps >= total_steps:
                done = True
                break
        if done:
            break
    train_seconds = time.perf_counter() - begin
    model.eval()
    vblocks = (len(valid) - 1) // T
    total, count = 0.0, 0
    with torch.no_grad():
        for b0 in range(0, vblocks, B):
            idx = torch.arange(b0, min(vblocks, b0 + B)) * T
            rows = valid[idx[:, None] + offsets]
            logits = model(rows[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1), reduction="sum")
            total += loss.item()
            count += rows[:, 1:].numel()
    print(json.dumps({"steps": steps, "total_steps": total_steps, "train_seconds": train_seconds,
                      "valid_loss": total / count, "valid_perplexity": math.exp(total / count),
                      "tokens_per_second": steps * B * T / train_seconds, "torch": torch.__version__}))


# ----------------------------------------------------------------------------------------------------------------


def option(args, name, default):
    """The value of train_gpt option `name` in args (the last one), else default."""
    value = default
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            value = args[i + 1]
    return value


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--torch-worker":
        torch_worker(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train_gpt", help="path to eigenformer's train_gpt")
    parser.add_argument("--fortunes", help="train_gpt --fortunes")
    parser.add_argument("--jsonl", help="train_gpt --jsonl")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/compare_training")
    args, rest = parser.parse_known_args()  # the rest goes to train_gpt
    rest = [a for a in rest if a != "--"]
    if args.fortunes:
        rest = ["--fortunes", args.fortunes] + rest
    if args.jsonl:
        rest = ["--jsonl", args.jsonl] + rest
    tokens = os.path.abspath(os.path.join(args.out, "tokens.safetensors"))
    run_dir = os.path.join(args.out, "eigenformer")
    os.makedirs(args.out, exist_ok=True)
    start_load = os.getloadavg()
    cmd = [os.path.abspath(args.train_gpt), "--out", run_dir, "--overwrite", "--epochs", str(args.epochs),
           "--threads", str(args.threads), "--save-tokens", tokens, "--sample-tokens", "0"] + rest
    print("compare_training: " + " ".join(cmd), file=sys.stderr)
    t0 = time.perf_counter()
    run(cmd, side_env(args.threads, False))
    ours_wall = time.perf_counter() - t0
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    seconds = sum(float(r["seconds"]) for r in rows)
    ours_ppl = [float(r["valid_perplexity"]) for r in rows]
    ours_tps = [float(r["tokens_per_second"]) for r in rows]

    config = {"tokens": tokens, "threads": args.threads, "seconds": seconds, "epochs": args.epochs,
              "block_size": int(option(rest, "--block-size", 128)), "batch_size": int(option(rest, "--batch-size", 16)),
              "layers": int(option(rest, "--layers", 4)), "embd": int(option(rest, "--embd", 256)),
              "heads": int(option(rest, "--heads", 4)), "dropout": float(option(rest, "--dropout", 0.0)),
              "lr": float(option(rest, "--lr", 1e-3)), "weight_decay": float(option(rest, "--weight-decay", 0.01)),
              "warmup": float(option(rest, "--warmup", 0.05)), "schedule": option(rest, "--schedule", "cosine"),
              "clip": float(option(rest, "--clip", 1.0)), "seed": int(option(rest, "--seed", 0))}
    print(f"compare_training: PyTorch for {seconds:.1f} s", file=sys.stderr)
    out, _ = run(["/usr/bin/python3", os.path.abspath(__file__), "--torch-worker", json.dumps(config)],
                       side_env(args.threads, True))
    torch_result = json.loads(out.strip().splitlines()[-1])
    end_load = os.getloadavg()

    print(f"Model: GPT-2, {config['layers']} layers, width {config['embd']}, {config['heads']} heads, context "
          f"{config['block_size']}, batch {config['batch_size']}; {args.epochs} epochs planned; {args.threads} "
          f"thread(s); PyTorch {torch_result['torch']}.")
    print()
    print("| side | training time (s) | optimizer steps | tokens/s | validation perplexity |")
    print("|---|---:|---:|---:|---:|")
    steps_ours = int(rows[-1]["step"])
    print(f"| eigenformer | {seconds:.1f} (whole run {ours_wall:.1f}) | {steps_ours} | "
          f"{sum(ours_tps) / len(ours_tps):.0f} | {ours_ppl[-1]:.2f} (per epoch: "
          + ", ".join(f"{p:.2f}" for p in ours_ppl) + ") |")
    print(f"| PyTorch | {torch_result['train_seconds']:.1f} | {torch_result['steps']} of "
          f"{torch_result['total_steps']} | {torch_result['tokens_per_second']:.0f} | "
          f"{torch_result['valid_perplexity']:.2f} |")
    print()
    print(f"Load average at start {start_load[0]:.2f}, at end {end_load[0]:.2f} (2 = both cores busy before we ran).")


if __name__ == "__main__":
    main()
