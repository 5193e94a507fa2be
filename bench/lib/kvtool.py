#!/usr/bin/env python3
"""Small helpers for bench/kv.sh (Python 3 standard library only).

  kvtool.py freeport [COUNT]                    free loopback TCP ports in 28000-31999 (below the kernel's
                                                range for outgoing connections, above bench/gossip.sh's
                                                20000-27999), one per line
  kvtool.py wait-etcd URL TIMEOUT_S             wait until etcd's /health says true (exit 1 on timeout)
  kvtool.py preload gossamer|etcd URL KEYS SIZE write bench/k1..k<KEYS> with the benchmark value
  kvtool.py revision gossamer|etcd URL          print the store's current revision
  kvtool.py ping gossamer|etcd URL              exit 0 if the server answers (GET /v1/status, GET /health)

Only loopback URLs are accepted.
"""

import http.client
import json
import os
import random
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchcommon import b64, bench_value  # noqa: E402


def loopback(url: str):
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit(f"refusing non-loopback URL {url}")
    return host, u.port or 80


def connect(url: str, timeout: float = 10.0) -> http.client.HTTPConnection:
    host, port = loopback(url)
    return http.client.HTTPConnection(host, port, timeout=timeout)


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status // 100 != 2:
        raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:200]!r}")
    return data


def freeport(count: int):
    ports = []
    rng = random.Random()
    for _ in range(2000):
        if len(ports) == count:
            break
        p = rng.randrange(28000, 32000)
        if p in ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
    if len(ports) < count:
        raise SystemExit("no free port found")
    print("\n".join(map(str, ports)))


def wait_etcd(url: str, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = connect(url, 2)
            data = call(conn, "GET", "/health")
            conn.close()
            if json.loads(data).get("health") in ("true", True):
                return
        except (OSError, RuntimeError, ValueError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise SystemExit(f"etcd at {url} not healthy after {timeout}s")


def put(conn, system: str, key: str, value: bytes):
    if system == "gossamer":
        call(conn, "PUT", "/v1/kv/" + key, value, {"Content-Type": "text/plain"})
    else:
        body = json.dumps({"key": b64(key), "value": b64(value)})
        call(conn, "POST", "/v3/kv/put", body, {"Content-Type": "application/json"})


def preload(system: str, url: str, keys: int, size: int):
    value = bench_value(size)
    conn = connect(url)
    for k in range(1, keys + 1):
        put(conn, system, f"bench/k{k}", value)
    conn.close()


def revision(system: str, url: str) -> int:
    conn = connect(url)
    if system == "gossamer":
        rev = int(json.loads(call(conn, "GET", "/v1/status"))["revision"])
    else:
        data = call(conn, "POST", "/v3/kv/range", json.dumps({"key": b64("bench/k1")}),
                    {"Content-Type": "application/json"})
        rev = int(json.loads(data)["header"]["revision"])
    conn.close()
    return rev


def main(argv):
    if len(argv) < 2:
        raise SystemExit(__doc__)
    cmd = argv[1]
    if cmd == "freeport":
        freeport(int(argv[2]) if len(argv) > 2 else 1)
    elif cmd == "wait-etcd":
        wait_etcd(argv[2], float(argv[3]))
    elif cmd == "preload":
        preload(argv[2], argv[3], int(argv[4]), int(argv[5]))
    elif cmd == "revision":
        print(revision(argv[2], argv[3]))
    elif cmd == "ping":
        try:
            conn = connect(argv[3], 5)
            call(conn, "GET", "/v1/status" if argv[2] == "gossamer" else "/health")
            conn.close()
        except (OSError, RuntimeError, http.client.HTTPException) as e:
            print(f"{argv[2]} at {argv[3]} does not answer: {e}", file=sys.stderr)
            sys.exit(1)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
