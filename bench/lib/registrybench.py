#!/usr/bin/env python3
"""Registry benchmark for Gossamer agents on this machine (called by bench/registry.sh; stdlib only).

It starts its own redis-server on a free loopback port (temp dir, no persistence), then 3 agents with
`--gossip-profile local --redis redis://127.0.0.1:<port>/0` (agent 0 first, the others joined to it), waits until
every agent lists 3 alive members and 2 replication peers, and measures:

  1. registration → visible: one raw-socket `PSUBSCRIBE gossamer:svc:*` connection to Redis and one SSE KV watch
     on every agent (`/v1/watch/_gossamer/registry/instances/?recurse`), then --services x --instances
     registrations (`PUT /v1/services/svc-<12 digits>/instances/i<4 digits>`) at a steady --rate, round-robin over
     the agents. For each: the time from just before the PUT is sent until its `set` message arrived on the
     PSUBSCRIBE connection (visible in Redis: the mirror's script writes the hash and publishes in one step), and
     until the key has arrived on every agent's watch. p50 / p99; one never seen within --grace counts as +inf;
  2. HTTP lookups: wrk (bench/lib/registry.lua, a random service per request, `GET /v1/services/<s>?passing`)
     against agent 0, --concurrency connections, --duration s, after checking that every service answers 200
     with all its instances on every agent;
  3. Redis-path lookups: RedisBench (Benchmarks/RedisBench: HGETALL of random `gossamer:svc:<s>` keys through
     RedisCache.RedisClient, --concurrency tasks, pipelined by --pipeline, --redis-connections connections)
     against `redis-benchmark -c <concurrency> -P <pipeline> -r <services> HGETALL gossamer:svc:svc-__rand_int__`
     on the same keys, plus redis-benchmark `-t get` with and without -P for scale.

Parts 2 and 3 run --runs times, interleaved (the order of our client and redis-benchmark flips every run);
medians are reported. Prints one table (markdown) on stdout and writes results.json, registrations.json, every
wrk / RedisBench / redis-benchmark output and the agents' and Redis's logs to --out-dir. All traffic stays on
127.0.0.1; every wait is capped; every process started is listed in --pidfile and stopped on exit.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import io
import json
import math
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchcommon import close_quietly, driver_start, loadavg, paced_calls, percentile, read_streams  # noqa: E402
from replbench import Abort, Agent, Cluster, Http, Watchers, cpu_seconds, fmt, free_ports, goal, log  # noqa: E402

PREFIX = "_gossamer/registry/instances/"
SYNC_SERVICE = "bench-sync"
GOAL_VISIBLE_P99_MS = 200
GOAL_HTTP_P99_MS = 2
GOAL_REDIS_RATIO = 0.8


def service_name(n: int) -> str:
    """svc-<n as 12 digits>: redis-benchmark's __rand_int__ (with -r) is zero-padded to 12 digits too."""
    return f"svc-{n:012d}"


def registration_body(port: int) -> bytes:
    return json.dumps({"address": "127.0.0.1", "port": port, "tags": ["bench"], "meta": {"version": "1.0"}}).encode()


# --------------------------------------------------------------------------------------------------------------
# Redis: RESP, our own server, the PSUBSCRIBE reader


INCOMPLETE = object()


class RespError(str):
    """An error reply (`-ERR ...`)."""


def resp_parse(buf: bytes, i: int = 0):
    """One RESP2 reply starting at buf[i]: (value, index after it), or INCOMPLETE. Bulk strings are bytes, nil is
    None, arrays are lists, error replies RespError."""
    j = buf.find(b"\r\n", i)
    if j < 0:
        return INCOMPLETE
    kind, line = buf[i:i + 1], buf[i + 1:j]
    if kind == b"+":
        return line.decode(), j + 2
    if kind == b"-":
        return RespError(line.decode()), j + 2
    if kind == b":":
        return int(line), j + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, j + 2
        if len(buf) < j + 2 + n + 2:
            return INCOMPLETE
        return buf[j + 2:j + 2 + n], j + 2 + n + 2
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, j + 2
        items, k = [], j + 2
        for _ in range(n):
            r = resp_parse(buf, k)
            if r is INCOMPLETE:
                return INCOMPLETE
            item, k = r
            items.append(item)
        return items, k
    raise ValueError(f"not RESP: {buf[i:i + 40]!r}")


def resp_command(*args) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
    return b"".join(parts)


