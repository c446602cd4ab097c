#!/usr/bin/env python3
"""The paper side of docs/distributed.md: bytes all-reduced per step, ring all-reduce time and the scaling
efficiency of data-parallel training on N nodes, from the model sizes and a measured step time.

Ring all-reduce of S bytes over N nodes (Patarasuk and Yuan 2009): each node sends and receives 2 (N - 1) / N * S
bytes in 2 (N - 1) rounds, so  t = 2 (N - 1) / N * S / bandwidth + 2 (N - 1) * buckets * latency.
Weak scaling (each node keeps its batch): a step costs compute + exposed communication. Without overlap all of t
is exposed. With overlap the sums run under the backward pass (about its share of the step), except the gradients
that are final only when the backward ends, the embeddings' (the first layer is the last to get its gradient):
exposed = max(t_embeddings, t - overlap * compute), efficiency = compute / (compute + exposed).

    python3 benchmarks/dist/allreduce_model.py --step-s tiny=0.09 mini=0.3 base-layer=0.35 bert-base=5.0
"""
import argparse

# Trainable parameters (fp32 gradients, 4 bytes each): model_bench's encoder classifiers and a BERT-base classifier
# (bert-base-uncased, 2 labels). Counts from the modules' shapes; dist_step prints the same for the first three.
PARAMS = {"tiny": 1_462_018, "mini": 5_289_986, "base-layer": 13_480_706, "bert-base": 109_483_778}
# Of which the embeddings (token and position tables; BERT's token types and LayerNorm too): the last gradients
# of the backward pass.
EMBEDDINGS = {"tiny": 1_064_960, "mini": 2_129_920, "base-layer": 6_389_760, "bert-base": 23_837_184}


def ring_seconds(size_bytes, nodes_n, bandwidth, messages, latency_s):
    return 2 * (nodes_n - 1) / nodes_n * size_bytes / bandwidth + 2 * (nodes_n - 1) * messages * latency_s


def buckets(size_bytes, first_mib, bucket_mib):
    first = first_mib * 2**20
    return 1 if size_bytes <= first else 1 + int(-(-(size_bytes - first) // (bucket_mib * 2**20)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--step-s", nargs="*", default=[], help="measured compute time of a step: config=seconds")
    p.add_argument("--latency-us", type=float, default=10.0, help="per-message latency (TCP over Ethernet: ~10)")
    p.add_argument("--overlap", type=float, default=0.6, help="share of a step the sums can hide under (backward)")
    p.add_argument("--first-bucket-mib", type=float, default=1.0)
    p.add_argument("--bucket-mib", type=float, default=4.0)
    a = p.parse_args()
    steps = {k: float(v) for k, v in (s.split("=") for s in a.step_s)}
    nodes = [2, 4, 8, 16, 32, 64]
    print("| model | parameters | MB all-reduced per step | buckets |")
    print("|---|---:|---:|---:|")
    for name, n in PARAMS.items():
        size = 4 * n
        print(f"| {name} | {n:,} | {size / 1e6:.1f} | {buckets(size, a.first_bucket_mib, a.bucket_mib)} |")
    for gbit in (10, 100):
        bandwidth = gbit * 1e9 / 8
        print(f"\nRing all-reduce at {gbit} Gbit/s, latency {a.latency_us:g} us: time in ms "
              f"(scaling efficiency with overlap / without)")
        print("| model | step s | " + " | ".join(f"N = {n}" for n in nodes) + " |")
        print("|---|---:|" + "---:|" * len(nodes))
        for name, n in PARAMS.items():
            size = 4 * n
            k = buckets(size, a.first_bucket_mib, a.bucket_mib)
            tail_size = 4 * EMBEDDINGS[name]
            tail_k = buckets(tail_size, a.bucket_mib, a.bucket_mib)
            step = steps.get(name)
            cells = []
            for nodes_n in nodes:
                t = ring_seconds(size, nodes_n, bandwidth, k, a.latency_us * 1e-6)
                if step:
                    tail = ring_seconds(tail_size, nodes_n, bandwidth, tail_k, a.latency_us * 1e-6)
                    exposed = max(tail, t - a.overlap * step)
                    cells.append(f"{t * 1e3:.0f} ({step / (step + exposed):.0%} / {step / (step + t):.0%})")
                else:
                    cells.append(f"{t * 1e3:.0f}")
            print(f"| {name} | {step if step else '-'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
