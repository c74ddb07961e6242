#!/usr/bin/env bash
# benches/vs-postgres.sh — bazaar against the PostgreSQL outbox baseline, interleaved in rounds.
#
# Each round runs, back to back on the same machine:
#   1. ../shared/bench/pg-outbox.sh once per setting (pgbench over the Unix socket, the step's
#      statements pipelined, the outbox relay running; synchronous_commit on and off; 1 and 64
#      clients), RUNS=1 so that every round holds one run of each;
#   2. `cargo bench --bench engine`, one run per setting (durability flush and none; 1 and 64 writers);
#   3. `cargo bench --bench saga`, one run (durability flush, 64 customers).
# Then it prints every round and the medians over the rounds, and the ratios per round:
#   engine flush vs PostgreSQL sync=on, and none vs sync=off, at the same number of clients
#   (durable steps/s against durable steps/s), and the saga's durable steps/s against
#   PostgreSQL's at 64 clients (an equal number of durable steps per saga).
# Interleaving is what makes the ratios mean something on a shared, noisy machine: the
# absolute figures drift by tens of percent within an hour, the ratio of one round much less.
#
# Usage: sudo bash benches/vs-postgres.sh            (root: pg-outbox.sh installs and runs PostgreSQL)
# Env:   ROUNDS=5  PG_SECS=15  SECS=5  LOG=<file>  (every raw line is kept in LOG)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-5}"
PG_SECS="${PG_SECS:-15}"
SECS="${SECS:-5}"
LOG="${LOG:-$(mktemp /tmp/vs-postgres.XXXXXX.log)}"
PG="../shared/bench/pg-outbox.sh"
[ -f "$PG" ] || { echo "$PG not found (../shared beside the project root)" >&2; exit 2; }

cargo bench --locked --no-run >/dev/null 2>&1 || cargo bench --locked --no-run
echo "$(date -u +%FT%TZ) $(nproc) cores, $ROUNDS rounds; raw lines in $LOG" | tee "$LOG"
for r in $(seq "$ROUNDS"); do
  echo "round $r" | tee -a "$LOG"
  DURATION="$PG_SECS" RUNS=1 SYNCS="on off" CLIENTS="1 64" bash "$PG" 2>&1 \
    | grep -E '^(postgres |pg-outbox sync=)' | sort -u | sed "s/^/r$r /" | tee -a "$LOG"
  BAZAAR_BENCH_RUNS=1 BAZAAR_BENCH_SECS="$SECS" cargo bench --locked --bench engine 2>/dev/null \
    | grep -E '^(engine durability|  relay)' | sed "s/^/r$r /" | tee -a "$LOG"
  BAZAAR_BENCH_RUNS=1 BAZAAR_BENCH_SECS="$SECS" BAZAAR_BENCH_ONLY=flush cargo bench --locked --bench saga 2>/dev/null \
    | grep -E '^saga durability' | sed "s/^/r$r /" | tee -a "$LOG"
done

python3 - "$LOG" <<'PY'
import re, statistics, sys
rounds = {}
for line in open(sys.argv[1]):
    m = re.match(r"r(\d+) (.*)", line)
    if not m:
        continue
    r, text = int(m.group(1)), m.group(2)
    d = rounds.setdefault(r, {})
    if (p := re.match(r"pg-outbox sync=(\w+) c=(\d+): (\d+) tps", text)):
        d[f"pg sync={p.group(1)} c={p.group(2)}"] = float(p.group(3))
    elif (e := re.match(r"engine durability=(\w+) writers=(\d+): (\d+) commits/s", text)):
        d[f"engine {e.group(1)} w={e.group(2)}"] = float(e.group(3))
    elif (s := re.match(r"saga durability=(\w+) customers=(\d+): (\d+) sagas/s, (\d+) steps/s", text)):
        d[f"saga {s.group(1)} sagas/s"] = float(s.group(3))
        d[f"saga {s.group(1)} steps/s"] = float(s.group(4))
pairs = [
    ("engine flush w=1", "pg sync=on c=1"),
    ("engine flush w=64", "pg sync=on c=64"),
    ("engine none w=1", "pg sync=off c=1"),
    ("engine none w=64", "pg sync=off c=64"),
    ("saga flush steps/s", "pg sync=on c=64"),
]
keys = sorted({k for d in rounds.values() for k in d})
print("\nper round:")
for r in sorted(rounds):
    print(f"  round {r}: " + ", ".join(f"{k} {rounds[r][k]:.0f}" for k in keys if k in rounds[r]))
print("\nmedians over the rounds:")
for k in keys:
    vals = [rounds[r][k] for r in sorted(rounds) if k in rounds[r]]
    print(f"  {k}: {statistics.median(vals):.0f}  (rounds {', '.join(f'{v:.0f}' for v in vals)})")
print("\nratios, round by round (median):")
for a, b in pairs:
    ratios = [rounds[r][a] / rounds[r][b] for r in sorted(rounds) if a in rounds[r] and b in rounds[r]]
    if ratios:
        print(f"  {a} / {b}: {statistics.median(ratios):.2f}x  (rounds {', '.join(f'{x:.2f}' for x in ratios)})")
PY