class RedisConn:
    """One blocking connection to 127.0.0.1:port for a few commands (checks, not load)."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def call(self, *args):
        self.sock.sendall(resp_command(*args))
        while True:
            r = resp_parse(self.buf)
            if r is not INCOMPLETE:
                value, k = r
                self.buf = self.buf[k:]
                return value
            data = self.sock.recv(65536)
            if not data:
                raise OSError("redis closed the connection")
            self.buf += data

    def close(self):
        close_quietly(self.sock)


class RedisServer:
    """Our own redis-server: loopback only, its own temp dir, no RDB snapshots or AOF; stopped by its PID."""

    def __init__(self, args, workdir: str):
        self.args = args
        self.port = free_ports(1)[0]
        self.dir = os.path.join(workdir, "redis")
        self.log_path = os.path.join(workdir, "redis.log")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        os.makedirs(self.dir, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
               "--save", "", "--appendonly", "no", "--dir", self.dir, "--daemonize", "no", "--logfile", ""]
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        with open(self.args.pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Abort(f"redis-server exited with status {self.proc.returncode} at start; see redis.log")
            try:
                c = RedisConn(self.port, timeout=1)
                try:
                    if c.call("PING") == "PONG":
                        return
                finally:
                    c.close()
            except OSError:
                pass
            time.sleep(0.05)
        raise Abort(f"redis-server did not answer PING within {timeout:g} s")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PublishStream:
    """A `PSUBSCRIBE gossamer:svc:*` connection, read by benchcommon.read_streams next to the SSE streams: the
    receive time of the first `set` message per (service, id)."""

    closed_note = "PSUBSCRIBE connection closed by redis"

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(resp_command("PSUBSCRIBE", "gossamer:svc:*"))
        self.sock.setblocking(False)
        self.buf = b""
        self.closed = False
        self.subscribed = False
        self.errors: list[str] = []
        self.recv: dict[tuple[str, str], float] = {}  # first `set` per (service, id)
        self.deletes: dict[tuple[str, str], float] = {}  # first `delete` per (service, id)
        self.ops: dict[str, int] = {}

    def start(self) -> None:
        """Reads on a thread of its own (benchcommon.read_streams) until close()."""
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=read_streams, args=([self], self.stop_event), daemon=True)
        self.thread.start()

    def close(self) -> None:
        if hasattr(self, "stop_event"):
            self.stop_event.set()
            self.thread.join(timeout=2)
        close_quietly(self.sock)

    def feed(self, data: bytes, t: float) -> None:
        self.buf += data
        i = 0
        while True:
            try:
                r = resp_parse(self.buf, i)
            except ValueError as e:
                self.errors.append(str(e))
                self.closed = True
                return
            if r is INCOMPLETE:
                break
            msg, i = r
            if isinstance(msg, list) and msg and msg[0] == b"psubscribe":
                self.subscribed = True
            elif isinstance(msg, list) and len(msg) == 4 and msg[0] == b"pmessage":
                try:
                    obj = json.loads(msg[3])
                    op, key = obj["op"], (obj["service"], obj["id"])
                except (ValueError, KeyError, TypeError) as e:
                    self.errors.append(f"unparsable message ({e}): {msg[3][:120]!r}")
                    continue
                self.ops[op] = self.ops.get(op, 0) + 1
                first = self.recv if op == "set" else self.deletes
                if key not in first:
                    first[key] = t
            else:
                self.errors.append(f"unexpected reply {msg!r:.120}")
        self.buf = self.buf[i:]


# --------------------------------------------------------------------------------------------------------------
# Agents


class RegistryAgent(Agent):
    """An agent of replbench's, started with the local gossip profile and the Redis cache."""

    def __init__(self, args, workdir: str, name: str, join_port: int | None, redis_url: str):
        super().__init__(args, workdir, name, gossip=True, join_port=join_port)
        self.redis_url = redis_url

    def command(self) -> list[str]:
        return super().command() + ["--gossip-profile", "local", "--redis", self.redis_url]


class RegistryCluster(Cluster):
    """replbench's cluster (start = every agent lists N alive members and N-1 replication peers) of RegistryAgents."""

    def __init__(self, args, workdir: str, n: int, redis_url: str):
        # Not Cluster.__init__: that one makes plain agents.
        os.makedirs(workdir, exist_ok=True)
        self.args = args
        first = RegistryAgent(args, workdir, "r0", None, redis_url)
        self.agents = [first] + [RegistryAgent(args, workdir, f"r{i}", first.gossip_port, redis_url) for i in range(1, n)]


def span_of(values) -> list | None:
    """[count, first, last] of some values, or None if there are none."""
    xs = sorted(values)
    return [len(xs), xs[0], xs[-1]] if xs else None


def register(conn: Http, service: str, iid: str, port: int) -> tuple[int, bytes]:
    return conn.request("PUT", f"/v1/services/{service}/instances/{iid}", registration_body(port),
                        {"Content-Type": "application/json"}, retry=False)


# --------------------------------------------------------------------------------------------------------------
# 1: registration → visible in Redis and on every agent


