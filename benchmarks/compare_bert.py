#!/usr/bin/env python3
"""Times a BERT-base-shaped classifier in eigenformer, PyTorch and ONNX Runtime side by side, in one run.

Usage: /usr/bin/python3 benchmarks/compare_bert.py build/release/benchmarks/model_bench
         [--threads 2] [--rounds 5] [--precision highest|medium] [--ort-dir data/onnxruntime] [--json out.json]
         [--openblas-coretype NAME]

The model: BertForSequenceClassification with bert-base's shape (12 layers, 768 wide, 12 heads, 3,072 feed-forward,
vocabulary 30,522), 2 labels, dropout 0, random weights; batch 8 x sequence 128, no padding. eigenformer runs
model_bench's BM_bert_train_step/bert-base and BM_bert_inference/bert-base; PyTorch runs the same model from
tests/reference/hf_bert.py (transformers' modules re-implemented, eager attention): a training step is forward,
cross-entropy, backward, Adam step, zero_grad; inference is an eval-mode forward under no_grad. ONNX Runtime runs
that PyTorch model exported with torch.onnx.export (opset 14, fixed shapes), through the npm package
onnxruntime-node (its CPU library), graph optimization level "all", intra-op threads = --threads, one inter-op
thread, sequential execution. scripts/fetch_onnxruntime.sh installs it into --ort-dir.

--precision medium runs eigenformer's bert-base-medium benchmarks (set_float32_matmul_precision("medium"): matrix
products in bf16 with float sums on CPUs with AVX512_BF16) and adds a fourth side, PyTorch with its forward under
torch.autocast("cpu", dtype=torch.bfloat16); ONNX Runtime stays in float.

Method (as benchmarks/compare_pytorch.py): every round runs each side in its own process, the order rotating from
round to round; times are medians over every sample (wall-clock: with more than one thread CPU time would add the
threads up); RSS is each process's peak (os.wait4). All sides get OMP_WAIT_POLICY=PASSIVE, OMP_NUM_THREADS and no
OPENBLAS_CORETYPE (--openblas-coretype sets one for every side); PyTorch gets the OpenMP build of OpenBLAS when
libopenblas0-openmp is installed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHAPE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
             intermediate_size=3072, max_position_embeddings=512)
BATCH, SEQ, LABELS = 8, 128, 2
OPENBLAS_OPENMP_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
# OPENBLAS_CORETYPE for every side (--openblas-coretype); None: unset, OpenBLAS picks its kernels itself.
OPENBLAS_CORETYPE = None
GLIBC_TUNABLES = "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295"

ORT_RUNNER = r"""
// Runs one ONNX model with onnxruntime-node and prints the median and samples of its forward times as JSON.
const ort = require(process.env.ORT_MODULE);
const [model, threads, seconds, batch, seq, vocab] = process.argv.slice(2);
(async () => {
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: Number(threads),
    interOpNumThreads: 1, executionMode: 'sequential'});
  const n = Number(batch) * Number(seq);
  const ids = new BigInt64Array(n), mask = new BigInt64Array(n), types = new BigInt64Array(n);
  let s = 12345;
  for (let i = 0; i < n; ++i) { s = (s * 1103515245 + 12345) % 2147483648; ids[i] = BigInt(s % Number(vocab)); mask[i] = 1n; }
  const dims = [Number(batch), Number(seq)];
  const feeds = {input_ids: new ort.Tensor('int64', ids, dims), attention_mask: new ort.Tensor('int64', mask, dims),
                 token_type_ids: new ort.Tensor('int64', types, dims)};
  for (let i = 0; i < 3; ++i) await session.run(feeds);
  const samples = [];
  const start = process.hrtime.bigint();
  while (Number(process.hrtime.bigint() - start) / 1e9 < Number(seconds) || samples.length < 5) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  console.log(JSON.stringify({infer_ms: samples, ort: require(process.env.ORT_MODULE + '/package.json').version}));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def make_model(torch):
    sys.path.insert(0, os.path.join(REPO, "tests", "reference"))
    import hf_bert  # noqa: E402  (the reference re-implementation of transformers' BERT)
    config = hf_bert.BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=LABELS,
                                **SHAPE)
    torch.manual_seed(0)
    return hf_bert.BertForSequenceClassification(config)


