#!/usr/bin/env bash
# Installs ONNX Runtime's Node.js package (its CPU library ships inside it) for benchmarks/compare_bert.py, into
# <repo>/data/onnxruntime (git-ignored). --ignore-scripts: the package's install script downloads GPU libraries,
# which the comparison does not use.
# Usage: scripts/fetch_onnxruntime.sh [out_dir]      Needs node and npm.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo_dir/data/onnxruntime}"
version="1.30.0"
for tool in npm node; do
  command -v "$tool" >/dev/null || { echo "fetch_onnxruntime: $tool is not installed (apt-get install nodejs npm)" >&2; exit 1; }
done
mkdir -p "$out_dir"
if [[ -f "$out_dir/node_modules/onnxruntime-node/package.json" ]] &&
   grep -q "\"version\": \"$version\"" "$out_dir/node_modules/onnxruntime-node/package.json"; then
  echo "fetch_onnxruntime: onnxruntime-node $version is already in $out_dir"
  exit 0
fi
cd "$out_dir"
[[ -f package.json ]] || echo '{"name": "eigenformer-onnxruntime", "private": true}' > package.json
npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$version"
node -e "require('onnxruntime-node'); console.log('fetch_onnxruntime: onnxruntime-node ' + require('onnxruntime-node/package.json').version + ' in $out_dir')"