def phase_register(cluster: RegistryCluster, pub: PublishStream, args, res: dict) -> None:
    agents = cluster.agents
    n = len(agents)
    watchers = Watchers(agents, PREFIX)

    def first_seen() -> list[dict[str, float]]:
        """Per watch, the first receive time of each key (the streams record (key, stamp) pairs)."""
        out = []
        for s in watchers.streams:
            f: dict[str, float] = {}
            for (key, _stamp), t in list(s.recv.items()):
                if key not in f or t < f[key]:
                    f[key] = t
            out.append(f)
        return out

    def seen_everywhere(service: str, iid: str, first: list[dict[str, float]]) -> bool:
        return (service, iid) in pub.recv and all(f"{PREFIX}{service}/{iid}" in f for f in first)

    try:
        deadline = time.monotonic() + 5
        while not pub.subscribed and time.monotonic() < deadline:
            time.sleep(0.01)
        if not pub.subscribed:
            raise Abort(f"PSUBSCRIBE not confirmed within 5 s: {pub.errors[:3]}")

        # Sync: one registration on each agent in turn, until it is in Redis and on every watch, so every stream is
        # live and every agent's mirror has connected.
        t_sync = time.perf_counter()
        for i, a in enumerate(agents):
            iid = f"sync-{a.name}"
            deadline = time.monotonic() + 15
            attempt = 0
            while not seen_everywhere(SYNC_SERVICE, iid, first_seen()):
                if time.monotonic() > deadline:
                    behind = [s.agent.name for s in watchers.streams if not s.seen_key(f"{PREFIX}{SYNC_SERVICE}/{iid}")]
                    raise Abort(f"sync registration {SYNC_SERVICE}/{iid} on {a.name} not seen within 15 s: in redis "
                                f"{(SYNC_SERVICE, iid) in pub.recv}, watches behind {behind}; errors "
                                f"{(pub.errors + [e for s in watchers.streams for e in s.errors])[:3]}")
                if attempt % 20 == 0:
                    status, data = register(a.api, SYNC_SERVICE, iid, 1000 + i)
                    if status != 200:
                        raise Abort(f"sync registration on {a.name}: HTTP {status}: {data[:200]!r}")
                attempt += 1
                time.sleep(0.05)
        res["sync_s"] = round(time.perf_counter() - t_sync, 3)

        # Measured registrations: instance j of service s is registration k = j * services + s, due at
        # start + k / rate, sent to agent k mod N; SENDERS threads share the schedule.
        total = args.services * args.instances
        plan = [(service_name(k % args.services), f"i{k // args.services:04d}", k % n) for k in range(total)]
        send: list[float | None] = [None] * total
        put_ms: list[float | None] = [None] * total
        errors: list[str] = []

        def register_one(k: int, conn: Http) -> None:
            service, iid, i = plan[k]
            t0 = time.perf_counter()
            try:
                status, data = register(conn, service, iid, 1024 + k % 64000)
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{service}/{iid} on {agents[i].name}: {e}")
                conn.close()
                return
            if status != 200:
                errors.append(f"{service}/{iid} on {agents[i].name}: HTTP {status}: {data[:120]!r}")
                return
            send[k] = t0
            put_ms[k] = (time.perf_counter() - t0) * 1000

        start, t_last, late = paced_calls(total, args.rate, args.senders, lambda k: plan[k][2],
                                          lambda i: Http(agents[i].http_port), register_one, errors, "registration")
        sent = [k for k in range(total) if send[k] is not None]

        grace_deadline = time.monotonic() + args.grace
        remaining = sent
        while remaining and time.monotonic() < grace_deadline:
            first = first_seen()
            remaining = [k for k in remaining if not seen_everywhere(plan[k][0], plan[k][1], first)]
            if remaining:
                time.sleep(0.02)
        tail_s = time.perf_counter() - t_last

        first = first_seen()
        to_redis, everywhere, per = [], [], []
        for k in sent:
            service, iid, i = plan[k]
            t_pub = pub.recv.get((service, iid))
            times = [f.get(f"{PREFIX}{service}/{iid}") for f in first]
            r_ms = math.inf if t_pub is None else (t_pub - send[k]) * 1000
            e_ms = math.inf if None in times else (max(times) - send[k]) * 1000
            to_redis.append(r_ms)
            everywhere.append(e_ms)
            per.append({"k": k, "service": service, "id": iid, "agent": agents[i].name,
                        "sent_after_start_s": round(send[k] - agents[0].spawn_t, 3), "put_ms": round(put_ms[k], 3),
                        "redis_ms": None if math.isinf(r_ms) else round(r_ms, 3),
                        "everywhere_ms": None if math.isinf(e_ms) else round(e_ms, 3),
                        "owner_event_ms": None if times[i] is None else round((times[i] - send[k]) * 1000, 3),
                        "missing_on": [agents[j].name for j, t in enumerate(times) if t is None]})
        with open(os.path.join(args.out_dir, "registrations.json"), "w") as fh:
            json.dump(per, fh)
        to_redis.sort()
        everywhere.sort()
        puts = sorted(put_ms[k] for k in sent)

        def r3(x):
            return None if x is None else (x if math.isinf(x) else round(x, 3))

        res["registration"] = {
            "planned": total, "sent": len(sent), "put_errors": len(errors), "put_error_samples": errors[:10],
            "redis_p50_ms": r3(percentile(to_redis, 50)), "redis_p99_ms": r3(percentile(to_redis, 99)),
            "redis_max_ms": r3(to_redis[-1] if to_redis else None),
            "everywhere_p50_ms": r3(percentile(everywhere, 50)), "everywhere_p99_ms": r3(percentile(everywhere, 99)),
            "everywhere_max_ms": r3(everywhere[-1] if everywhere else None),
            "missed_redis": sum(1 for x in to_redis if math.isinf(x)),
            "missed_everywhere": sum(1 for x in everywhere if math.isinf(x)),
            "put_p50_ms": r3(percentile(puts, 50)), "put_p99_ms": r3(percentile(puts, 99)),
            "schedule_late_max_ms": round(max(late) * 1000, 1) if late else 0.0,
            "send_span_s": round(t_last - start, 3), "tail_s": round(tail_s, 3),
            "first_sent_after_start_s": round(start - agents[0].spawn_t, 3),
            # When the registrations slower than the goal were sent, in s after the first agent started.
            "slow_redis_sent_after_start_s": span_of(p["sent_after_start_s"] for p in per if (p["redis_ms"] or math.inf) > GOAL_VISIBLE_P99_MS),
            "slow_everywhere_sent_after_start_s": span_of(p["sent_after_start_s"] for p in per
                                                          if (p["everywhere_ms"] or math.inf) > GOAL_VISIBLE_P99_MS),
            "stream_errors": ([f"redis: {e}" for e in pub.errors]
                              + [f"{s.agent.name}: {e}" for s in watchers.streams for e in s.errors])[:10],
        }
    finally:
        watchers.close()


