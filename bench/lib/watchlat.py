#!/usr/bin/env python3
"""Watch latency (put -> event received) for Gossamer's SSE watch and etcd's JSON-gateway watch.

Standard library only. Opens W watch streams on one key, then does E puts of that key spaced
--interval-ms apart (each put waits for its answer: a durable commit on both systems), and for every
event on every stream records receive time minus the time just before the put was sent. Every value
carries its sequence number, so events are matched to puts exactly; an event never received counts as
missed.

  Gossamer: GET /v1/watch/<key>?since=<node>:<revision>  (Server-Sent Events: `event: put`, `data: {json}`;
            snapshot and heartbeat events are skipped)
  etcd:     POST /v3/watch {"create_request":{"key":"<base64>"}}  (newline-delimited JSON, result.events)

One thread reads all streams (selectors; each socket's receive time is taken right after its recv(),
before any parsing); the main thread does the puts over one keep-alive connection. Both use
time.perf_counter() (CLOCK_MONOTONIC). Before measuring, 'sync' puts are sent until every stream has
seen one, so every watch is live when the measured puts start.

Prints one JSON line: system, watchers, events, samples, p50_ms, p90_ms, p99_ms, max_ms, mean_ms,
missed, put_p50_ms, put_p99_ms, errors. Exits non-zero only on setup failure; missed events and
stream errors are reported in the JSON (the caller shows them).
"""

import argparse
import base64
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchcommon import (WatchStream, b64, make_value, percentile, read_streams, sleep_until, sse_event,  # noqa: E402
                         sse_request, stream_socket)


def parse_marker(value: bytes):
    """('seq', n) for a measured put, ('sync', n) for a sync put, None otherwise."""
    head = value[:32].split(b";", 1)[0].decode("ascii", "replace")
    if head.startswith("seq="):
        return "seq", int(head[4:])
    if head.startswith("sync="):
        return "sync", int(head[5:])
    return None


class Stream(WatchStream):
    """One watch stream: Server-Sent Events (Gossamer) or newline-delimited JSON (etcd)."""

    def __init__(self, index: int, system: str, sock):
        super().__init__(sock)
        self.index = index
        self.system = system
        self.sep = b"\n\n" if system == "gossamer" else b"\n"
        self.recv = {}  # seq -> receive time
        self.synced = False

    def bad_status(self, status_line: str) -> str:
        parts = status_line.split()
        return f"watch answered HTTP {int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0}"

    def message(self, msg: bytes, t: float):
        if msg.strip():
            try:
                for value in self.values(msg):
                    self.mark(value, t)
            except (ValueError, KeyError, TypeError) as e:
                self.errors.append(f"unparsable message ({e}): {msg[:120]!r}")

    def values(self, msg: bytes):
        if self.system == "gossamer":
            event, data = sse_event(msg)
            if event != "put":
                return []  # snapshot, heartbeat, delete
            obj = json.loads(data)
            value = obj.get("value") or ""
            if obj.get("encoding") == "base64":
                return [base64.b64decode(value)]
            return [value.encode()]
        obj = json.loads(msg)
        if "error" in obj:
            self.errors.append(f"etcd watch error: {str(obj['error'])[:200]}")
            return []
        result = obj.get("result") or {}
        if result.get("canceled"):
            self.errors.append(f"etcd watch canceled: {result.get('cancel_reason', '')}")
        out = []
        for ev in result.get("events") or []:
            if ev.get("type", "PUT") == "PUT":
                out.append(base64.b64decode(ev["kv"].get("value", "")))
        return out

    def mark(self, value: bytes, t: float):
        m = parse_marker(value)
        if m is None:
            return
        kind, n = m
        if kind == "sync":
            self.synced = True
        elif n not in self.recv:
            self.recv[n] = t


