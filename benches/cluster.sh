#!/usr/bin/env bash
# Sagas over HTTP against one node and against a three-node cluster on this machine, side by
# side: the same client (CLIENTS shoppers, each placing an order of two books, paying it in full
# through the sandbox and waiting for PAID, again and again for DURATION seconds), the same
# books, the same release binary. Prints sagas/s, the CPU the bazaar processes used per saga
# (utime + stime from /proc), and the remote calls per saga (commands and event deliveries sent
# to another node's gateway, from each node's /metrics). Modes alternate, ROUNDS each.
#
# On a two-core machine three nodes share the same two cores the one node has: this measures
# what distribution costs, not what it scales to.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-16}
cargo build --release --locked --quiet
bin=target/release/bazaar
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
export BAZAAR_JWT_SECRET=bench-cluster-token-key-of-40-bytes-abcd BAZAAR_PAYMENT_SECRET=bench-payment-secret
ports() { python3 -c 'import socket
ss=[socket.socket() for _ in range(6)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))'; }

run() { # nodes → one result line
  local n=$1 dir="$work/run-$RANDOM" p
  mkdir -p "$dir"
  read -r -a p <<<"$(ports)"
  {
    echo 'cookie = "bench-cookie"'
    for i in $(seq 0 $((n - 1))); do
      printf '[[node]]\nname = "node-%d"\ncluster_addr = "127.0.0.1:%d"\nhttp_addr = "127.0.0.1:%d"\ndata_dir = "d%d"\n' \
        $((i + 1)) "${p[$((2 * i + 1))]}" "${p[$((2 * i))]}" "$i"
    done
  } >"$dir/cluster.toml"
  # The staff on every node's data directory (whichever node owns the account has it).
  for i in $(seq 0 $((n - 1))); do
    $bin user add --data-dir "$dir/d$i" --email admin@bench.test --password admin-bench-pass --role ADMIN >/dev/null 2>&1
    $bin user add --data-dir "$dir/d$i" --email stock@bench.test --password stock-bench-pass --role STOCK_OPERATOR >/dev/null 2>&1
  done
  pids=()
  local bases=()
  for i in $(seq 0 $((n - 1))); do
    RUST_LOG=error $bin serve --config "$dir/cluster.toml" --node "node-$((i + 1))" >"$dir/node-$i.log" 2>&1 &
    pids+=($!)
    bases+=("http://127.0.0.1:${p[$((2 * i))]}")
  done
  python3 - "$DURATION" "$CLIENTS" "${pids[*]}" "${bases[@]}" <<'PY' || { tail -n 20 "$dir"/node-*.log >&2; exit 1; }
import base64, json, re, sys, threading, time, urllib.error, urllib.parse, urllib.request
duration, clients, pids, bases = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(), sys.argv[4:]

def call(base, method, path, token=None, body=None, form=None, basic=None):
    headers = {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = "Bearer " + token
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    req = urllib.request.Request(base + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get("content-type", "").startswith("application/json") else raw)
    except urllib.error.HTTPError as e:
        return e.code, e.read()

def until(what, f, limit=60):
    end = time.time() + limit
    while time.time() < end:
        try:
            if f():
                return
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit("never: " + what)

for b in bases:
    until(b + " up", lambda b=b: call(b, "GET", "/health")[0] == 200)
def token(base, who):
    s, t = call(base, "GET", "/token", basic=who)
    return t["token"] if s == 200 else None
admin = None
def login():
    global admin
    admin = token(bases[0], "admin@bench.test:admin-bench-pass")
    return admin
until("admin login", login)
# The cluster sees itself whole before the load.
until("every peer reachable", lambda: all(
    all(n["reachable"] for n in call(b, "GET", "/cluster", admin)[1]["nodes"]) for b in bases))
stock = token(bases[0], "stock@bench.test:stock-bench-pass")
books = ["bench-book-%d" % i for i in range(12)]
for i, bk in enumerate(books):
    s, _ = call(bases[0], "POST", "/product/add", admin, {"id": bk, "name": bk, "description": "a bench book", "price": 500 + i})
    assert s == 201, s
    s, _ = call(bases[0], "POST", "/stock/items", stock, {"id": bk, "quantity": 1000000, "weight": 1, "length": 1, "width": 1, "height": 1})
    assert s == 200, s
shoppers = []
for c in range(clients):
    b = bases[c % len(bases)]
    email = "shopper%d@bench.test" % c
    s, _ = call(b, "POST", "/customer", None, {"email": email, "password": "bench-password", "name": "B", "lastName": "S",
                                               "communications": [{"type": "EMAIL", "address": email}]})
    assert s == 201, s
    got = []
    until("shopper login", lambda: got.append(token(b, email + ":bench-password")) or got[-1])
    shoppers.append((b, got[-1]))

def remote_calls():
    """(commands sent to another node, events delivered to another node, durable commits)."""
    out = [0.0, 0.0, 0.0]
    for b in bases:
        _, m = call(b, "GET", "/metrics")
        for line in m.decode().splitlines():
            v = float(line.rsplit(" ", 1)[1]) if " " in line and not line.startswith("#") else 0.0
            if line.startswith("cluster_remote_calls_total") and 'kind="command"' in line:
                out[0] += v
            elif line.startswith("cluster_remote_events_total"):
                out[1] += v
            elif line.startswith("commit_write_sets_total"):
                out[2] += v
    return out

def cpu():
    ticks = 0
    for p in pids:
        f = open("/proc/%s/stat" % p).read().rsplit(")", 1)[1].split()
        ticks += int(f[11]) + int(f[12])
    return ticks / 100.0

done = [0]
errors = [0]
lock = threading.Lock()
stop = time.time() + duration
def shopper(i):
    b, t = shoppers[i]
    n = 0
    while time.time() < stop:
        lines = [{"id": books[(i + n) % len(books)], "quantity": 1}, {"id": books[(i + n + 5) % len(books)], "quantity": 1}]
        n += 1
        s, o = call(b, "POST", "/order/add", t, {"itemsList": lines})
        if s != 201:
            with lock: errors[0] += 1
            time.sleep(0.2); continue
        oid = o["id"]
        s, r = call(b, "GET", "/pay/redirectUrl?orderId=" + oid, t)
        if s != 200:
            with lock: errors[0] += 1
            continue
        s, _ = call(b, "POST", r["redirectUrl"], form={"action": "full"})
        while True:
            s, o = call(b, "GET", "/order/" + oid, t)
            if s == 200 and o["status"] in ("PAID", "SHIPPING_PENDING"):
                break
            time.sleep(0.01)
        with lock: done[0] += 1
c0, r0, t0 = cpu(), remote_calls(), time.time()
threads = [threading.Thread(target=shopper, args=(i,)) for i in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
elapsed = time.time() - t0
c1, r1 = cpu(), remote_calls()
sagas = done[0]
per = lambda i: (r1[i] - r0[i]) / max(sagas, 1)
print("nodes=%d sagas=%d errors=%d sagas_per_s=%.1f cpu_ms_per_saga=%.2f write_sets_per_saga=%.1f "
      "remote_commands_per_saga=%.2f remote_events_per_saga=%.2f" % (
    len(bases), sagas, errors[0], sagas / elapsed, 1000 * (c1 - c0) / max(sagas, 1), per(2), per(0), per(1)))
PY
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}

for r in $(seq 1 "$ROUNDS"); do
  run 1
  run 3
done
