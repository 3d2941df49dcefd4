#!/usr/bin/env bash
# Cost of a job's own disk (issue 13, item 8): a one-step job with --disk off and with the default
# 10 GiB disk, interleaved in one run, N rounds each; prints the median of each and the difference.
# Usage: bash bench/job-disk.sh [N]   (after `stockade setup`, as root)
set -euo pipefail
n=${1:-10}
cli="$(cd "$(dirname "$0")/.." && pwd)/dist/cli.js"
dir=$(mktemp -d)
mkdir -p "$dir/.github/workflows"
printf 'on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: "true"\n' > "$dir/.github/workflows/ci.yml"
declare -a off on
for ((i = 0; i < n; i++)); do
  for mode in off 10g; do
    s=$(date +%s%N); node "$cli" run -C "$dir" --disk "$mode" > /dev/null; e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ "$mode" = off ]; then off+=("$ms"); else on+=("$ms"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }
mo=$(median "${off[@]}"); mn=$(median "${on[@]}")
echo "one-step job, median of $n: --disk off ${mo} ms, --disk 10g ${mn} ms, difference $((mn - mo)) ms per job"
rm -rf "$dir"
