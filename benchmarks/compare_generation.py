#!/usr/bin/env python3
"""Compares eigenformer's decoding (model_bench's BM_decode) with PyTorch running the same model with a key/value
cache in a transformers-style loop, in one run, and prints a markdown table.

Usage: /usr/bin/python3 benchmarks/compare_generation.py build/release/benchmarks/model_bench
         [--batches 1,8] [--threads 1,2] [--rounds 3] [--json out.json]

The model: GPT-2 small's shape (12 layers, width 768, 12 heads, vocabulary 50,257, 1,024 positions), random weights,
float32, eval mode. Each run: a batch of B prompts of 32 random tokens, 128 greedy tokens each (no stop token).
eigenformer: nn::GPT2LMHeadModel and generate() (a preallocated cache written in place). PyTorch:
tests/reference/hf_gpt2.py's GPT2LMHeadModel (transformers' GPT-2 module by module, eager attention) and its
greedy_generate, the loop of transformers' generate(): each step feeds the last token with past_key_values, the
cache grown by torch.cat, argmax of the last logits; under torch.no_grad().

Method (as compare_pytorch.py): every (batch, threads) pair runs `rounds` times on each side, alternating which
goes first; each side runs in its own process per round, so its peak RSS (os.wait4's ru_maxrss) is that run's (the
model's 497 MB of weights included). Both get OMP_WAIT_POLICY=PASSIVE, OMP_NUM_THREADS=threads and no
OPENBLAS_CORETYPE; PyTorch runs on the OpenMP build of OpenBLAS (libopenblas0-openmp) when installed. Times are
wall-clock medians: tokens/s = B * 128 / (prefill + 128 steps); ms/step = one decoding step of all B sequences
(the prefill excluded). The memory bound of a step at batch 1: the bytes of weights a step reads (every weight but
the position table: the token embedding is the language-model head) divided by model_bench's BM_memory_bandwidth
at the same thread count, measured in the same run.

Needs python3-torch (Debian) for the PyTorch side; the standard library otherwise.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
PROMPT, NEW_TOKENS = 32, 128


def torch_worker(batch, threads, runs):
    import torch

    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import hf_gpt2

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = hf_gpt2.GPT2LMHeadModel(hf_gpt2.GPT2Config()).eval()  # GPT-2 small's shape
    prompts = torch.randint(0, 50257, (batch, PROMPT), generator=torch.Generator().manual_seed(7))
    totals, prefills = [], []
    with torch.no_grad():
        for run in range(runs + 1):  # the first is a warm-up
            t0 = time.perf_counter()
            model(prompts, use_cache=True)
            t1 = time.perf_counter()
            sequences, _ = hf_gpt2.greedy_generate(model, prompts, max_new_tokens=NEW_TOKENS)
            t2 = time.perf_counter()
            if sequences.shape[1] != PROMPT + NEW_TOKENS:
                sys.exit("torch worker: greedy_generate stopped early")
            if run > 0:
                prefills.append((t1 - t0) * 1e3)
                totals.append((t2 - t1) * 1e3)
    ms_step = [(t - p) / (NEW_TOKENS - 1) for t, p in zip(totals, prefills)]
    print(json.dumps({"total_ms": totals, "prefill_ms": prefills, "ms_step": ms_step, "torch": torch.__version__}))


def run_wait4(cmd, env):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compare_generation: {' '.join(cmd)} failed:\n{err[-2000:]}")
    return out, usage.ru_maxrss / 1024.0


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


def run_eigenformer(bench, batch, threads):
    pattern = f"^BM_decode/gpt2-small/batch:{batch}/threads:{threads}/"
    out, rss = run_wait4([bench, f"--benchmark_filter={pattern}", "--benchmark_format=json"], side_env(threads, False))
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if not runs:
        sys.exit(f"compare_generation: {bench} ran no benchmark matching {pattern}")
    b = runs[0]
    return {"total_ms": [b["real_time"]], "ms_step": [b["ms/step"]], "prefill_ms": [b["prefill_ms"]],
            "weight_mb": b["weight_MB"], "rss": rss}


def run_torch(batch, threads, runs):
    out, rss = run_wait4(["/usr/bin/python3", os.path.abspath(__file__), "--torch-worker", str(batch), str(threads),
                          str(runs)], side_env(threads, True))
    r = json.loads(out.strip().splitlines()[-1])
    r["rss"] = rss
    return r


def bandwidth(bench, threads):
    out, _ = run_wait4([bench, f"--benchmark_filter=^BM_memory_bandwidth/threads:{threads}/",
                        "--benchmark_repetitions=3", "--benchmark_format=json"], side_env(threads, False))
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    return statistics.median(b["GB/s"] for b in runs)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--torch-worker":
        torch_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_bench", help="path to eigenformer's model_bench executable")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch-runs", type=int, default=2, help="timed generations per PyTorch process")
    parser.add_argument("--json", help="also write the raw samples here")
    args = parser.parse_args()
    bench = os.path.abspath(args.model_bench)
    batches = [int(b) for b in args.batches.split(",") if b]
    threads_list = [int(t) for t in args.threads.split(",") if t]
    start_load = os.getloadavg()
    rows, raw, torch_version = [], {}, "?"
    for threads in threads_list:
        gbps = bandwidth(bench, threads)
        for batch in batches:
            ef = {"total_ms": [], "ms_step": [], "prefill_ms": [], "rss": []}
            pt = {"total_ms": [], "ms_step": [], "prefill_ms": [], "rss": []}
            weight_mb = 0.0
            for r in range(args.rounds):
                for side in (["ef", "pt"] if r % 2 == 0 else ["pt", "ef"]):
                    if side == "ef":
                        res = run_eigenformer(bench, batch, threads)
                        weight_mb = res["weight_mb"]
                        dst = ef
                    else:
                        res = run_torch(batch, threads, args.torch_runs)
                        torch_version = res["torch"]
                        dst = pt
                    for key in ("total_ms", "ms_step", "prefill_ms"):
                        dst[key] += res[key]
                    dst["rss"].append(res["rss"])
                print(f"compare_generation: batch {batch} threads {threads} round {r + 1}/{args.rounds}: ms/step "
                      f"eigenformer {statistics.median(ef['ms_step']):.2f}, PyTorch "
                      f"{statistics.median(pt['ms_step']):.2f}", file=sys.stderr)
            raw[f"{batch}/{threads}"] = {"eigenformer": ef, "pytorch": pt, "GB/s": gbps}
            rows.append((batch, threads, ef, pt, weight_mb, gbps))
    med = statistics.median
    print(f"GPT-2 small shape, random weights, prompt {PROMPT} tokens, {NEW_TOKENS} greedy tokens; PyTorch "
          f"{torch_version}; medians of {args.rounds} rounds; wall-clock.")
    print()
    print("| batch | threads | tokens/s eigenformer | tokens/s PyTorch | speed-up | ms/step eigenformer | ms/step "
          "PyTorch | memory bound ms (GB/s) | eigenformer / bound | prefill ms eigenformer / PyTorch | peak RSS MiB "
          "eigenformer / PyTorch |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch, threads, ef, pt, weight_mb, gbps in rows:
        tok = NEW_TOKENS * batch
        et, ptt = tok / (med(ef["total_ms"]) * 1e-3), tok / (med(pt["total_ms"]) * 1e-3)
        bound = weight_mb * 1e-3 / gbps * 1e3
        print(f"| {batch} | {threads} | {et:.1f} | {ptt:.1f} | {et / ptt:.2f}x | {med(ef['ms_step']):.2f} | "
              f"{med(pt['ms_step']):.2f} | {bound:.2f} ({gbps:.1f}) | {med(ef['ms_step']) / bound:.2f} | "
              f"{med(ef['prefill_ms']):.0f} / {med(pt['prefill_ms']):.0f} | {max(ef['rss']):.0f} / "
              f"{max(pt['rss']):.0f} |")
    end_load = os.getloadavg()
    print()
    print(f"Load average at start {start_load[0]:.2f}, at end {end_load[0]:.2f} (2 = both cores busy before we ran).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
