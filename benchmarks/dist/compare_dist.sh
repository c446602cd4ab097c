#!/usr/bin/env bash
# 1 rank x 2 threads against 2 ranks x 1 thread, alternating, for model_bench's tiny, mini and base-layer
# configurations; prints each run's line and the medians. Usage:
#   benchmarks/dist/compare_dist.sh [BUILD_DIR] [ROUNDS]      (default build/release, 5 rounds)
set -euo pipefail
build=${1:-build/release}
rounds=${2:-5}
program=$build/benchmarks/dist/dist_step
unset OPENBLAS_CORETYPE  # some shells pin OpenBLAS to Haswell kernels: measure with the machine's own
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
out=$(mktemp)
for config in tiny mini base-layer; do
  for round in $(seq "$rounds"); do
    OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 mpirun -np 1 --bind-to none "$program" --config "$config" | tee -a "$out"
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 mpirun -np 2 --bind-to core "$program" --config "$config" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.search(r"config (\S+) ranks (\d+) .*step_ms ([\d.]+) allreduce_wait_ms ([\d.]+)", line)
    if m:  # "batch 32 (per rank 16)" does not split into pairs: read the fields by name
        rows.setdefault((m[1], m[2]), []).append((float(m[3]), float(m[4])))
print("| config | 1 rank x 2 threads step ms | 2 ranks x 1 thread step ms | wait ms | ratio (1x2 / 2x1) |")
print("|---|---|---|---|---|")
for config in ("tiny", "mini", "base-layer"):
    one, two = rows.get((config, "1"), []), rows.get((config, "2"), [])
    if not one or not two:
        continue
    a = statistics.median(s for s, _ in one)
    b = statistics.median(s for s, _ in two)
    w = statistics.median(w for _, w in two)
    print(f"| {config} | {a:.1f} | {b:.1f} | {w:.1f} | {a / b:.2f} |")
PY
rm -f "$out"