def torch_worker(threads, seconds, precision):
    import contextlib
    import torch
    torch.set_num_threads(threads)
    model = make_model(torch)
    opt = torch.optim.Adam(model.parameters())
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, SHAPE["vocab_size"], (BATCH, SEQ), generator=gen)
    labels = torch.arange(BATCH) % LABELS

    def cast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "medium" else contextlib.nullcontext()

    def train_step():
        with cast():
            out = model(input_ids=ids, labels=labels)
        out["loss"].backward()
        opt.step()
        opt.zero_grad()

    def infer():
        with torch.no_grad(), cast():
            model(input_ids=ids)

    def samples(fn, train):
        model.train(train)
        for _ in range(2):
            fn()
        out, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(out) < 3:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    print(json.dumps({"train_ms": samples(train_step, True), "infer_ms": samples(infer, False),
                      "torch": torch.__version__}))


def export_onnx(path):
    import torch
    model = make_model(torch).eval()

    class Logits(torch.nn.Module):  # the classifier's logits alone, with transformers' input names
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids)["logits"]

    ids = torch.zeros(BATCH, SEQ, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(Logits(model), (ids, torch.ones_like(ids), torch.zeros_like(ids)), path, opset_version=14,
                          input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"])


def run_wait4(cmd, env):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compare_bert: {' '.join(cmd)} failed:\n{err[-2000:]}")
    return out, usage.ru_maxrss / 1024.0


def side_env(threads, torch_side):
    env = dict(os.environ)
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads), GLIBC_TUNABLES=GLIBC_TUNABLES)
    env.pop("OPENBLAS_CORETYPE", None)
    if OPENBLAS_CORETYPE:
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
    env.pop("OPENBLAS_NUM_THREADS", None)
    if torch_side and os.path.isdir(OPENBLAS_OPENMP_DIR):
        env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP_DIR + (":" + env["LD_LIBRARY_PATH"] if "LD_LIBRARY_PATH" in env else "")
    return env


def run_eigenformer(bench, threads, precision):
    model = "bert-base-medium" if precision == "medium" else "bert-base"
    pattern = f"^BM_bert_(train_step|inference)/{model}/threads:{threads}/"
    out, rss = run_wait4([bench, f"--benchmark_filter={pattern}", "--benchmark_repetitions=3",
                          "--benchmark_min_time=0.5", "--benchmark_format=json"], side_env(threads, False))
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    train = [b["real_time"] for b in runs if "train_step" in b["name"]]
    infer = [b["real_time"] for b in runs if "inference" in b["name"]]
    if not train or not infer:
        sys.exit(f"compare_bert: {bench} ran no benchmark matching {pattern}")
    return {"train_ms": train, "infer_ms": infer, "rss": rss}


