#!/usr/bin/env bash
# Memory of one node under the saga workload: runs `bazaar loadgen --workload saga` (release
# build) for ORDERS orders with 16 customers, samples its resident memory every SAMPLE_S seconds
# over the run and while it stays idle for HOLD_S seconds afterwards (entities are passivated
# after the node's idle time, 60 s by default), and prints the samples and a summary.
#   ORDERS=50000 HOLD_S=75 bash benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${ORDERS:-50000}
HOLD_S=${HOLD_S:-75}
SAMPLE_S=${SAMPLE_S:-5}
WRITERS=16
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
./target/release/bazaar loadgen --workload saga --data-dir "$dir/data" --writers $WRITERS \
  --ops $(( (ORDERS + WRITERS - 1) / WRITERS )) --hold-s "$HOLD_S" > "$dir/out" 2>/dev/null &
pid=$!
start=$(date +%s)
done_at=""
echo "seconds rss_mib live_entities"
while kill -0 $pid 2>/dev/null; do
  rss=$(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status 2>/dev/null || true)
  live=$(grep '^live entities' "$dir/out" | tail -1 | awk '{print $3}')
  [ -z "$done_at" ] && grep -q '^done' "$dir/out" && done_at=$(( $(date +%s) - start ))
  [ -n "$rss" ] && echo "$(( $(date +%s) - start )) $rss ${live:--}"
  sleep "$SAMPLE_S"
done
wait $pid
echo "workload of $(grep '^done' "$dir/out" | awk '{print $2}') sagas took ${done_at:-?} s; data dir $(du -sh "$dir/data" 2>/dev/null | cut -f1 || echo gone)"
