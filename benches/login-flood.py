#!/usr/bin/env python3
"""A flood of logins for made-up accounts against a running `bazaar serve` (release build).

Starts the node on a fresh data directory, then sends WAVES waves of CONCURRENCY logins at once,
each for an account that does not exist and each from its own loopback address (so per-address
throttling does not hide what the password hashing does), while sampling the node's resident
memory and timing GET /health. Prints the answers by status, memory before / peak / after and
the slowest /health.

    python3 benches/login-flood.py [path/to/bazaar]     (default: target/release/bazaar)
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

CONCURRENCY = int(os.environ.get("CONCURRENCY", 64))
WAVES = int(os.environ.get("WAVES", 4))
BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/bazaar"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(port, path, source=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0) if source else None)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def main():
    port = free_port()
    data = tempfile.mkdtemp()
    node = subprocess.Popen([BIN, "serve", "--http", f"127.0.0.1:{port}", "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if request(port, "/health") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        before = rss_mib(node.pid)
        stop = threading.Event()
        peak = [before]
        worst = [0.0]

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mib(node.pid))
                time.sleep(0.005)

        def health():
            while not stop.is_set():
                t = time.monotonic()
                request(port, "/health")
                worst[0] = max(worst[0], time.monotonic() - t)
                time.sleep(0.02)

        threads = [threading.Thread(target=sample), threading.Thread(target=health)]
        for t in threads:
            t.start()
        statuses = {}
        lock = threading.Lock()
        started = time.monotonic()
        for wave in range(WAVES):
            def login(i, wave=wave):
                import base64
                auth = base64.b64encode(f"ghost{wave}-{i}@example.com:a-guess-123".encode()).decode()
                s = request(port, "/token", source=f"127.0.{1 + wave}.{i}", headers={"Authorization": f"Basic {auth}"})
                with lock:
                    statuses[s] = statuses.get(s, 0) + 1
            ws = [threading.Thread(target=login, args=(i,)) for i in range(CONCURRENCY)]
            for w in ws:
                w.start()
            for w in ws:
                w.join()
        took = time.monotonic() - started
        stop.set()
        for t in threads:
            t.join()
        after = rss_mib(node.pid)
        print(json.dumps({"binary": BIN, "logins": WAVES * CONCURRENCY, "concurrency": CONCURRENCY,
                          "answers": statuses, "seconds": round(took, 2), "rss_mib_before": round(before),
                          "rss_mib_peak": round(peak[0]), "rss_mib_after": round(after),
                          "slowest_health_ms": round(worst[0] * 1000)}))
    finally:
        node.terminate()
        node.wait()


if __name__ == "__main__":
    main()
