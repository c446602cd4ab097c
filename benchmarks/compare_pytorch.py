#!/usr/bin/env python3
"""Compares eigenformer's model_bench with the same models in PyTorch, in one run, and prints a markdown table.

Usage: /usr/bin/python3 benchmarks/compare_pytorch.py build/release/benchmarks/model_bench
         [--configs seed,tiny,mini,base-layer] [--threads 1,2] [--rounds 3] [--json out.json]
         [--baseline OTHER/model_bench [--no-torch]] [--openblas-coretype NAME]

--baseline adds a third side, another build of model_bench (the code before a change), run in the same rotation,
and a second table: before / after times and their ratio for every row. --no-torch then leaves PyTorch out.

The four configurations are model_bench's (token embedding + learned positions + N post-norm relu encoder layers,
dropout 0, CLS -> LayerNorm -> Linear, cross-entropy, Adam). PyTorch builds the same model from
nn.TransformerEncoderLayer (batch_first, post-norm, relu) in training mode and times the same step: forward,
cross-entropy, backward, Adam step, zero_grad; inference is an eval-mode forward under no_grad.

Method. Every (configuration, threads) pair runs `rounds` times on each side, alternating sides (eigenformer first
on even rounds, PyTorch first on odd ones) so that a change in machine load hits both. Each side runs in its own
process per (configuration, threads, round), so the peak RSS (os.wait4's ru_maxrss) is that configuration's. Both
sides get OMP_WAIT_POLICY=PASSIVE (libgomp's default spin-wait steals the other side's cores on a shared machine),
OMP_NUM_THREADS=threads and no OPENBLAS_CORETYPE (--openblas-coretype sets one for every side). PyTorch gets its
best BLAS set-up on Debian: the OpenMP build of
OpenBLAS (libopenblas0-openmp), preferred through LD_LIBRARY_PATH without touching the system's alternatives; the
worker reports the BLAS library it actually loaded. Both sides also get GLIBC_TUNABLES raising glibc malloc's mmap and
trim thresholds: by default every tensor above the mmap threshold is a fresh mmap, and PyTorch, which allocates its
activations and gradients anew each step, then pays a page fault per 4 KiB page on every step (on our virtual
machines that made its training step 2.5x slower). eigenformer reuses its buffers, so the setting is neutral for it.

Times are medians over every sample (eigenformer: Google Benchmark repetitions; PyTorch: single steps). With one
thread they are CPU times of the process (robust to other load on the machine); with more threads they are
wall-clock times (CPU time would add the threads up), so load on the machine shows in those rows. GFLOP/s counts
model_bench's FLOPs (training = 3x forward) over eigenformer's train step time; "% peak" divides by threads x the
per-core FP32 FMA peak that model_bench's BM_fma_peak measures.

Needs python3-torch (Debian) for the PyTorch side; the standard library otherwise.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name: (vocab, d_model, heads, layers, ffn, seq, batch, classes), as in model_bench.cpp
    "seed": (50, 32, 4, 2, 64, 4, 2, 2),
    "tiny": (8192, 128, 2, 2, 512, 128, 32, 2),
    "mini": (8192, 256, 4, 4, 1024, 128, 16, 2),
    "base-layer": (8192, 768, 12, 1, 3072, 128, 8, 2),
}
OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
# OPENBLAS_CORETYPE for every side (--openblas-coretype); None: unset, OpenBLAS picks its kernels itself.
OPENBLAS_CORETYPE = None
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"


def forward_flops(name):
    """model_bench.cpp's forward_flops: QKV, out-proj, FFN and the two attention products per layer."""
    _, c, _, layers, f, t, b, _ = CONFIGS[name]
    m = b * t
    per_layer = 2 * m * c * 3 * c + 2 * m * c * c + 2 * 2 * m * c * f + 2 * b * t * t * c * 2
    return per_layer * layers


# ----------------------------------------------------------------------------------------------------------------
# PyTorch worker (runs in its own process: python3 compare_pytorch.py --torch-worker CONFIG THREADS SECONDS)


def torch_worker(name, threads, seconds):
    import torch
    import torch.nn as nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vocab, c, heads, layers, ffn, seq, batch, classes = CONFIGS[name]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, c)
            self.pos_embedding = nn.Embedding(seq, c)
            layer = nn.TransformerEncoderLayer(c, heads, ffn, dropout=0.0, activation="relu", batch_first=True,
                                               norm_first=False)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.classifier = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, classes))

        def forward(self, ids):
            h = self.embedding(ids) + self.pos_embedding.weight[: ids.shape[1]]
            return self.classifier(self.encoder(h)[:, 0])

    model = Model()
    opt = torch.optim.Adam(model.parameters())
    ids = torch.randint(0, vocab, (batch, seq))
    labels = torch.arange(batch) % classes

    def train_step():
        loss = nn.functional.cross_entropy(model(ids), labels)
        loss.backward()
        opt.step()
        opt.zero_grad()

    def infer():
        with torch.no_grad():
            model(ids)

    clock = time.process_time if threads == 1 else time.perf_counter

    def samples(fn, warmup):
        model.train(fn is train_step)
        for _ in range(warmup):
            fn()
        out, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(out) < 3:
            t0 = clock()
            fn()
            out.append((clock() - t0) * 1e3)
        return out

    result = {"train_ms": samples(train_step, 2), "infer_ms": samples(infer, 2), "torch": torch.__version__}
    with open("/proc/self/maps") as maps:
        blas = sorted({line.split()[-1] for line in maps if "blas" in line.split()[-1]})
    result["blas"] = blas
    print(json.dumps(result))