def run_torch(threads, seconds, precision):
    out, rss = run_wait4(["/usr/bin/python3", os.path.abspath(__file__), "--torch-worker", str(threads), str(seconds),
                          precision], side_env(threads, True))
    result = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def run_ort(runner, module, model, threads, seconds):
    env = side_env(threads, False)
    env["ORT_MODULE"] = module
    out, rss = run_wait4(["node", runner, model, str(threads), str(seconds), str(BATCH), str(SEQ),
                          str(SHAPE["vocab_size"])], env)
    result = json.loads(out.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--torch-worker":
        torch_worker(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per PyTorch / ONNX Runtime run")
    parser.add_argument("--precision", choices=["highest", "medium"], default="highest",
                        help="eigenformer's float32 matmul precision (medium also times PyTorch under bf16 autocast)")
    parser.add_argument("--ort-dir", default=os.path.join(REPO, "data", "onnxruntime"))
    parser.add_argument("--json")
    parser.add_argument("--openblas-coretype", help="OPENBLAS_CORETYPE for every side (default: unset), to time "
                        "the kernels OpenBLAS runs on a CPU it does not know")
    args = parser.parse_args()
    global OPENBLAS_CORETYPE
    OPENBLAS_CORETYPE = args.openblas_coretype
    bench = os.path.abspath(args.model_bench)
    module = os.path.join(args.ort_dir, "node_modules", "onnxruntime-node")
    if not os.path.isdir(module):
        sys.exit(f"compare_bert: {module} is missing: run scripts/fetch_onnxruntime.sh")
    model = os.path.join(args.ort_dir, f"bert-base-b{BATCH}-t{SEQ}.onnx")
    if not os.path.exists(model):
        print(f"compare_bert: exporting the model to {model}", file=sys.stderr)
        export_onnx(model)
    runner = os.path.join(tempfile.mkdtemp(), "ort_runner.js")
    with open(runner, "w") as f:
        f.write(ORT_RUNNER)

    sides = ["ef", "pt", "ort"] + (["pt-bf16"] if args.precision == "medium" else [])
    res = {s: {"train_ms": [], "infer_ms": [], "rss": []} for s in sides}
    info = {}
    start_load = os.getloadavg()
    for r in range(args.rounds):
        shift = r % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if side == "ef":
                out = run_eigenformer(bench, args.threads, args.precision)
            elif side in ("pt", "pt-bf16"):
                out = run_torch(args.threads, args.seconds, "medium" if side == "pt-bf16" else "highest")
                info["torch"] = out["torch"]
            else:
                out = run_ort(runner, module, model, args.threads, args.seconds)
                info["ort"] = out["ort"]
            for k in ("train_ms", "infer_ms"):
                res[side][k] += out.get(k, [])
            res[side]["rss"].append(out["rss"])
        med = {s: statistics.median(res[s]["infer_ms"]) for s in sides}
        print(f"compare_bert: round {r + 1}/{args.rounds}: inference ms eigenformer {med['ef']:.1f}, PyTorch "
              f"{med['pt']:.1f}, ONNX Runtime {med['ort']:.1f}", file=sys.stderr)
    end_load = os.getloadavg()
    m = {s: {k: statistics.median(v) for k, v in res[s].items() if v and k != "rss"} for s in sides}
    print(f"BERT-base classifier, batch {BATCH} x sequence {SEQ}, {args.threads} threads, {args.rounds} rounds, "
          f"eigenformer's matmul precision {args.precision}; "
          f"PyTorch {info.get('torch')}, ONNX Runtime {info.get('ort')} (optimization level all, sequential); "
          f"load average {start_load[0]:.1f} at the start, {end_load[0]:.1f} at the end.")
    print()
    print("| side | training step ms | inference ms | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    names = {"ef": "eigenformer", "pt": "PyTorch", "ort": "ONNX Runtime", "pt-bf16": "PyTorch bf16 autocast"}
    for s in sides:
        train = f"{m[s]['train_ms']:.1f}" if "train_ms" in m[s] else "-"
        print(f"| {names[s]} | {train} | {m[s]['infer_ms']:.1f} | {max(res[s]['rss']):.0f} |")
    print()
    print(f"Inference: {m['ort']['infer_ms'] / m['ef']['infer_ms']:.2f}x ONNX Runtime, "
          f"{m['pt']['infer_ms'] / m['ef']['infer_ms']:.2f}x PyTorch; training step: "
          f"{m['pt']['train_ms'] / m['ef']['train_ms']:.2f}x PyTorch (time of the other / eigenformer's).")
    if "pt-bf16" in m:
        print(f"Against PyTorch under bf16 autocast: inference {m['pt-bf16']['infer_ms'] / m['ef']['infer_ms']:.2f}x, "
              f"training step {m['pt-bf16']['train_ms'] / m['ef']['train_ms']:.2f}x.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