def lookup_problems(cluster: RegistryCluster, args) -> list[str]:
    """Each service × agent whose `?passing` lookup is not 200 with every instance, with the instances it left out
    (from the lookup without `?passing`)."""
    problems = []
    for a in cluster.agents:
        for s in range(args.services):
            name = service_name(s)
            try:
                status, data = a.api.request("GET", f"/v1/services/{name}?passing")
                count = len(json.loads(data).get("instances", [])) if status == 200 else None
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, count = str(e), None
            if status == 200 and count == args.instances:
                continue
            left_out = ""
            try:
                every = a.api.json("GET", f"/v1/services/{name}")["instances"]
                left_out = f"; without ?passing: {len(every)} instances, not passing: " + (", ".join(
                    f"{i['id']} {i['status']} (owner {i['owner']}, owner_alive {i['owner_alive']})"
                    for i in every if i["status"] != "passing") or "none")
            except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError):
                pass
            problems.append(f"{a.name} {name}?passing: HTTP {status}, {count} instances (want {args.instances}){left_out}")
    return problems


def redis_problems(conn: RedisConn, args) -> list[str]:
    """Each service hash in Redis that does not hold every instance."""
    problems = []
    for s in range(args.services):
        hlen = conn.call("HLEN", f"gossamer:svc:{service_name(s)}")
        if hlen != args.instances:
            problems.append(f"redis gossamer:svc:{service_name(s)}: {hlen} fields (want {args.instances})")
    return problems


def check_lookups(cluster: RegistryCluster, redis: RedisServer, pub: PublishStream, args, res: dict) -> None:
    """Waits (at most --wait-timeout s) until every service answers 200 with all its instances, passing, on every
    agent, and every Redis hash holds them all. Records what the first poll found amiss, and which registered
    instances were deleted from Redis (a `delete` message) since the registrations began."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.wait_timeout
    first, polls = None, 0
    conn = RedisConn(redis.port)
    try:
        while True:
            problems = lookup_problems(cluster, args) + redis_problems(conn, args)
            polls += 1
            if first is None:
                first = problems
                if problems:
                    res["members_at_first_problem"] = {a.name: a.members() for a in cluster.agents}
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(args.poll_ms / 1000)
        res["redis_keys"] = conn.call("DBSIZE")
        res["redis_used_memory"] = next((line.split(":", 1)[1] for line in conn.call("INFO", "memory").decode().splitlines()
                                         if line.startswith("used_memory_human:")), None)
        entry = conn.call("HGET", f"gossamer:svc:{service_name(0)}", "i0000")
        res["instance_json_bytes"] = len(entry) if entry else None
    finally:
        conn.close()
    res["lookup_check"] = {"ok": not problems, "settled_s": round(time.perf_counter() - t0, 3), "polls": polls,
                           "problems": problems[:10], "problem_count": len(problems),
                           "first_poll_problems": first[:10], "first_poll_problem_count": len(first),
                           "publish_ops": dict(pub.ops),
                           "deleted_live": sorted(f"{sv}/{i}" for sv, i in list(pub.deletes) if sv != SYNC_SERVICE)}


# --------------------------------------------------------------------------------------------------------------
# 2 + 3: lookups


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text: str) -> dict:
    """requests/s, requests, the latency distribution (ms) and error counts from wrk --latency's text output."""
    out = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    out["rps"] = float(m.group(1)) if m else None
    m = re.search(r"^\s+(\d+) requests in ", text, re.M)
    out["requests"] = int(m.group(1)) if m else None
    for p, v, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        out[f"p{p}_ms"] = float(v) * UNITS_MS[unit]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return out