# ----------------------------------------------------------------------------------------------------------------
# Parent


def run_wait4(cmd, env):
    """Runs cmd; returns (stdout, peak RSS in MiB of that process alone) using os.wait4."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"compare_pytorch: {' '.join(cmd)} failed with status {proc.returncode}:\n{err[-2000:]}")
    return out, usage.ru_maxrss / 1024.0


def side_env(threads, torch_side):
    env = dict(os.environ)
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(threads)
    env.pop("OPENBLAS_CORETYPE", None)
    if OPENBLAS_CORETYPE:
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
    env.pop("OPENBLAS_NUM_THREADS", None)
    env["GLIBC_TUNABLES"] = GLIBC_TUNABLES
    if torch_side and os.path.isdir(OPENBLAS_OPENMP_DIR):
        rest = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP_DIR + (":" + rest if rest else "")
    return env


def run_eigenformer(bench, name, threads):
    pattern = f"^BM_(train_step|inference)/{name}/threads:{threads}/"  # names hold no regex metacharacters
    cmd = [bench, f"--benchmark_filter={pattern}", "--benchmark_repetitions=3", "--benchmark_min_time=0.3",
           "--benchmark_format=json"]
    out, rss = run_wait4(cmd, side_env(threads, False))
    data = json.loads(out)
    # Google Benchmark's cpu_time is the main thread's: exact with one thread; with more, use wall-clock time.
    key = "cpu_time" if threads == 1 else "real_time"
    train = [b[key] for b in data["benchmarks"] if b.get("run_type") == "iteration" and "train_step" in b["name"]]
    infer = [b[key] for b in data["benchmarks"] if b.get("run_type") == "iteration" and "inference" in b["name"]]
    if not train or not infer:
        sys.exit(f"compare_pytorch: {bench} ran no benchmark matching {pattern}")
    return {"train_ms": train, "infer_ms": infer, "rss": rss}


def run_torch(name, threads, seconds):
    cmd = ["/usr/bin/python3", os.path.abspath(__file__), "--torch-worker", name, str(threads), str(seconds)]
    out, rss = run_wait4(cmd, side_env(threads, True))
    result = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def fma_peak(bench):
    out, _ = run_wait4([bench, "--benchmark_filter=^BM_fma_peak$", "--benchmark_repetitions=3",
                        "--benchmark_format=json"], side_env(1, False))
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    return statistics.median(b["GFLOP/s"] for b in runs)


def machine_line(bench, torch_info):
    model, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    compiler = "unknown compiler"
    try:
        comment = subprocess.run(["readelf", "-p", ".comment", bench], capture_output=True, text=True).stdout
        found = re.findall(r"(GCC: .*|clang version .*)", comment)
        if found:
            compiler = found[-1].strip()
    except OSError:
        pass
    eigen = "unknown"
    try:
        with open("/usr/include/eigen3/Eigen/src/Core/util/Macros.h") as f:
            text = f.read()
        eigen = ".".join(re.search(rf"#define EIGEN_{k}_VERSION (\d+)", text).group(1)
                         for k in ("WORLD", "MAJOR", "MINOR"))
    except (OSError, AttributeError):
        pass
    avx = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "fma", "avx512f"))
    blas = ", ".join(os.path.basename(p) + " (" + os.path.basename(os.path.dirname(p)) + ")"
                     for p in torch_info.get("blas", [])) or "none found"
    return (f"Machine: {model}, {os.cpu_count()} cores, {avx}; eigenformer built with {compiler}, Eigen {eigen}; "
            f"PyTorch {torch_info.get('torch', '?')} with {blas}")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--torch-worker":
        torch_worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_bench", help="path to eigenformer's model_bench executable")
    parser.add_argument("--configs", default="seed,tiny,mini,base-layer")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side per row")
    parser.add_argument("--torch-seconds", type=float, default=1.0, help="timed seconds per PyTorch run and mode")
    parser.add_argument("--json", help="also write the raw samples here")
    parser.add_argument("--baseline", help="another model_bench (the code before a change) to run alongside")
    parser.add_argument("--no-torch", action="store_true", help="with --baseline: leave PyTorch out")
    parser.add_argument("--openblas-coretype", help="OPENBLAS_CORETYPE for every side (default: unset), to time "
                        "the kernels OpenBLAS runs on a CPU it does not know")
    args = parser.parse_args()
    global OPENBLAS_CORETYPE
    OPENBLAS_CORETYPE = args.openblas_coretype
    if args.no_torch and not args.baseline:
        sys.exit("compare_pytorch: --no-torch needs --baseline (there would be nothing to compare)")
    bench = os.path.abspath(args.model_bench)
    baseline = os.path.abspath(args.baseline) if args.baseline else None
    configs = [c for c in args.configs.split(",") if c]
    threads_list = [int(t) for t in args.threads.split(",") if t]
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"compare_pytorch: unknown config '{c}', expected one of {', '.join(CONFIGS)}")

    if not os.path.isdir(OPENBLAS_OPENMP_DIR):
        print(f"compare_pytorch: {OPENBLAS_OPENMP_DIR} is missing: PyTorch runs on the system's default BLAS "
              "(apt-get install libopenblas0-openmp gives it the OpenMP OpenBLAS)", file=sys.stderr)
    start_load = os.getloadavg()
    peak = fma_peak(bench)
    rows, raw, torch_info = [], {}, {}
    sides = ["ef"] + (["base"] if baseline else []) + ([] if args.no_torch else ["pt"])
    for name in configs:
        for threads in threads_list:
            res_by_side = {side: {"train_ms": [], "infer_ms": [], "rss": []} for side in ("ef", "base", "pt")}
            for r in range(args.rounds):
                shift = r % len(sides)  # every side takes every place in the order
                for side in sides[shift:] + sides[:shift]:
                    if side == "pt":
                        res = run_torch(name, threads, args.torch_seconds)
                        torch_info = res
                    else:
                        res = run_eigenformer(bench if side == "ef" else baseline, name, threads)
                    dst = res_by_side[side]
                    dst["train_ms"] += res["train_ms"]
                    dst["infer_ms"] += res["infer_ms"]
                    dst["rss"].append(res["rss"])
                ef = res_by_side["ef"]
                print(f"compare_pytorch: {name} threads={threads} round {r + 1}/{args.rounds}: train ms "
                      f"eigenformer {statistics.median(ef['train_ms']):.3f}"
                      + "".join(f", {label} {statistics.median(res_by_side[k]['train_ms']):.3f}"
                                for k, label in (("base", "baseline"), ("pt", "PyTorch")) if k in sides),
                      file=sys.stderr)
            raw[f"{name}/{threads}"] = {"eigenformer": res_by_side["ef"], "baseline": res_by_side["base"],
                                        "pytorch": res_by_side["pt"]}
            rows.append((name, threads, res_by_side["ef"], res_by_side["pt"], res_by_side["base"]))

    med = statistics.median
    print(machine_line(bench, torch_info))
    print(f"Per-core FP32 FMA peak (BM_fma_peak): {peak:.1f} GFLOP/s. Times: median ms per step, CPU time at 1 "
          f"thread, wall-clock at more; speed-up = PyTorch time / eigenformer time; RSS = peak resident MiB of "
          f"each side's process (max over rounds).")
    if not args.no_torch:
        print()
        print("| config | threads | train ms eigenformer | train ms PyTorch | train speed-up | GFLOP/s | % of peak "
              "| infer ms eigenformer | infer ms PyTorch | infer speed-up | RSS MiB eigenformer | RSS MiB PyTorch "
              "| RSS ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, threads, ef, pt, _ in rows:
            et, pt_t = med(ef["train_ms"]), med(pt["train_ms"])
            ei, pi = med(ef["infer_ms"]), med(pt["infer_ms"])
            gflops = 3 * forward_flops(name) / (et * 1e-3) * 1e-9
            er, pr = max(ef["rss"]), max(pt["rss"])
            print(f"| {name} | {threads} | {et:.3f} | {pt_t:.3f} | {pt_t / et:.2f}x | {gflops:.1f} | "
                  f"{100 * gflops / (threads * peak):.0f}% | {ei:.3f} | {pi:.3f} | {pi / ei:.2f}x | {er:.0f} | "
                  f"{pr:.0f} | {er / pr:.2f} |")
    if baseline:
        print()
        print(f"Before (baseline: {args.baseline}) and after (this build: {args.model_bench}); ratio = before / after "
              "(above 1: this build is faster).")
        print()
        print("| config | threads | train ms before | train ms after | train ratio | infer ms before | infer ms after "
              "| infer ratio | RSS MiB before | RSS MiB after |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, threads, ef, _, base in rows:
            bt, et = med(base["train_ms"]), med(ef["train_ms"])
            bi, ei = med(base["infer_ms"]), med(ef["infer_ms"])
            print(f"| {name} | {threads} | {bt:.3f} | {et:.3f} | {bt / et:.3f} | {bi:.3f} | {ei:.3f} | {bi / ei:.3f} | "
                  f"{max(base['rss']):.0f} | {max(ef['rss']):.0f} |")
    end_load = os.getloadavg()
    print()
    print(f"Load average at start {start_load[0]:.1f}, at end {end_load[0]:.1f} (2 = both cores busy before we ran).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak, "rows": raw}, f, indent=1)


if __name__ == "__main__":
    main()