def open_stream(index, system, host, port, key, since):
    if system == "gossamer":
        path = "/v1/watch/" + key + (f"?since={urllib.parse.quote(since)}" if since else "")
        req = sse_request(host, port, path)
    else:
        body = json.dumps({"create_request": {"key": b64(key)}}).encode()
        req = (f"POST /v3/watch HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return Stream(index, system, stream_socket(host, port, req))


class Putter:
    def __init__(self, system, host, port, key, size):
        self.system, self.key, self.size = system, key, size
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def request(self, value: bytes):
        if self.system == "gossamer":
            self.conn.request("PUT", "/v1/kv/" + self.key, body=value, headers={"Content-Type": "text/plain"})
        else:
            body = json.dumps({"key": b64(self.key), "value": b64(value)})
            self.conn.request("POST", "/v3/kv/put", body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status // 100 != 2:
            raise RuntimeError(f"put answered HTTP {resp.status}: {data[:200]!r}")
        return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--system", choices=["gossamer", "etcd"], required=True)
    ap.add_argument("--url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    ap.add_argument("--watchers", type=int, default=1)
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--key", default="bench/w")
    ap.add_argument("--value-size", type=int, default=256)
    ap.add_argument("--grace", type=float, default=5.0, help="seconds to wait for late events after the last put")
    ap.add_argument("--timeout", type=float, default=120.0, help="hard limit for the whole measurement, seconds")
    args = ap.parse_args()

    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "", u.port or 80
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit(f"refusing non-loopback URL {args.url}")
    sys.setswitchinterval(0.0005)
    hard_deadline = time.monotonic() + args.timeout

    putter = Putter(args.system, host, port, args.key, args.value_size)
    since = None
    if args.system == "gossamer":
        putter.conn.request("GET", "/v1/status")
        resp = putter.conn.getresponse()
        status = json.loads(resp.read())
        since = f"{status['node']}:{status['revision']}"

    streams = [open_stream(i, args.system, host, port, args.key, since) for i in range(args.watchers)]
    stop = threading.Event()
    th = threading.Thread(target=read_streams, args=(streams, stop), daemon=True)
    th.start()
    errors = []
    put_lat = []
    try:
        # Sync: until every stream has seen a sync put (at most 15 s).
        sync_deadline = time.monotonic() + 15
        n = 0
        while not all(s.synced for s in streams):
            if time.monotonic() > sync_deadline:
                raise SystemExit(f"watch streams not live after 15 s: "
                                 f"{sum(not s.synced for s in streams)} of {len(streams)}; "
                                 f"errors: {[e for s in streams for e in s.errors][:5]}")
            putter.request(make_value(f"sync={n}", args.value_size))
            n += 1
            time.sleep(0.1)
        time.sleep(0.2)

        # Measured puts.
        send = [None] * args.events
        interval = args.interval_ms / 1000.0
        start = time.perf_counter()
        for seq in range(args.events):
            if time.monotonic() > hard_deadline:
                errors.append(f"hard timeout after {seq} puts")
                break
            sleep_until(start + seq * interval)
            value = make_value(f"seq={seq:08d}", args.value_size)
            t0 = time.perf_counter()
            send[seq] = t0
            try:
                putter.request(value)
            except (OSError, RuntimeError, http.client.HTTPException) as e:
                errors.append(f"put {seq}: {e}")
                send[seq] = None
                putter = Putter(args.system, host, port, args.key, args.value_size)
                continue
            put_lat.append(time.perf_counter() - t0)

        # Wait for stragglers.
        sent = [i for i, t in enumerate(send) if t is not None]
        grace_deadline = min(time.monotonic() + args.grace, hard_deadline)
        while time.monotonic() < grace_deadline:
            if all(len(s.recv) >= len(sent) or s.closed for s in streams):
                break
            time.sleep(0.02)
    finally:
        stop.set()
        th.join(timeout=2)
        for s in streams:
            s.close()

    lat = []
    missed = 0
    for s in streams:
        for seq in sent:
            t = s.recv.get(seq)
            if t is None:
                missed += 1
            else:
                lat.append((t - send[seq]) * 1000.0)
        errors.extend(f"watcher {s.index}: {e}" for e in s.errors)
    lat.sort()
    put_lat = sorted(x * 1000.0 for x in put_lat)
    r = lambda x: None if x is None else round(x, 3)
    print(json.dumps({
        "system": args.system,
        "watchers": args.watchers,
        "events": len(sent),
        "samples": len(lat),
        "p50_ms": r(percentile(lat, 50)),
        "p90_ms": r(percentile(lat, 90)),
        "p99_ms": r(percentile(lat, 99)),
        "max_ms": r(lat[-1] if lat else None),
        "mean_ms": r(sum(lat) / len(lat) if lat else None),
        "missed": missed,
        "put_p50_ms": r(percentile(put_lat, 50)),
        "put_p99_ms": r(percentile(put_lat, 99)),
        "errors": errors[:20],
    }))


if __name__ == "__main__":
    main()