def run_tool(args, cmd: list[str], out_path: str, timeout: float, env: dict | None = None) -> tuple[str, dict]:
    """Runs one load generator (listed in the pidfile) to completion with its output in out_path: (output,
    {exit status, wall s, its CPU cores})."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        with open(args.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Abort(f"{os.path.basename(cmd[0])} did not finish within {timeout:g} s; see {os.path.basename(out_path)}")
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return open(out_path, encoding="utf-8", errors="replace").read(), {"exit": p.returncode, "wall_s": round(wall, 3),
                                                                       "client_cores": round(cpu / wall, 2)}


def wrk_lookups(args, agent: Agent, seconds: int, out_path: str) -> dict:
    env = dict(os.environ, BENCH_SERVICES=str(args.services), BENCH_SEED=str(args.seed))
    cmd = ["wrk", f"-t{min(args.threads, args.concurrency)}", f"-c{args.concurrency}", f"-d{seconds}s", "--timeout", "5s",
           "--latency", "-s", os.path.join(HERE, "registry.lua"), f"http://127.0.0.1:{agent.http_port}"]
    cpu0 = cpu_seconds(agent.proc.pid)
    text, info = run_tool(args, cmd, out_path, seconds + 60, env)
    r = parse_wrk(text)
    if r["rps"] is None or "p99_ms" not in r:
        raise Abort(f"no figures in wrk's output (exit {info['exit']}): {text[-300:]!r}")
    r.update(info)
    r["agent_cores"] = round((cpu_seconds(agent.proc.pid) - cpu0) / info["wall_s"], 2)
    return r


def ours_hgetall(args, redis: RedisServer, out_path: str) -> dict:
    cmd = [args.redisbench_bin, "--redis", redis.url, "--duration", str(args.duration), "--warmup", "1",
           "--tasks", str(args.concurrency), "--pipeline", str(args.pipeline), "--connections", str(args.redis_connections),
           "--services", str(args.services), "--seed", str(args.seed)]
    cpu0 = cpu_seconds(redis.proc.pid)
    text, info = run_tool(args, cmd, out_path, args.duration + 60)
    line = next((x for x in reversed(text.splitlines()) if x.startswith("{")), None)
    if line is None:
        raise Abort(f"no JSON line from RedisBench (exit {info['exit']}): {text[-300:]!r}")
    r = json.loads(line)
    r.update(info)
    # RedisBench's wall time includes its 1 s warm-up and start-up; redis-server's cores are over the same wall.
    r["redis_cores"] = round((cpu_seconds(redis.proc.pid) - cpu0) / info["wall_s"], 2)
    return r


def redis_benchmark(args, redis: RedisServer, extra: list[str], requests: int, out_path: str) -> dict:
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(redis.port), "-c", str(args.concurrency),
           "-n", str(requests), "--csv"] + extra
    cpu0 = cpu_seconds(redis.proc.pid)
    text, info = run_tool(args, cmd, out_path, args.duration * 5 + 60)
    rows = [row for row in csv.reader(io.StringIO(text)) if len(row) >= 2 and row[0] != "test"]
    if info["exit"] != 0 or not rows:
        raise Abort(f"redis-benchmark {' '.join(extra)} failed (exit {info['exit']}): {text[-300:]!r}")
    row = rows[-1]
    r = {"test": row[0], "rps": float(row[1]), "requests": requests}
    if len(row) >= 7:
        r.update(p50_ms=float(row[4]), p99_ms=float(row[6]))
    r.update(info)
    r["redis_cores"] = round((cpu_seconds(redis.proc.pid) - cpu0) / info["wall_s"], 2)
    return r


def phase_lookups(cluster: RegistryCluster, redis: RedisServer, args, results: dict) -> None:
    lk: dict = {"runs": []}
    results["lookups"] = lk
    target = cluster.agents[0]
    if args.warmup > 0:
        log(f"lookups: wrk warm-up ({args.warmup} s, not counted)")
        wrk_lookups(args, target, args.warmup, os.path.join(args.out_dir, "wrk-warmup.txt"))
        time.sleep(args.pause)
    # redis-benchmark runs a request count, not a time: aim at DURATION s from the last rate seen (the first time, a
    # short run that is not counted).
    estimate: dict[str, float] = {}
    calibration = {"hgetall": 20_000, "get": 20_000, "get_p": 200_000}

    def rb_run(kind: str, extra: list[str], run: int) -> dict:
        if kind not in estimate:
            estimate[kind] = redis_benchmark(args, redis, extra, calibration[kind],
                                             os.path.join(args.out_dir, f"redis-benchmark-{kind}-calibration.csv"))["rps"]
        r = redis_benchmark(args, redis, extra, int(min(50_000_000, max(10_000, estimate[kind] * args.duration))),
                            os.path.join(args.out_dir, f"redis-benchmark-{kind}-run{run}.csv"))
        estimate[kind] = r["rps"]
        return r

    hgetall = ["-P", str(args.pipeline), "-r", str(args.services), "HGETALL", "gossamer:svc:svc-__rand_int__"]
    for run in range(1, args.runs + 1):
        if not redis.running():
            raise Abort("redis-server exited; see logs/redis.log")
        cluster.check_running("during the lookups")
        entry: dict = {"run": run}
        lk["runs"].append(entry)
        entry["http"] = wrk_lookups(args, target, args.duration, os.path.join(args.out_dir, f"wrk-run{run}.txt"))
        h = entry["http"]
        log(f"run {run}/{args.runs} HTTP lookups c={args.concurrency}: {h['rps']:,.0f} req/s p50 {h['p50_ms']:.2f} ms "
            f"p99 {h['p99_ms']:.2f} ms, errors {h['non2xx'] + h['socket_errors']}; agent {h['agent_cores']} cores, wrk {h['client_cores']}")
        time.sleep(args.pause)
        order = ["ours", "redis-benchmark"] if run % 2 else ["redis-benchmark", "ours"]
        for which in order:
            if which == "ours":
                entry["ours"] = o = ours_hgetall(args, redis, os.path.join(args.out_dir, f"redisbench-run{run}.json"))
                log(f"run {run}/{args.runs} RedisClient HGETALL: {o['lookups_per_s']:,.0f}/s, batch p99 {o['batch_p99_ms']:.2f} ms, "
                    f"errors {o['errors']}; redis-server {o['redis_cores']} cores, RedisBench {o['client_cores']}")
            else:
                entry["rb_hgetall"] = rb = rb_run("hgetall", hgetall, run)
                log(f"run {run}/{args.runs} redis-benchmark HGETALL -P {args.pipeline}: {rb['rps']:,.0f}/s ({rb['requests']:,} requests "
                    f"in {rb['wall_s']:.1f} s); redis-server {rb['redis_cores']} cores, redis-benchmark {rb['client_cores']}")
            time.sleep(args.pause)
        for kind, extra in (("get", ["-t", "get"]), ("get_p", ["-t", "get", "-P", str(args.pipeline)])):
            entry[f"rb_{kind}"] = g = rb_run(kind, extra, run)
            log(f"run {run}/{args.runs} redis-benchmark {' '.join(extra)}: {g['rps']:,.0f}/s")
            time.sleep(args.pause)


# --------------------------------------------------------------------------------------------------------------
# Report


def med(runs: list[dict], part: str, key: str):
    xs = [r[part][key] for r in runs if part in r and r[part].get(key) is not None]
    return statistics.median(xs) if xs else None


def us_per_op(runs: list[dict], part: str, cores_key: str, rate_key: str):
    """Median over runs of the CPU a process used per operation (µs): its cores / the operations per second."""
    xs = [r[part][cores_key] / r[part][rate_key] * 1e6 for r in runs
          if part in r and r[part].get(cores_key) is not None and r[part].get(rate_key)]
    return statistics.median(xs) if xs else None


def report(results: dict, args, meta: dict) -> str:
    L = [f"Registry benchmark, {meta.get('date')}: {meta.get('command')}",
         f"{meta.get('versions')}; load average before {meta.get('load_before')}, after {meta.get('load_after', 'n/a')}", ""]
    reg = results.get("registration", {})
    runs = results.get("lookups", {}).get("runs", [])
    nruns = len(runs)
    total = args.services * args.instances

    http_p99 = med(runs, "http", "p99_ms")
    ours, theirs = med(runs, "ours", "lookups_per_s"), med(runs, "rb_hgetall", "rps")
    ratio = ours / theirs if ours and theirs else None
    ratios = [r["ours"]["lookups_per_s"] / r["rb_hgetall"]["rps"] for r in runs if "ours" in r and "rb_hgetall" in r]

    def p99_goal(x):
        return goal(None if x is None else x <= GOAL_VISIBLE_P99_MS)

    L.append(f"| measure ({total:,} registrations at {args.rate:g}/s; lookups: median of {nruns} runs of {args.duration} s) | value | goal |")
    L.append("|---|---:|---|")
    L.append(f"| registration → its PUBLISH received from Redis: p50 / p99 ms | {fmt(reg.get('redis_p50_ms'), 1)} / "
             f"{fmt(reg.get('redis_p99_ms'), 1)} | p99 ≤ {GOAL_VISIBLE_P99_MS} ms: {p99_goal(reg.get('redis_p99_ms'))} |")
    L.append(f"| registration → key on every agent's watch: p50 / p99 ms | {fmt(reg.get('everywhere_p50_ms'), 1)} / "
             f"{fmt(reg.get('everywhere_p99_ms'), 1)} | p99 ≤ {GOAL_VISIBLE_P99_MS} ms: {p99_goal(reg.get('everywhere_p99_ms'))} |")
    L.append(f"| registrations not in Redis / not on every agent / failed PUTs (must be 0) | {fmt(reg.get('missed_redis'), 0)} / "
             f"{fmt(reg.get('missed_everywhere'), 0)} / {fmt(reg.get('put_errors'), 0)} | |")
    L.append(f"| registration PUT answer: p50 / p99 ms | {fmt(reg.get('put_p50_ms'), 2)} / {fmt(reg.get('put_p99_ms'), 2)} | |")
    L.append(f"| HTTP lookups `?passing`, wrk c={args.concurrency} t={args.threads} on r0: requests/s | {fmt(med(runs, 'http', 'rps'), 0)} | |")
    L.append(f"| HTTP lookups: p50 / p99 ms | {fmt(med(runs, 'http', 'p50_ms'), 2)} / {fmt(http_p99, 2)} | "
             f"p99 ≤ {GOAL_HTTP_P99_MS} ms: {goal(None if http_p99 is None else http_p99 <= GOAL_HTTP_P99_MS)} |")
    L.append(f"| HTTP lookups: the agent's CPU per lookup, µs | {fmt(us_per_op(runs, 'http', 'agent_cores', 'rps'), 0)} | |")
    L.append(f"| Redis path, our RedisClient ({args.concurrency} tasks, pipeline {args.pipeline}, {args.redis_connections} "
             f"connections): HGETALL/s | {fmt(ours, 0)} | |")
    L.append(f"| Redis path, our RedisClient: time per batch of {args.pipeline}, p50 / p99 ms | {fmt(med(runs, 'ours', 'batch_p50_ms'), 2)} / "
             f"{fmt(med(runs, 'ours', 'batch_p99_ms'), 2)} | |")
    L.append(f"| redis-benchmark HGETALL -c {args.concurrency} -P {args.pipeline} -r {args.services} (same keys): requests/s | {fmt(theirs, 0)} | |")
    L.append(f"| our client / redis-benchmark, HGETALL rate | {'n/a' if ratio is None else f'{ratio:.2f}x'} | "
             f"≥ {GOAL_REDIS_RATIO:.2f}x: {goal(None if ratio is None else ratio >= GOAL_REDIS_RATIO)} |")
    L.append(f"| CPU per HGETALL, client / redis-server, µs: our RedisClient | {fmt(us_per_op(runs, 'ours', 'client_cores', 'lookups_per_s'), 1)} / "
             f"{fmt(us_per_op(runs, 'ours', 'redis_cores', 'lookups_per_s'), 1)} | |")
    L.append(f"| CPU per HGETALL, client / redis-server, µs: redis-benchmark | {fmt(us_per_op(runs, 'rb_hgetall', 'client_cores', 'rps'), 1)} / "
             f"{fmt(us_per_op(runs, 'rb_hgetall', 'redis_cores', 'rps'), 1)} | |")
    L.append(f"| redis-benchmark GET -c {args.concurrency}: requests/s (scale) | {fmt(med(runs, 'rb_get', 'rps'), 0)} | |")
    L.append(f"| redis-benchmark GET -c {args.concurrency} -P {args.pipeline}: requests/s (scale) | {fmt(med(runs, 'rb_get_p', 'rps'), 0)} | |")
    L.append("")

    L.append("Goals:")
    L.append(f"  - registration → visible in Redis, p99 ≤ {GOAL_VISIBLE_P99_MS} ms: {fmt(reg.get('redis_p99_ms'), 1)} ms -> {p99_goal(reg.get('redis_p99_ms'))}")
    L.append(f"  - registration → visible on every agent, p99 ≤ {GOAL_VISIBLE_P99_MS} ms: {fmt(reg.get('everywhere_p99_ms'), 1)} ms -> "
             f"{p99_goal(reg.get('everywhere_p99_ms'))}")
    L.append(f"  - HTTP lookup p99 ≤ {GOAL_HTTP_P99_MS} ms at c={args.concurrency}: {fmt(http_p99, 2)} ms -> "
             f"{goal(None if http_p99 is None else http_p99 <= GOAL_HTTP_P99_MS)}")
    L.append(f"  - our client's HGETALL rate ≥ {GOAL_REDIS_RATIO:.2f}x redis-benchmark's: "
             f"{'n/a' if ratio is None else f'{ratio:.2f}x'} (runs: {', '.join(f'{x:.2f}x' for x in ratios) or 'none'}) -> "
             f"{goal(None if ratio is None else ratio >= GOAL_REDIS_RATIO)}")
    bad = [reg.get("missed_redis"), reg.get("missed_everywhere"), reg.get("put_errors")]
    lookup_errors = sum(r["http"]["non2xx"] + r["http"]["socket_errors"] for r in runs if "http" in r)
    redis_errors = sum(r["ours"]["errors"] + r["ours"]["empty"] for r in runs if "ours" in r)
    clean = None if None in bad else (sum(bad) == 0 and lookup_errors == 0 and redis_errors == 0
                                      and results.get("lookup_check", {}).get("ok", False))
    L.append(f"  - every registration seen in Redis and everywhere, every lookup answered in full, no errors: "
             f"{fmt(reg.get('missed_redis'), 0)} + {fmt(reg.get('missed_everywhere'), 0)} missed, {fmt(reg.get('put_errors'), 0)} failed PUTs, "
             f"{lookup_errors} HTTP lookup errors, {redis_errors} Redis-path errors or empty replies -> {goal(clean)}")
    L.append("")

    anomalies = []
    if results.get("error"):
        anomalies.append(f"ABORTED: {results['error']}")
    anomalies.extend(reg.get("put_error_samples", []))
    anomalies.extend(f"stream {e}" for e in reg.get("stream_errors", []))
    if reg.get("schedule_late_max_ms", 0) > 100:
        anomalies.append(f"the registration schedule fell behind by up to {reg['schedule_late_max_ms']} ms (slow PUT answers)")
    chk = results.get("lookup_check", {})
    if chk and not chk.get("ok"):
        anomalies.append(f"lookup check: still {chk['problem_count']} problems after {fmt(chk['settled_s'], 2)} s, e.g. "
                         + " | ".join(chk["problems"][:3]))
    elif chk.get("first_poll_problem_count"):
        anomalies.append(f"lookup check: the first poll, right after the last registration was on every watch, found "
                         f"{chk['first_poll_problem_count']} lookups or Redis hashes short of {args.instances} instances "
                         f"(all complete after {fmt(chk['settled_s'], 2)} s), e.g. " + " | ".join(chk["first_poll_problems"][:3]))
    if chk.get("deleted_live"):
        anomalies.append(f"{len(chk['deleted_live'])} registered instances were deleted from Redis (a `delete` message) "
                         f"while registered, e.g. {', '.join(chk['deleted_live'][:5])}")
    for r in runs:
        h, o = r.get("http", {}), r.get("ours", {})
        if h.get("non2xx") or h.get("socket_errors"):
            anomalies.append(f"run {r['run']}: wrk saw {h['non2xx']} non-2xx answers and {h['socket_errors']} socket errors")
        if o.get("errors") or o.get("empty"):
            anomalies.append(f"run {r['run']}: RedisBench: {o['errors']} errors, {o['empty']} empty replies; first: {o.get('first_error')}")
    L += ["ERRORS / ANOMALIES:", *(f"  - {a}" for a in anomalies), ""] if anomalies else []
    L.append("Details:")
    L.append(f"  - cluster: formed (3 alive, 2 replication peers everywhere) {fmt(results.get('formation_s'), 2)} s after the first "
             f"start; sync registrations {fmt(results.get('sync_s'), 2)} s; Redis held {fmt(results.get('redis_keys'), 0)} keys, "
             f"{results.get('redis_used_memory', 'n/a')}; one instance's JSON in Redis: {fmt(results.get('instance_json_bytes'), 0)} B")
    if reg:
        L.append(f"  - registrations: {reg['sent']} of {reg['planned']} sent over {fmt(reg['send_span_s'], 2)} s (schedule late ≤ "
                 f"{fmt(reg['schedule_late_max_ms'], 1)} ms); last event {fmt(reg['tail_s'], 2)} s after the last PUT; max "
                 f"{fmt(reg['redis_max_ms'], 1)} ms to Redis, {fmt(reg['everywhere_max_ms'], 1)} ms everywhere; "
                 f"PUBLISH messages by op until the lookup check passed: {chk.get('publish_ops')} (per registration: "
                 f"registrations.json)")
        for what, key in (("to Redis", "slow_redis_sent_after_start_s"), ("to every agent", "slow_everywhere_sent_after_start_s")):
            span = reg.get(key)
            if span:
                L.append(f"  - {span[0]} registrations took over {GOAL_VISIBLE_P99_MS} ms {what}; they were sent {span[1]:.1f}–{span[2]:.1f} s "
                         f"after the first agent started (the registrations ran from {reg['first_sent_after_start_s']:.1f} to "
                         f"{reg['first_sent_after_start_s'] + reg['send_span_s']:.1f} s)")
    for r in runs:
        h, o, rb, g, gp = (r.get(k, {}) for k in ("http", "ours", "rb_hgetall", "rb_get", "rb_get_p"))
        L.append(f"  - run {r['run']}: HTTP {fmt(h.get('rps'), 0)} req/s p50 {fmt(h.get('p50_ms'), 2)} p90 {fmt(h.get('p90_ms'), 2)} "
                 f"p99 {fmt(h.get('p99_ms'), 2)} ms (agent {fmt(h.get('agent_cores'), 2)} cores, wrk {fmt(h.get('client_cores'), 2)}); "
                 f"RedisClient {fmt(o.get('lookups_per_s'), 0)}/s batch p99 {fmt(o.get('batch_p99_ms'), 2)} ms (redis-server "
                 f"{fmt(o.get('redis_cores'), 2)} cores, RedisBench {fmt(o.get('client_cores'), 2)}); redis-benchmark HGETALL "
                 f"{fmt(rb.get('rps'), 0)}/s (redis-server {fmt(rb.get('redis_cores'), 2)}, redis-benchmark "
                 f"{fmt(rb.get('client_cores'), 2)}); GET {fmt(g.get('rps'), 0)}/s, GET -P {args.pipeline} {fmt(gp.get('rps'), 0)}/s")
    L.append("")
    L.append("Method: " + meta.get("method", ""))
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for opt in ("--gossamer-bin", "--redisbench-bin", "--out-dir", "--pidfile", "--tmp"):
        ap.add_argument(opt, required=True)
    # The numeric knobs, in registry.sh's order: option -> (type, default).
    knobs = {
        "--services": (int, 50), "--instances": (int, 20), "--rate": (float, 100), "--senders": (int, 16),
        "--grace": (float, 10), "--duration": (int, 10), "--runs": (int, 3), "--concurrency": (int, 64),
        "--threads": (int, 2), "--pipeline": (int, 16), "--redis-connections": (int, 8), "--warmup": (int, 2),
        "--pause": (float, 1), "--poll-ms": (int, 50), "--wait-timeout": (float, 60), "--seed": (int, 1),
    }
    for opt, (kind, default) in knobs.items():
        ap.add_argument(opt, type=kind, default=default)
    ap.add_argument("--meta", action="append", default=[], help="key=value for the report header")
    args = ap.parse_args()
    meta = driver_start(args)
    meta["method"] = (
        f"own redis-server (no persistence) and 3 agents (--gossip-profile local --redis, default durability) on loopback; "
        f"{args.services} services x {args.instances} instances registered at {args.rate:g}/s round-robin over the agents "
        f"({args.senders} sender threads); latency from just before the PUT to the receive of its PUBLISH on one PSUBSCRIBE "
        f"gossamer:svc:* connection, and to the last of the 3 SSE watches on {PREFIX}?recurse delivering the key (one reader "
        f"thread each, perf_counter right after recv); missed count as +inf. Lookups: wrk -t{args.threads} -c{args.concurrency} "
        f"-d{args.duration}s --latency with lib/registry.lua against r0; RedisBench ({args.concurrency} tasks, pipeline "
        f"{args.pipeline}, {args.redis_connections} connections, 1 s warm-up) and redis-benchmark -c {args.concurrency} "
        f"-P {args.pipeline} -r {args.services} HGETALL (request count aimed at {args.duration} s), order flipped every run; "
        f"all processes share the machine's {os.cpu_count()} cores")
    results: dict = {"meta": meta}
    started = time.monotonic()
    rc = 0
    workdir = os.path.join(args.tmp, "cluster")

    def save():
        with open(os.path.join(args.out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=lambda x: None)

    redis = RedisServer(args, args.tmp)
    cluster = RegistryCluster(args, workdir, 3, redis.url)
    try:
        redis.start()
        log(f"redis-server on 127.0.0.1:{redis.port} (pid {redis.proc.pid}); starting 3 agents")
        results["formation_s"] = round(cluster.start(), 3)
        log(f"3 agents up and meshed in {results['formation_s']} s; {args.services * args.instances} registrations at {args.rate:g}/s")
        pub = PublishStream(redis.port)
        pub.start()
        res: dict = {}
        try:
            phase_register(cluster, pub, args, res)
            results.update(res)
            reg = results["registration"]
            log(f"registration → Redis p50 {fmt(reg['redis_p50_ms'])} ms p99 {fmt(reg['redis_p99_ms'])} ms; → every agent p50 "
                f"{fmt(reg['everywhere_p50_ms'])} ms p99 {fmt(reg['everywhere_p99_ms'])} ms; missed {reg['missed_redis']} / "
                f"{reg['missed_everywhere']}, failed PUTs {reg['put_errors']}")
            cluster.check_running("during the registrations")
            check_lookups(cluster, redis, pub, args, results)
        finally:
            results.update(res)
            pub.close()
        chk = results["lookup_check"]
        log(f"lookup check: {'ok' if chk['ok'] else 'FAILED'} after {chk['settled_s']} s ({chk['polls']} polls; first poll: "
            f"{chk['first_poll_problem_count']} problems; PUBLISH ops {chk['publish_ops']}, live instances deleted "
            f"{len(chk['deleted_live'])})" + "".join(f"\n      {p}" for p in chk["first_poll_problems"][:3]))
        save()
        phase_lookups(cluster, redis, args, results)
    except Abort as e:
        results["error"] = str(e)
        log(f"ABORTED: {e}")
        rc = 1
    except KeyboardInterrupt:
        log("registrybench: interrupted; reporting what was measured")
        rc = 130
    finally:
        cluster.stop()
        redis.stop()
        logs = os.path.join(args.out_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        for name in [f"{a.name}.{ext}" for a in cluster.agents for ext in ("log", "out")] + ["redis.log"]:
            src = os.path.join(workdir if name != "redis.log" else args.tmp, name)
            if os.path.exists(src):
                os.replace(src, os.path.join(logs, name))
    meta["load_after"] = loadavg()
    meta["wall_s"] = round(time.monotonic() - started)
    save()
    print(report(results, args, meta), flush=True)  # registry.sh saves it as table.md
    return rc


if __name__ == "__main__":
    sys.exit(main())
