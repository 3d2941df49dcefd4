#!/usr/bin/env bash
# Per-step overhead: `stockade run` on a job of N `true` steps against N x `podman run --rm IMAGE true`
# through the CLI (rootless, same user, same image), measured side by side. Prints ms per step and the ratio.
# Usage: bash bench/step-overhead.sh [N] [ROUNDS]   (as root, after `stockade setup`)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}; ROUNDS=${2:-3}
U=${STOCKADE_USER:-stockade}; UID_=$(id -u "$U")
IMAGE=$(node dist/cli.js doctor | sed -n 's/.*base image: //p')
REPO=$(mktemp -d); mkdir -p "$REPO/.github/workflows"
{ echo "on: push"; echo "jobs:"; echo "  bench:"; echo "    runs-on: x"; echo "    steps:"; for i in $(seq "$N"); do echo "      - run: \"true\""; done; } > "$REPO/.github/workflows/b.yml"
ms() { date +%s%N | cut -c1-13; }
for r in $(seq "$ROUNDS"); do
  t0=$(ms); node dist/cli.js run -C "$REPO" --json > /dev/null; t1=$(ms)
  runuser -u "$U" -- env XDG_RUNTIME_DIR=/run/user/$UID_ HOME=$(getent passwd "$U" | cut -d: -f6) sh -c "cd /; for i in \$(seq $N); do podman run --rm --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 $IMAGE true; done"
  t2=$(ms)
  s=$(( (t1 - t0) / N )); p=$(( (t2 - t1) / N ))
  echo "round $r: stockade run ${s} ms/step (whole job incl. start-up and volumes), podman run --rm ${p} ms/step, ratio $(awk "BEGIN{printf \"%.2f\", $s/$p}")"
done
rm -rf "$REPO"
