#!/usr/bin/env bash
# HTTP front throughput with wrk (64 connections, 2 threads): GET /health (the floor: routing,
# no service), GET /product/{id} (the catalogue view) and POST /calcPrice (pricing with a promo
# code through the promocode projection actor). Runs the three interleaved, ROUNDS times,
# against one release `bazaar serve --demo`, and prints each median and the ratios to /health.
# Installs wrk from Debian when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release --locked --quiet
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
RUST_LOG=warn target/release/bazaar serve --demo --data-dir "$data" --http "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data" "$lua"' EXIT
python3 - "$base" <<'PY'
import sys, time, urllib.request
for _ in range(600):
    try:
        urllib.request.urlopen(sys.argv[1] + "/product/book-jane-eyre", timeout=1).read()
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("bazaar serve did not come up")
PY
lua=$(mktemp --suffix .lua)
cat >"$lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"itemsList":[{"id":"book-war-and-peace","quantity":1},{"id":"book-don-quixote","quantity":2}],"promoCode":"CLASSICS5"}'
LUA
# Every answer must be a 200: check once before measuring.
python3 - "$base" <<'PY'
import json, sys, urllib.request
b = sys.argv[1]
body = json.dumps({"itemsList": [{"id": "book-war-and-peace", "quantity": 1}, {"id": "book-don-quixote", "quantity": 2}], "promoCode": "CLASSICS5"}).encode()
r = urllib.request.urlopen(urllib.request.Request(b + "/calcPrice", body, {"Content-Type": "application/json"}))
assert r.status == 200, r.status
print("calcPrice answer:", r.read().decode())
PY

rps() { # url [script] → requests/s; fails on any non-2xx answer
  local out
  if [ $# -gt 1 ]; then out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$2" "$1"); else out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" "$1"); fi
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers from $1:" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
health=(); product=(); calc=()
for r in $(seq 1 "$ROUNDS"); do
  health+=("$(rps "$base/health")")
  product+=("$(rps "$base/product/book-jane-eyre")")
  calc+=("$(rps "$base/calcPrice" "$lua")")
  echo "round $r: health ${health[-1]}  product ${product[-1]}  calcPrice ${calc[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
h=$(median "${health[@]}"); p=$(median "${product[@]}"); c=$(median "${calc[@]}")
printf 'http GET /health: %.0f requests/s\n' "$h"
pct() { python3 -c "print(round(100*$1/$2))"; }
printf 'http GET /product/{id}: %.0f requests/s (%s%% of /health)\n' "$p" "$(pct "$p" "$h")"
printf 'http POST /calcPrice: %.0f requests/s (%s%% of /health)\n' "$c" "$(pct "$c" "$h")"
rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
echo "server peak RSS: $((rss / 1024)) MiB"
