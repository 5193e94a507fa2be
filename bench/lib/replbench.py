#!/usr/bin/env python3
"""Replication benchmark for Gossamer agents on this machine (called by bench/replication.sh; stdlib only).

For every cluster size N (--sizes) it starts N agents on free loopback ports (agent 0 first, then each of the
others joined to it, one after the other) and measures:

  1. write-to-everywhere latency: one SSE watch on the benchmark prefix on EVERY agent, then --writes puts of
     --value-size bytes at a steady --rate, each to a randomly chosen agent. For each put: the time from just
     before the PUT is sent until the put event (matched on key and stamp) has been received on all N
     streams. p50 / p99 / max; a put never seen everywhere within --grace counts as missed (and as +inf in
     the percentiles);
  2. bytes per write per agent: the sum over all agents of `bytes_sent` in GET /v1/consistency (replication
     message bodies) and of `gossip.bytes_out` in GET /v1/status (gossip datagrams), before and after the
     write phase, / writes / N. The same counters over an idle window just before give the idle rates;
  3. repair of --repair-keys divergent keys: SIGTERM of agent N-1, wait until every other agent lists it as
     left or dead, write the keys to the others (--repair-concurrency concurrent PUTs), wait until the others
     agree, restart the stopped agent on the same data dir and ports, and time from its "listening on" line
     until its /v1/consistency `keys` and `root` equal the others' (polled every --poll-ms).

Then, unless --throughput-runs is 0:

  4. put throughput with replication on vs off: wrk (bench/lib/kv.lua, --concurrency connections, --duration
     s) against one agent started without --gossip, and against agent 0 of a 3-agent cluster (its two peers
     receive every write). Runs alternate between the two; medians are reported with the ratio, the CPU the
     agents used, and how long the cluster's peers took to acknowledge every write after wrk stopped.

Prints one table (markdown) on stdout and writes results.json and writes-n<N>.json to --out-dir, plus every agent's
log. All traffic stays on 127.0.0.1; every wait is capped; every process started is listed in --pidfile and
stopped on exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchcommon import (CLK_TCK, WatchStream, bench_value, close_quietly, cpu_ticks, driver_start, loadavg,  # noqa: E402
                         make_value, paced_calls, percentile, port_free, read_streams, sse_event, sse_request,
                         stream_socket)


def log(msg: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    try:
        return cpu_ticks(pid) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def proc_stat_cpu() -> list[int]:
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


class Usage:
    """CPU used between two points: by the given agents (utime+stime), by this driver, and by the whole machine
    (/proc/stat: busy and iowait as % of all cores)."""

    def __init__(self, agents):
        self.pids = [a.proc.pid for a in agents if a.running()]
        self.t = time.perf_counter()
        self.agents = sum(cpu_seconds(p) for p in self.pids)
        ru = os.times()
        self.driver = ru.user + ru.system
        self.stat = proc_stat_cpu()

    def since(self) -> dict:
        wall = time.perf_counter() - self.t
        agents = sum(cpu_seconds(p) for p in self.pids) - self.agents
        ru = os.times()
        driver = ru.user + ru.system - self.driver
        stat = [b - a for a, b in zip(self.stat, proc_stat_cpu())]
        total = max(1, sum(stat[:8]))  # user nice system idle iowait irq softirq steal
        return {"wall_s": round(wall, 3), "agents_cores": round(agents / wall, 2), "driver_cores": round(driver / wall, 2),
                "machine_busy_pct": round(100 * (total - stat[3] - stat[4]) / total, 1),
                "machine_iowait_pct": round(100 * stat[4] / total, 1)}


class Abort(Exception):
    """A step failed in a way that makes the rest of this cluster's measurements meaningless."""


# --------------------------------------------------------------------------------------------------------------
# Ports and HTTP


_taken: set[int] = set()


def free_ports(count: int) -> list[int]:
    """Ports free for TCP and UDP in 28000-31999 (below the kernel's range for outgoing connections, clear of
    gossip.sh's 20000-27999; kv.sh draws from the same range, so they are also checked when used)."""
    rng = random.Random()
    ports: list[int] = []
    for _ in range(20000):
        if len(ports) == count:
            return ports
        p = rng.randrange(28000, 32000)
        if p in ports or p in _taken:
            continue
        if port_free(p):
            ports.append(p)
            _taken.add(p)
    raise Abort("no free loopback ports in 28000-31999")


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self):
        close_quietly(self.conn)
        self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, retry: bool = True):
        """(status, body). Idempotent requests (retry=True) are retried once on a broken connection."""
        for attempt in range(2 if retry else 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                    self.conn.connect()
                    self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == (1 if retry else 0):
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, body: bytes | None = None):
        status, data = self.request(method, path, body)
        if status // 100 != 2:
            raise RuntimeError(f"{method} {path} on :{self.port}: HTTP {status}: {data[:200]!r}")
        return json.loads(data)

    def put(self, key: str, value: bytes, retry: bool = False) -> dict:
        status, data = self.request("PUT", "/v1/kv/" + key, value, {"Content-Type": "text/plain"}, retry=retry)
        if status != 200:
            raise RuntimeError(f"PUT {key} on :{self.port}: HTTP {status}: {data[:200]!r}")
        return json.loads(data)


# --------------------------------------------------------------------------------------------------------------
# Agents


class Agent:
    def __init__(self, args, workdir: str, name: str, gossip: bool, join_port: int | None = None):
        self.args = args
        self.name = name
        self.http_port, self.gossip_port = free_ports(2)
        self.gossip = gossip
        self.join_port = join_port
        self.data_dir = os.path.join(workdir, name)
        self.log_dir = workdir
        self.proc: subprocess.Popen | None = None
        self.listen_t: float | None = None
        self.spawn_t: float | None = None
        self.starts = 0
        self.api = Http(self.http_port)

    def command(self) -> list[str]:
        cmd = [self.args.gossamer_bin, "agent", "--node-name", self.name, "--data-dir", self.data_dir,
               "--http", f"127.0.0.1:{self.http_port}"]
        if self.gossip:
            cmd += ["--gossip", f"127.0.0.1:{self.gossip_port}"]
            if self.join_port is not None:
                cmd += ["--join", f"127.0.0.1:{self.join_port}"]
        return cmd

    def start(self) -> None:
        self.starts += 1
        for p in (self.http_port, self.gossip_port if self.gossip else None):
            if p is not None and not port_free(p):
                raise Abort(f"{self.name}: port {p} is taken by something else")
        err = open(os.path.join(self.log_dir, f"{self.name}.log"), "ab")
        self.listen_t = None
        self.spawn_t = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                     cwd=self.log_dir)
        err.close()
        with open(self.args.pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        threading.Thread(target=self._stdout, args=(self.proc,), daemon=True).start()

    def _stdout(self, proc: subprocess.Popen) -> None:
        with open(os.path.join(self.log_dir, f"{self.name}.out"), "ab") as out:
            for line in proc.stdout:
                if self.listen_t is None and b"listening on http://" in line and proc is self.proc:
                    self.listen_t = time.perf_counter()
                out.write(line)
                out.flush()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise Abort(f"{self.name} exited with status {self.proc.returncode if self.proc else '?'} during startup; "
                            f"see {self.name}.log")
            if self.listen_t is not None:
                try:
                    self.api.json("GET", "/v1/status")
                    return
                except (OSError, RuntimeError, http.client.HTTPException, ValueError):
                    pass
            time.sleep(0.02)
        raise Abort(f"{self.name} did not answer within {timeout:g} s of its start")

    def terminate(self, timeout: float = 15.0) -> tuple[float, bool]:
        """SIGTERM and wait for the exit: (seconds, exited by itself). SIGKILL after timeout."""
        self.api.close()
        t0 = time.perf_counter()
        if not self.running():
            return 0.0, True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            return time.perf_counter() - t0, True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return time.perf_counter() - t0, False

    def kill(self) -> None:
        self.api.close()
        if self.running():
            try:
                self.proc.kill()
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def consistency(self) -> dict:
        return self.api.json("GET", "/v1/consistency")

    def status(self) -> dict:
        return self.api.json("GET", "/v1/status")

    def members(self) -> dict:
        return {m["name"]: m["status"] for m in self.api.json("GET", "/v1/members")}


class Cluster:
    def __init__(self, args, workdir: str, n: int, prefix: str):
        os.makedirs(workdir, exist_ok=True)
        self.args = args
        self.agents: list[Agent] = []
        first = Agent(args, workdir, f"{prefix}0", gossip=True)
        self.agents.append(first)
        for i in range(1, n):
            self.agents.append(Agent(args, workdir, f"{prefix}{i}", gossip=True, join_port=first.gossip_port))

    def start(self) -> float:
        """Starts agent 0, then each other agent once the previous one answers; waits until every agent lists
        all N as alive and has N-1 replication peers. Returns the seconds that took."""
        t0 = time.perf_counter()
        for a in self.agents:
            a.start()
            a.wait_ready()
        n = len(self.agents)
        deadline = time.monotonic() + self.args.wait_timeout
        pending = set(range(n))
        last = {}
        while pending:
            if time.monotonic() > deadline:
                raise Abort(f"cluster of {n} not formed within {self.args.wait_timeout:g} s: "
                            + "; ".join(f"{self.agents[i].name}: {last.get(i, 'no answer')}" for i in sorted(pending)[:5]))
            for i in sorted(pending):
                a = self.agents[i]
                if not a.running():
                    raise Abort(f"{a.name} exited during formation")
                try:
                    members = a.members()
                    peers = len(a.consistency()["peers"])
                except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError) as e:
                    last[i] = f"error {e}"
                    continue
                alive = sum(1 for s in members.values() if s == "alive")
                last[i] = f"{alive} alive members, {peers} replication peers"
                if alive == n and peers == n - 1:
                    pending.discard(i)
            if pending:
                time.sleep(self.args.poll_ms / 1000)
        return time.perf_counter() - t0

    def check_running(self, what: str, skip: Agent | None = None) -> None:
        for a in self.agents:
            if a is not skip and not a.running():
                raise Abort(f"{a.name} exited (status {a.proc.returncode}) {what}; see {a.name}.log")

    def stop(self) -> None:
        for a in self.agents:
            a.kill()

    def counters(self, agents=None) -> dict:
        agents = agents if agents is not None else self.agents
        out = {"t": time.perf_counter(), "bytes_sent": 0, "bytes_received": 0, "gossip_bytes_out": 0, "gossip_datagrams_out": 0}
        for a in agents:
            c = a.consistency()
            s = a.status()
            out["bytes_sent"] += c["bytes_sent"]
            out["bytes_received"] += c["bytes_received"]
            g = s.get("gossip") or {}
            out["gossip_bytes_out"] += g.get("bytes_out", 0)
            out["gossip_datagrams_out"] += g.get("datagrams_out", 0)
        return out


# --------------------------------------------------------------------------------------------------------------
# Watch streams (Server-Sent Events over HTTP/1.1, chunked or close-delimited)


class Stream(WatchStream):
    """A watch on `prefix`?recurse on one agent: put events, matched on (key, stamp)."""

    closed_note = "stream closed by the agent"

    def __init__(self, agent: Agent, prefix: str):
        super().__init__(stream_socket("127.0.0.1", agent.http_port,
                                       sse_request("127.0.0.1", agent.http_port, f"/v1/watch/{prefix}?recurse")))
        self.agent = agent
        self.recv: dict[tuple[str, str], float] = {}  # (key, stamp) -> first receive time
        self.events = 0

    def message(self, msg: bytes, t: float) -> None:
        event, data = sse_event(msg)
        if event != "put":
            return  # snapshot, heartbeat, delete
        try:
            obj = json.loads(data)
            key = (obj["key"], obj["stamp"])
        except (ValueError, KeyError, TypeError) as e:
            self.errors.append(f"unparsable event ({e}): {msg[:120]!r}")
            return
        self.events += 1
        if key not in self.recv:
            self.recv[key] = t

    def seen_key(self, key: str) -> bool:
        return any(k == key for k, _ in list(self.recv))


class Watchers:
    """One thread reads every stream (selectors); each receive is timestamped right after recv()."""

    def __init__(self, agents: list[Agent], prefix: str):
        self.streams = [Stream(a, prefix) for a in agents]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=read_streams, args=(self.streams, self.stop_event), daemon=True)
        self.thread.start()

    def close(self):
        self.stop_event.set()
        self.thread.join(timeout=2)
        for s in self.streams:
            s.close()


# --------------------------------------------------------------------------------------------------------------
# 1 + 2: write-to-everywhere latency and bytes


def agent_roots(agent: Agent) -> dict:
    try:
        return {m["name"]: (m.get("tags") or {}).get("root") for m in agent.api.json("GET", "/v1/members")}
    except (OSError, RuntimeError, http.client.HTTPException, ValueError):
        return {}


def wait_all_agree(agents: list[Agent], timeout: float, poll: float) -> float | None:
    """Seconds until every agent's /v1/consistency says all_agree with the same root (None: timeout)."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cs = [a.consistency() for a in agents]
            if all(c["all_agree"] and len(c["peers"]) == len(agents) - 1 for c in cs) and len({c["root"] for c in cs}) == 1:
                return time.perf_counter() - t0
        except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError):
            pass
        time.sleep(poll)
    return None


def phase_latency(cluster: Cluster, args, n: int, rng: random.Random, res: dict) -> None:
    agents = cluster.agents
    prefix = "bench/repl/"

    # Idle window (before any watch or write, once every agent announced the same root and the announcements
    # had a second to die down): replication and gossip counters with nothing happening.
    cap = min(args.wait_timeout, 15.0)
    agree = wait_all_agree(agents, cap, args.poll_ms / 1000)
    res["all_agree_after_formation_s"] = None if agree is None else round(agree, 3)
    if agree is None:
        res.setdefault("notes", []).append(
            f"not every agent reported all_agree (with N-1 peers and one root) within {cap:g} s of formation; "
            f"root tags in agent 0's /v1/members: {agent_roots(agents[0])}")
    time.sleep(1)
    c0 = cluster.counters()
    u0 = Usage(agents)
    time.sleep(args.idle)
    c1 = cluster.counters()
    idle_s = c1["t"] - c0["t"]
    res["idle"] = {
        "seconds": round(idle_s, 3),
        "repl_bytes_sent_per_agent_s": round((c1["bytes_sent"] - c0["bytes_sent"]) / idle_s / n, 1),
        "gossip_bytes_out_per_agent_s": round((c1["gossip_bytes_out"] - c0["gossip_bytes_out"]) / idle_s / n, 1),
        "gossip_datagrams_out_per_agent_s": round((c1["gossip_datagrams_out"] - c0["gossip_datagrams_out"]) / idle_s / n, 2),
        "usage": u0.since(),
    }

    watchers = Watchers(agents, prefix)
    try:
        # Sync: one put on each agent in turn, until every stream has seen it, so every watch is live and every
        # agent's push path to every other agent has carried a write.
        t_sync = time.perf_counter()
        for i, a in enumerate(agents):
            key = f"{prefix}sync-{i}"
            deadline = time.monotonic() + 15
            attempt = 0
            while True:
                if time.monotonic() > deadline:
                    behind = [s.agent.name for s in watchers.streams if not s.seen_key(key)]
                    errs = [e for s in watchers.streams for e in s.errors][:3]
                    raise Abort(f"sync put {key} on {a.name} not seen by {behind} within 15 s; stream errors {errs}")
                if attempt == 0 or attempt % 20 == 0:
                    a.api.put(key, make_value(f"sync={i}.{attempt}", args.value_size), retry=True)
                attempt += 1
                time.sleep(0.05)
                if all(s.seen_key(key) for s in watchers.streams):
                    break
        res["sync_s"] = round(time.perf_counter() - t_sync, 3)

        # Measured writes: a steady rate, each to a random agent; SENDERS threads share the schedule so one slow
        # PUT does not delay the next ones.
        w = args.writes
        targets = [rng.randrange(n) for _ in range(w)]
        keys = [f"{prefix}w{k:06d}" for k in range(w)]
        send: list[float | None] = [None] * w
        stamps: list[str | None] = [None] * w
        put_lat: list[float | None] = [None] * w
        errors: list[str] = []
        c_before = cluster.counters()

        def put_one(k: int, conn: Http) -> None:
            value = make_value(f"seq={k:08d}", args.value_size)
            t0 = time.perf_counter()
            send[k] = t0
            try:
                answer = conn.put(keys[k], value)
                stamps[k] = answer["stamp"]
                put_lat[k] = time.perf_counter() - t0
            except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError) as e:
                errors.append(f"put {k} on {agents[targets[k]].name}: {e}")
                send[k] = None
                conn.close()

        u_write = Usage(agents)
        start, t_last_send, late = paced_calls(w, args.rate, args.senders, lambda k: targets[k],
                                               lambda i: Http(agents[i].http_port), put_one, errors, "write")
        sent = [k for k in range(w) if send[k] is not None and stamps[k] is not None]

        # Wait for every event on every stream (at most --grace s after the last put).
        grace_deadline = time.monotonic() + args.grace
        def done(k):
            return all((keys[k], stamps[k]) in s.recv for s in watchers.streams)
        remaining = list(sent)
        while remaining and time.monotonic() < grace_deadline:
            remaining = [k for k in remaining if not done(k)]
            if remaining:
                time.sleep(0.02)
        tail_s = time.perf_counter() - t_last_send
        usage_write = u_write.since()
        c_after = cluster.counters()
        window = c_after["t"] - c_before["t"]

        lat = []
        missed_writes = 0
        missed_events = 0
        per_write = []
        for k in range(w):
            if send[k] is None or stamps[k] is None:
                continue
            times = [s.recv.get((keys[k], stamps[k])) for s in watchers.streams]
            miss = sum(1 for t in times if t is None)
            if miss:
                missed_writes += 1
                missed_events += miss
                everywhere = math.inf
            else:
                everywhere = (max(times) - send[k]) * 1000
            lat.append(everywhere)
            local = times[targets[k]]
            per_write.append({"k": k, "agent": agents[targets[k]].name, "stamp": stamps[k],
                              "put_ms": round(put_lat[k] * 1000, 3),
                              "local_event_ms": None if local is None else round((local - send[k]) * 1000, 3),
                              "everywhere_ms": None if math.isinf(everywhere) else round(everywhere, 3),
                              "missing_on": [watchers.streams[j].agent.name for j, t in enumerate(times) if t is None]})
        lat.sort()
        puts = sorted(x * 1000 for x in put_lat if x is not None)
        r3 = lambda x: None if x is None else (x if math.isinf(x) else round(x, 3))
        stream_errors = [f"{s.agent.name}: {e}" for s in watchers.streams for e in s.errors]
        res["latency"] = {
            "writes": w, "rate": args.rate, "sent": len(sent), "put_errors": len(errors), "put_error_samples": errors[:10],
            "p50_ms": r3(percentile(lat, 50)), "p90_ms": r3(percentile(lat, 90)), "p99_ms": r3(percentile(lat, 99)),
            "max_ms": r3(lat[-1] if lat else None),
            "mean_ms": r3(sum(x for x in lat if not math.isinf(x)) / max(1, sum(1 for x in lat if not math.isinf(x)))),
            "missed_writes": missed_writes, "missed_events": missed_events,
            "put_p50_ms": r3(percentile(puts, 50)), "put_p99_ms": r3(percentile(puts, 99)),
            "schedule_late_max_ms": round(max(late) * 1000, 1) if late else 0.0,
            "send_span_s": round(t_last_send - start, 3), "tail_s": round(tail_s, 3),
            "stream_errors": stream_errors[:10],
            "usage": usage_write,
        }
        d_sent = c_after["bytes_sent"] - c_before["bytes_sent"]
        d_recv = c_after["bytes_received"] - c_before["bytes_received"]
        d_gossip = c_after["gossip_bytes_out"] - c_before["gossip_bytes_out"]
        d_dgrams = c_after["gossip_datagrams_out"] - c_before["gossip_datagrams_out"]
        nw = max(1, len(sent))
        idle = res["idle"]
        res["bytes"] = {
            "window_s": round(window, 3),
            "repl_bytes_sent": d_sent, "repl_bytes_received": d_recv,
            "repl_bytes_sent_per_write_per_agent": round(d_sent / nw / n, 1),
            "repl_bytes_sent_per_write_per_agent_minus_idle":
                round((d_sent - idle["repl_bytes_sent_per_agent_s"] * n * window) / nw / n, 1),
            "gossip_bytes_out": d_gossip, "gossip_datagrams_out": d_dgrams,
            "gossip_bytes_out_per_write_per_agent": round(d_gossip / nw / n, 1),
            "gossip_bytes_out_per_write_per_agent_minus_idle":
                round((d_gossip - idle["gossip_bytes_out_per_agent_s"] * n * window) / nw / n, 1),
        }
        with open(os.path.join(args.out_dir, f"writes-n{n}.json"), "w") as f:
            json.dump(per_write, f)
    finally:
        watchers.close()


# --------------------------------------------------------------------------------------------------------------
# 3: repair after an absence


def write_pool(agents: list[Agent], keys: list[str], size: int, concurrency: int, deadline: float) -> tuple[int, list[str]]:
    """Writes every key (to agents round-robin) with `concurrency` threads, each with its own connections."""
    errors: list[str] = []
    done = [0] * concurrency

    def worker(tid: int):
        conns = {}
        try:
            for k in range(tid, len(keys), concurrency):
                if time.monotonic() > deadline:
                    errors.append(f"worker {tid}: deadline reached at key {k}")
                    return
                i = k % len(agents)
                conn = conns.get(i) or conns.setdefault(i, Http(agents[i].http_port))
                try:
                    conn.put(keys[k], make_value(f"repair={k}", size))
                    done[tid] += 1
                except (OSError, RuntimeError, http.client.HTTPException, ValueError) as e:
                    errors.append(f"put {keys[k]} on {agents[i].name}: {e}")
                    conn.close()
                    if len(errors) > 100:
                        return
        finally:
            for c in conns.values():
                c.close()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic() + 5))
    return sum(done), errors


def phase_repair(cluster: Cluster, args, n: int, res: dict) -> None:
    agents = cluster.agents
    victim = agents[-1]
    others = agents[:-1]
    rep: dict = {"keys": args.repair_keys, "victim": victim.name}
    res["repair"] = rep

    # Stop it gracefully and wait until everyone else lists it as gone.
    stop_s, clean = victim.terminate(timeout=15)
    rep["stop_s"] = round(stop_s, 3)
    if not clean:
        rep.setdefault("notes", []).append(f"{victim.name} did not exit within 15 s of SIGTERM; sent SIGKILL")
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.wait_timeout
    pending = set(range(len(others)))
    seen: dict[int, str] = {}
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            try:
                st = others[i].members().get(victim.name, "unknown")
            except (OSError, RuntimeError, http.client.HTTPException, ValueError):
                continue
            seen[i] = st
            if st in ("left", "dead"):
                pending.discard(i)
        if pending:
            time.sleep(args.poll_ms / 1000)
    if pending:
        raise Abort(f"after {args.wait_timeout:g} s, {len(pending)} agents still list {victim.name} as "
                    f"{sorted(set(seen.get(i, '?') for i in pending))}")
    rep["gone_everywhere_s"] = round(time.perf_counter() - t0, 3)
    rep["gone_status"] = sorted(set(seen.values()))
    time.sleep(0.3)  # the replicator refreshes its peer list every 100 ms

    # Divergence: REPAIR_KEYS new keys on the others.
    keys = [f"bench/repair/k{k:07d}" for k in range(args.repair_keys)]
    u = Usage(others)
    t0 = time.perf_counter()
    written, errors = write_pool(others, keys, args.value_size, args.repair_concurrency,
                                 time.monotonic() + args.repair_timeout * 3)
    write_s = time.perf_counter() - t0
    rep["write_usage"] = u.since()
    rep["write_s"] = round(write_s, 3)
    rep["write_rate"] = round(written / write_s, 1) if write_s > 0 else None
    rep["written"] = written
    if errors:
        rep["write_errors"] = errors[:10]
        rep["write_error_count"] = len(errors)
    cluster.check_running("while the divergent keys were written", skip=victim)

    # The others must agree among themselves first (push replication between them).
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.repair_timeout
    ref = None
    while time.monotonic() < deadline:
        try:
            cs = [a.consistency() for a in others]
        except (OSError, RuntimeError, http.client.HTTPException, ValueError):
            time.sleep(args.poll_ms / 1000)
            continue
        if len({c["root"] for c in cs}) == 1 and len({c["keys"] for c in cs}) == 1:
            ref = cs[0]
            break
        time.sleep(args.poll_ms / 1000)
    if ref is None:
        raise Abort(f"the {len(others)} remaining agents did not agree within {args.repair_timeout:g} s of the last write")
    rep["others_agree_s"] = round(time.perf_counter() - t0, 3)
    rep["ref_keys"] = ref["keys"]
    rep["ref_root"] = ref["root"]

    # Restart it on the same data dir and ports; time from its "listening on" line until it holds what they hold.
    u = Usage(others)
    victim.start()
    deadline = time.monotonic() + 30
    while victim.listen_t is None and time.monotonic() < deadline:
        if not victim.running():
            raise Abort(f"{victim.name} exited during its restart; see {victim.name}.log")
        time.sleep(0.005)
    if victim.listen_t is None:
        raise Abort(f"{victim.name} did not print its listening line within 30 s of its restart")
    rep["startup_s"] = round(victim.listen_t - victim.spawn_t, 3)
    t_listen = victim.listen_t
    deadline = time.monotonic() + args.repair_timeout
    repaired_at = None
    agree_at = None
    polls = 0
    last = None
    first_keys = None
    while time.monotonic() < deadline:
        if not victim.running():
            raise Abort(f"{victim.name} exited while repairing; see {victim.name}.log")
        try:
            c = victim.consistency()
            # The others' state now, not only before the restart: the agents' own replicated records (alert state,
            # registry health) may change meanwhile, e.g. when an alert about the stopped agent resolves.
            now = [a.consistency() for a in others]
        except (OSError, RuntimeError, http.client.HTTPException, ValueError):
            time.sleep(args.poll_ms / 1000)
            continue
        t = time.perf_counter()
        polls += 1
        last = c
        if len({o["root"] for o in now}) == 1 and len({o["keys"] for o in now}) == 1:
            ref = now[0]
        if first_keys is None:
            first_keys = c["keys"]
        state = (c.get("all_agree"), c["keys"] == ref["keys"], c["root"] == ref["root"])
        if polls <= 3 or state != rep.get("_last_state"):
            rep.setdefault("victim_polls", []).append(
                {"t_ms": round((t - t_listen) * 1000, 1), "keys": c["keys"], "all_agree": c.get("all_agree"),
                 "peers": len(c.get("peers", [])), "root_matches": c["root"] == ref["root"]})
        rep["_last_state"] = state
        if agree_at is None and c.get("all_agree"):
            agree_at = t
        if c["keys"] == ref["keys"] and c["root"] == ref["root"]:
            repaired_at = t
            break
        time.sleep(args.poll_ms / 1000)
    rep["polls"] = polls
    rep["keys_at_first_poll"] = first_keys
    if repaired_at is None:
        rep["repair_s"] = math.inf
        rep.setdefault("notes", []).append(
            f"not repaired within {args.repair_timeout:g} s: {victim.name} holds {last and last['keys']} keys, root "
            f"{last and last['root']}, others {ref['keys']} keys, root {ref['root']}")
    else:
        rep["repair_s"] = round(repaired_at - t_listen, 3)
    rep.pop("_last_state", None)
    rep["usage"] = u.since()
    if agree_at is not None:
        rep["victim_all_agree_s"] = round(agree_at - t_listen, 3)
        if repaired_at is None or agree_at < repaired_at:
            first = next((p for p in rep.get("victim_polls", []) if p["all_agree"]), None)
            rep.setdefault("notes", []).append(
                f"{victim.name} reported all_agree=true {rep['victim_all_agree_s']:.3f} s after listening, before it held the "
                f"others' keys" + (f" (that poll: {first['keys']} keys of {ref['keys']}, {first['peers']} peers)" if first else ""))
    # What did the work: anti-entropy repairs counted by the restarted agent (added when its first exchange
    # ends: wait up to 10 s for it) and by the others, and what the others pushed to it after it came back.
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            c = victim.consistency()
            if any(p.get("last_check") for p in c["peers"]):
                break
            time.sleep(args.poll_ms / 1000)
        rep["victim_repairs_total"] = c["repairs_total"]
        rep["others_repairs_total"] = sum(a.consistency()["repairs_total"] for a in others)
        rep["push_bytes_to_victim"] = sum(p["bytes_sent"] for a in others for p in a.consistency()["peers"] if p["node"] == victim.name)
        roots = {a.consistency()["root"] for a in others}
        if roots != {ref["root"]}:
            rep.setdefault("notes", []).append(
                f"the others' root changed after the repair: {sorted(roots)} vs {ref['root']} (their own records changed)")
    except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError) as e:
        rep.setdefault("notes", []).append(f"could not read repair counters: {e}")


# --------------------------------------------------------------------------------------------------------------
# 4: put throughput, replication on vs off


def run_wrk(args, port: int, out_path: str) -> dict:
    t = min(args.threads, args.concurrency)
    env = dict(os.environ, BENCH_SYSTEM="gossamer", BENCH_OP="put", BENCH_KEYS=str(args.keys), BENCH_VALUE=str(args.value_size))
    cmd = ["wrk", f"-t{t}", f"-c{args.concurrency}", f"-d{args.duration}s", "--timeout", "5s", "--latency",
           "-s", os.path.join(HERE, "kv.lua"), f"http://127.0.0.1:{port}"]
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        with open(args.pidfile, "a") as f:
            f.write(f"{p.pid}\n")
        try:
            p.wait(timeout=args.duration + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Abort(f"wrk did not finish within {args.duration + 60} s")
    text = open(out_path, encoding="utf-8", errors="replace").read()
    line = next((l for l in text.splitlines() if l.startswith("WRKRESULT")), None)
    if line is None:
        raise Abort(f"no WRKRESULT line from wrk (exit {p.returncode}): {text[-500:]}")
    fields = dict(x.split("=", 1) for x in line.split()[1:])
    return {k: float(v) for k, v in fields.items()}


def preload(agent: Agent, keys: int, size: int) -> None:
    v = bench_value(size)
    for k in range(1, keys + 1):
        agent.api.put(f"bench/k{k}", v, retry=True)


def wait_caught_up(writer: Agent, timeout: float, poll: float) -> tuple[float, int, dict]:
    """Seconds until every peer of `writer` has acknowledged all its writes; also the backlog at the first poll."""
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout
    first_backlog = None
    last = {}
    while time.monotonic() < deadline:
        try:
            c = writer.consistency()
        except (OSError, RuntimeError, http.client.HTTPException, ValueError):
            time.sleep(poll)
            continue
        last = {p["node"]: p["unacked_writes"] for p in c["peers"]}
        backlog = max(last.values()) if last else 0
        if first_backlog is None:
            first_backlog = backlog
        if last and backlog == 0:
            return time.perf_counter() - t0, first_backlog, last
        time.sleep(poll)
    return math.inf, first_backlog or 0, last


def phase_throughput(args, workdir: str, results: dict) -> None:
    tp: dict = {"runs": []}
    results["throughput"] = tp
    solo = Agent(args, os.path.join(workdir, "solo"), "solo", gossip=False)
    os.makedirs(solo.log_dir, exist_ok=True)
    cluster = Cluster(args, os.path.join(workdir, "tp"), 3, "t")
    try:
        solo.start()
        solo.wait_ready()
        tp["cluster_formation_s"] = round(cluster.start(), 3)
        writer = cluster.agents[0]
        log(f"throughput: preloading {args.keys} keys into the lone agent and the cluster")
        preload(solo, args.keys, args.value_size)
        preload(writer, args.keys, args.value_size)
        wait_caught_up(writer, args.wait_timeout, args.poll_ms / 1000)
        if args.warmup > 0:
            log(f"throughput: warm-up ({args.warmup} s of puts each, not counted)")
            for name, port in (("solo", solo.http_port), ("cluster", writer.http_port)):
                saved = args.duration
                args.duration = args.warmup
                try:
                    run_wrk(args, port, os.path.join(args.out_dir, f"wrk-warmup-{name}.txt"))
                finally:
                    args.duration = saved
            wait_caught_up(writer, args.wait_timeout, args.poll_ms / 1000)
            time.sleep(args.pause)
        for run in range(1, args.throughput_runs + 1):
            order = ["solo", "cluster"] if run % 2 else ["cluster", "solo"]
            for which in order:
                if not solo.running():
                    raise Abort("the lone agent exited; see solo/solo.log")
                cluster.check_running("during the throughput runs")
                procs = [solo] if which == "solo" else cluster.agents
                cpu0 = [cpu_seconds(a.proc.pid) for a in procs]
                port = solo.http_port if which == "solo" else writer.http_port
                t0 = time.perf_counter()
                r = run_wrk(args, port, os.path.join(args.out_dir, f"wrk-{which}-run{run}.txt"))
                wall = time.perf_counter() - t0
                cpu1 = [cpu_seconds(a.proc.pid) for a in procs]
                entry = {"run": run, "setup": which, "rps": r["rps"], "requests": int(r["requests"]),
                         "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                         "errors": int(r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"]),
                         "non2xx": int(r["non2xx"]),
                         "cpu_cores_writer": round((cpu1[0] - cpu0[0]) / wall, 2),
                         "writer_us_per_put": round((cpu1[0] - cpu0[0]) / max(1, r["requests"]) * 1e6, 1)}
                if which == "cluster":
                    entry["cpu_cores_peers"] = round(sum(cpu1[i] - cpu0[i] for i in range(1, len(procs))) / wall, 2)
                    catch, backlog, last = wait_caught_up(writer, args.wait_timeout, args.poll_ms / 1000)
                    entry["catch_up_s"] = None if math.isinf(catch) else round(catch, 3)
                    entry["backlog_at_stop"] = backlog
                    if math.isinf(catch):
                        entry["note"] = f"peers still had unacknowledged writes after {args.wait_timeout:g} s: {last}"
                    else:
                        roots = {a.consistency()["root"] for a in cluster.agents}
                        entry["roots_equal"] = len(roots) == 1
                tp["runs"].append(entry)
                extra = ""
                if which == "cluster":
                    extra = (f", peers {entry['cpu_cores_peers']} cores; backlog at stop {entry['backlog_at_stop']}, "
                             f"caught up in {entry['catch_up_s']} s")
                log(f"throughput run {run}/{args.throughput_runs} {which:7s} c={args.concurrency}: {entry['rps']:.0f} puts/s "
                    f"p50 {entry['p50_ms']:.2f} ms p99 {entry['p99_ms']:.2f} ms, errors {entry['errors']}; "
                    f"writer {entry['cpu_cores_writer']} cores{extra}")
                time.sleep(args.pause)
    finally:
        solo.kill()
        cluster.stop()


# --------------------------------------------------------------------------------------------------------------
# Report


def fmt(x, digits=1, inf="timeout"):
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return inf
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}"


def goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**MET**" if ok else "**NOT MET**")


def cpu_per_write_ms(r: dict):
    """CPU the agents spent per measured write: (cores during the writes - idle cores) x seconds / writes."""
    lat = r.get("latency", {})
    u, idle = lat.get("usage"), r.get("idle", {}).get("usage")
    if not u or not idle or not lat.get("sent"):
        return None
    return max(0.0, u["agents_cores"] - idle["agents_cores"]) * u["wall_s"] / lat["sent"] * 1000


def report(results: dict, args, meta: dict) -> str:
    sizes = [r["n"] for r in results["clusters"]]
    by_n = {r["n"]: r for r in results["clusters"]}
    L = []
    L.append(f"Replication benchmark, {meta.get('date')}: {meta.get('command')}")
    L.append(f"{meta.get('versions')}; load average before {meta.get('load_before')}, after {meta.get('load_after', 'n/a')}")
    L.append("")

    def cell(n, path, digits=1, inf="timeout"):
        r = by_n[n]
        for p in path:
            if not isinstance(r, dict) or p not in r:
                return "n/a" if "error" not in by_n[n] else "failed"
            r = r[p]
        return fmt(r, digits, inf)

    rows = [
        ("write → event on every agent: p50 ms", ("latency", "p50_ms"), 1),
        ("write → event on every agent: p99 ms", ("latency", "p99_ms"), 1),
        ("write → event on every agent: max ms", ("latency", "max_ms"), 1),
        ("writes not seen everywhere (must be 0)", ("latency", "missed_writes"), 0),
        ("failed PUTs (must be 0)", ("latency", "put_errors"), 0),
        ("PUT answer: p50 / p99 ms", None, 1),
        ("replication bytes sent per write per agent", ("bytes", "repl_bytes_sent_per_write_per_agent"), 1),
        ("gossip bytes out per write per agent (minus idle rate)", ("bytes", "gossip_bytes_out_per_write_per_agent_minus_idle"), 1),
        ("idle: replication / gossip bytes out per agent per s", None, 1),
        ("during the writes: CPU of all agents (cores) / machine busy % / iowait %", None, 1),
        ("agents' CPU per write, all agents together, minus idle (ms)", None, 1),
        (f"repair of {args.repair_keys:,} divergent keys: s from listening to same keys+root", ("repair", "repair_s"), 2),
        ("  restarted agent: startup (spawn → listening) s", ("repair", "startup_s"), 2),
        ("  restarted agent: all_agree true after s", ("repair", "victim_all_agree_s"), 2),
        ("  delivered by: push to it after restart (KiB) / its anti-entropy repairs", None, 0),
        ("  divergent writes: keys/s to the N−1 others", ("repair", "write_rate"), 0),
        ("  divergent writes: CPU of the agents (cores) / machine busy % / iowait %", None, 1),
    ]
    L.append("| measure | " + " | ".join(f"N={n}" for n in sizes) + " | goal |")
    L.append("|---|" + "---:|" * len(sizes) + "---|")
    for label, path, digits in rows:
        cells = []
        for n in sizes:
            if label.startswith("PUT answer"):
                cells.append(f"{cell(n, ('latency', 'put_p50_ms'), 2)} / {cell(n, ('latency', 'put_p99_ms'), 2)}")
            elif label.startswith("idle:"):
                cells.append(f"{cell(n, ('idle', 'repl_bytes_sent_per_agent_s'), 0)} / {cell(n, ('idle', 'gossip_bytes_out_per_agent_s'), 0)}")
            elif label.startswith("during the writes"):
                u = by_n[n].get("latency", {}).get("usage", {})
                cells.append(f"{fmt(u.get('agents_cores'), 2)} / {fmt(u.get('machine_busy_pct'), 0)} / {fmt(u.get('machine_iowait_pct'), 0)}")
            elif label.startswith("agents' CPU per write"):
                cells.append(fmt(cpu_per_write_ms(by_n[n]), 1))
            elif args.repair_keys == 0 and (label.startswith("  ") or (path and path[0] == "repair")):
                cells.append("skipped")
            elif label.startswith("  delivered by"):
                rep = by_n[n].get("repair", {})
                kib = rep.get("push_bytes_to_victim")
                cells.append(f"{fmt(None if kib is None else kib / 1024, 0)} / {fmt(rep.get('victim_repairs_total'), 0)}")
            elif label.startswith("  divergent writes: CPU"):
                u = by_n[n].get("repair", {}).get("write_usage", {})
                cells.append(f"{fmt(u.get('agents_cores'), 2)} / {fmt(u.get('machine_busy_pct'), 0)} / {fmt(u.get('machine_iowait_pct'), 0)}")
            else:
                cells.append(cell(n, path, digits))
        g = ""
        if path == ("latency", "p99_ms"):
            g = "≤ 500 ms at N=16"
        elif path == ("repair", "repair_s"):
            g = "≤ 5 s"
        L.append(f"| {label} | " + " | ".join(cells) + f" | {g} |")
    L.append("")

    tp = results.get("throughput")
    tp_ratio = None
    if tp and tp.get("runs"):
        def med(setup, key):
            xs = [r[key] for r in tp["runs"] if r["setup"] == setup and r.get(key) is not None]
            return statistics.median(xs) if xs else None
        solo_rps, cl_rps = med("solo", "rps"), med("cluster", "rps")
        tp_ratio = cl_rps / solo_rps if solo_rps and cl_rps else None
        nruns = len([r for r in tp["runs"] if r["setup"] == "cluster"])
        L.append(f"Put throughput, wrk c={args.concurrency}, {args.duration} s per run, median of {nruns} interleaved runs:")
        L.append("")
        L.append("| setup | puts/s | p50 ms | p99 ms | errors | CPU cores: writer | writer CPU µs per put | CPU cores: its 2 peers | peers' backlog at stop → caught up (s) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for setup, label in (("solo", "one agent, no --gossip"), ("cluster", "agent 0 of a 3-agent cluster")):
            errs = sum(r["errors"] for r in tp["runs"] if r["setup"] == setup)
            peers = fmt(med(setup, "cpu_cores_peers"), 2) if setup == "cluster" else ""
            catch = ""
            if setup == "cluster":
                catch = ", ".join(f"{r['backlog_at_stop']} → {fmt(r.get('catch_up_s'), 2)}" for r in tp["runs"] if r["setup"] == "cluster")
            L.append(f"| {label} | {fmt(med(setup, 'rps'), 0)} | {fmt(med(setup, 'p50_ms'), 2)} | {fmt(med(setup, 'p99_ms'), 2)} | "
                     f"{errs} | {fmt(med(setup, 'cpu_cores_writer'), 2)} | {fmt(med(setup, 'writer_us_per_put'), 0)} | {peers} | {catch} |")
        L.append("")
        if tp_ratio is not None:
            L.append(f"Replication on / off: {tp_ratio:.2f}x (drop {100 * (1 - tp_ratio):.0f}%).")
            us_solo, us_cl = med("solo", "writer_us_per_put"), med("cluster", "writer_us_per_put")
            cores_solo = med("solo", "cpu_cores_writer")
            if us_solo and us_cl and cores_solo:
                L.append(f"The writer's own CPU per put is {us_cl / us_solo:.2f}x with replication; at the lone agent's "
                         f"{cores_solo:.2f} cores that alone would give {cores_solo / us_cl * 1e6:,.0f} puts/s "
                         f"({cores_solo / us_cl * 1e6 / med('solo', 'rps'):.2f}x). The rest of the drop is CPU the two peers "
                         f"take on the same {os.cpu_count()} cores.")
        L.append("")

    L.append("Goals:")
    g16 = by_n.get(16, {}).get("latency", {}).get("p99_ms") if 16 in by_n else None
    if 16 in by_n:
        L.append(f"  - write-to-everywhere p99 ≤ 500 ms at N=16: {fmt(g16, 1)} ms -> {goal(None if g16 is None else g16 <= 500)}")
    else:
        L.append("  - write-to-everywhere p99 ≤ 500 ms at N=16: N=16 not run -> n/a"
                 + "".join(f"; N={n}: {cell(n, ('latency', 'p99_ms'))} ms" for n in sizes))
    if args.repair_keys > 0:
        for n in sizes:
            rs = by_n[n].get("repair", {}).get("repair_s")
            L.append(f"  - repair of {args.repair_keys:,} keys ≤ 5 s, N={n}: {fmt(rs, 2)} s -> {goal(None if rs is None else rs <= 5)}")
    if tp_ratio is not None:
        L.append(f"  - put throughput drop with replication ≤ 20%: {tp_ratio:.2f}x -> {goal(tp_ratio >= 0.8)}")
    missed = sum(by_n[n].get("latency", {}).get("missed_writes", 0) for n in sizes)
    put_err = sum(by_n[n].get("latency", {}).get("put_errors", 0) for n in sizes)
    L.append(f"  - every write seen everywhere, no failed PUT: {missed} missed, {put_err} failed -> {goal(missed == 0 and put_err == 0)}")
    L.append("")

    anomalies = []
    for n in sizes:
        r = by_n[n]
        if "error" in r:
            anomalies.append(f"N={n}: ABORTED: {r['error']}")
        lat, rep = r.get("latency", {}), r.get("repair", {})
        anomalies.extend(f"N={n}: {e}" for e in r.get("notes", []) + lat.get("put_error_samples", []))
        anomalies.extend(f"N={n}: watch stream {e}" for e in lat.get("stream_errors", []))
        if lat.get("missed_writes"):
            anomalies.append(f"N={n}: {lat['missed_writes']} writes ({lat['missed_events']} events) not seen everywhere within "
                             f"{args.grace:g} s of the last put; see writes-n{n}.json")
        if lat.get("schedule_late_max_ms", 0) > 100:
            anomalies.append(f"N={n}: the put schedule fell behind by up to {lat['schedule_late_max_ms']} ms (slow PUT answers)")
        anomalies.extend(f"N={n} repair: {e}" for e in rep.get("write_errors", []) + rep.get("notes", []))
    if tp:
        for x in tp.get("runs", []):
            if x.get("errors"):
                anomalies.append(f"throughput {x['setup']} run {x['run']}: {x['errors']} wrk errors ({x['non2xx']} non-2xx)")
            if x.get("note"):
                anomalies.append(f"throughput {x['setup']} run {x['run']}: {x['note']}")
            if x.get("roots_equal") is False:
                anomalies.append(f"throughput cluster run {x['run']}: the 3 roots differ after every write was acknowledged")
        if tp.get("error"):
            anomalies.append(f"throughput: ABORTED: {tp['error']}")
    if anomalies:
        L.append("ERRORS / ANOMALIES:")
        L.extend(f"  - {a}" for a in anomalies)
        L.append("")

    L.append("Per size:")
    for n in sizes:
        r = by_n[n]
        lat, b, rep, idle = r.get("latency", {}), r.get("bytes", {}), r.get("repair", {}), r.get("idle", {})
        L.append(f"  - N={n}: formation {fmt(r.get('formation_s'), 2)} s, sync {fmt(r.get('sync_s'), 2)} s; "
                 f"{lat.get('sent', 0)} puts over {fmt(lat.get('send_span_s'), 2)} s (schedule late ≤ {fmt(lat.get('schedule_late_max_ms'), 1)} ms), "
                 f"last event {fmt(lat.get('tail_s'), 2)} s after the last put; p90 {fmt(lat.get('p90_ms'), 1)} ms, mean {fmt(lat.get('mean_ms'), 1)} ms; "
                 f"replication {fmt(b.get('repl_bytes_sent'), 0)} B sent / {fmt(b.get('repl_bytes_received'), 0)} B received in "
                 f"{fmt(b.get('window_s'), 2)} s ({fmt(b.get('repl_bytes_sent_per_write_per_agent_minus_idle'), 1)} B/write/agent minus idle); "
                 f"gossip {fmt(b.get('gossip_bytes_out'), 0)} B / {fmt(b.get('gossip_datagrams_out'), 0)} datagrams out "
                 f"({fmt(b.get('gossip_bytes_out_per_write_per_agent'), 1)} B/write/agent raw); idle gossip "
                 f"{fmt(idle.get('gossip_datagrams_out_per_agent_s'), 2)} datagrams/s/agent, idle CPU of all agents "
                 f"{fmt(idle.get('usage', {}).get('agents_cores'), 2)} cores; during the writes the driver used "
                 f"{fmt(lat.get('usage', {}).get('driver_cores'), 2)} cores")
        if rep:
            L.append(f"    repair: {rep.get('victim')} stopped in {fmt(rep.get('stop_s'), 2)} s, {'/'.join(rep.get('gone_status', []))} everywhere after "
                     f"{fmt(rep.get('gone_everywhere_s'), 2)} s; {fmt(rep.get('written'), 0)} keys written in {fmt(rep.get('write_s'), 2)} s; others agreed "
                     f"{fmt(rep.get('others_agree_s'), 2)} s later ({fmt(rep.get('ref_keys'), 0)} keys); restart: listening after "
                     f"{fmt(rep.get('startup_s'), 2)} s, {fmt(rep.get('keys_at_first_poll'), 0)} keys at the first poll, repaired "
                     f"{fmt(rep.get('repair_s'), 2)} s after listening ({rep.get('polls', 0)} polls); repairs_total: restarted "
                     f"{fmt(rep.get('victim_repairs_total'), 0)}, others {fmt(rep.get('others_repairs_total'), 0)}; pushed to it after the restart "
                     f"{fmt(rep.get('push_bytes_to_victim'), 0)} B; polls (the first three, then each change): "
                     + ", ".join(f"{p['t_ms']:.0f} ms {p['keys']} keys all_agree={p['all_agree']} peers={p['peers']} "
                                 f"root={'same' if p['root_matches'] else 'other'}" for p in rep.get("victim_polls", [])[:10]))
    L.append("")
    L.append("Method: " + meta.get("method", ""))
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gossamer-bin", required=True)
    ap.add_argument("--sizes", default="3 5 16")
    # The numeric knobs, in replication.sh's order: option -> (type, default[, help]).
    knobs = {
        "--writes": (int, 500), "--rate": (float, 100),
        "--senders": (int, 16, "threads sharing the put schedule (so slow answers do not slow the rate)"),
        "--value-size": (int, 256), "--grace": (float, 10, "seconds after the last put to wait for late events"),
        "--idle": (float, 3, "idle window before the writes (byte rates), seconds"),
        "--repair-keys": (int, 10000), "--repair-concurrency": (int, 16), "--repair-timeout": (float, 120),
        "--poll-ms": (int, 50), "--wait-timeout": (float, 60), "--seed": (int, 1),
        "--throughput-runs": (int, 3), "--duration": (int, 10), "--concurrency": (int, 64), "--threads": (int, 2),
        "--keys": (int, 1000), "--warmup": (int, 2), "--pause": (float, 1),
    }
    for opt, (kind, default, *help_text) in knobs.items():
        ap.add_argument(opt, type=kind, default=default, help=help_text[0] if help_text else None)
    for opt in ("--out-dir", "--pidfile", "--tmp"):
        ap.add_argument(opt, required=True)
    ap.add_argument("--meta", action="append", default=[], help="key=value for the report header")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split()]
    meta = driver_start(args)
    meta["method"] = (
        f"agents on loopback, default settings (durability full, anti-entropy every 5 s); one SSE watch per agent on "
        f"bench/repl/?recurse, {args.writes} puts of {args.value_size} B at {args.rate:g}/s to random agents (seed {args.seed}, "
        f"{args.senders} sender threads), latency = last agent's event (matched on key+stamp) minus the time just before "
        f"the PUT was sent, missed events count as +inf; bytes from /v1/consistency bytes_sent (replication bodies, no "
        f"HTTP headers) and /v1/status gossip.bytes_out summed over agents, / writes / N; repair: SIGTERM of the last "
        f"agent, {args.repair_keys} keys written to the others with {args.repair_concurrency} concurrent PUTs, restart on "
        f"the same data dir, /v1/consistency polled every {args.poll_ms} ms; throughput: wrk + bench/lib/kv.lua puts, "
        f"c={args.concurrency}, {args.duration} s, {args.keys} keys")
    results: dict = {"meta": meta, "clusters": []}
    rng = random.Random(args.seed)
    started = time.monotonic()
    rc = 0

    def save():
        with open(os.path.join(args.out_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=lambda x: None)

    try:
        for n in sizes:
            log(f"==> N={n} (load {loadavg()}, {time.monotonic() - started:.0f} s elapsed)")
            res: dict = {"n": n}
            results["clusters"].append(res)
            workdir = os.path.join(args.tmp, f"n{n}")
            cluster = Cluster(args, workdir, n, "r")
            try:
                res["formation_s"] = round(cluster.start(), 3)
                log(f"N={n}: {n} agents up and meshed in {res['formation_s']} s; watching on all, {args.writes} puts at {args.rate:g}/s")
                phase_latency(cluster, args, n, rng, res)
                cluster.check_running("during the write phase")
                lat, b = res["latency"], res["bytes"]
                log(f"N={n}: write→everywhere p50 {fmt(lat['p50_ms'])} ms p99 {fmt(lat['p99_ms'])} ms max {fmt(lat['max_ms'])} ms, "
                    f"missed {lat['missed_writes']}, put errors {lat['put_errors']}; replication {b['repl_bytes_sent_per_write_per_agent']} "
                    f"B/write/agent, gossip {b['gossip_bytes_out_per_write_per_agent_minus_idle']} B/write/agent (minus idle)")
                save()
                if args.repair_keys > 0:
                    log(f"N={n}: repair: stopping {cluster.agents[-1].name}, writing {args.repair_keys} keys to the others")
                    phase_repair(cluster, args, n, res)
                    rep = res["repair"]
                    log(f"N={n}: repair of {args.repair_keys} keys: {fmt(rep.get('repair_s'), 2)} s after listening "
                        f"(divergent writes {rep.get('write_rate')} keys/s, others agreed {rep.get('others_agree_s')} s after)"
                        + "".join(f"; {x}" for x in rep.get("notes", [])))
            except Abort as e:
                res["error"] = str(e)
                log(f"N={n}: ABORTED: {e}")
                rc = 1
            finally:
                cluster.stop()
                save()
            # Keep the logs of every run.
            logs = os.path.join(args.out_dir, f"logs-n{n}")
            os.makedirs(logs, exist_ok=True)
            for a in cluster.agents:
                for ext in ("log", "out"):
                    src = os.path.join(workdir, f"{a.name}.{ext}")
                    if os.path.exists(src):
                        os.replace(src, os.path.join(logs, f"{a.name}.{ext}"))
            time.sleep(args.pause)
        if args.throughput_runs > 0:
            log(f"==> throughput: lone agent vs agent of a 3-agent cluster, wrk c={args.concurrency} {args.duration} s x "
                f"{args.throughput_runs} runs each (load {loadavg()})")
            try:
                phase_throughput(args, os.path.join(args.tmp, "throughput"), results)
            except Abort as e:
                results.setdefault("throughput", {})["error"] = str(e)
                log(f"throughput: ABORTED: {e}")
                rc = 1
            finally:
                logs = os.path.join(args.out_dir, "logs-throughput")
                os.makedirs(logs, exist_ok=True)
                for sub, names in (("solo", ["solo"]), ("tp", ["t0", "t1", "t2"])):
                    for name in names:
                        for ext in ("log", "out"):
                            src = os.path.join(args.tmp, "throughput", sub, f"{name}.{ext}")
                            if os.path.exists(src):
                                os.replace(src, os.path.join(logs, f"{name}.{ext}"))
    except KeyboardInterrupt:
        log("replbench: interrupted; reporting what was measured")
        rc = 130
    meta["load_after"] = loadavg()
    meta["wall_s"] = round(time.monotonic() - started)
    save()
    text = report(results, args, meta)
    print(text, flush=True)  # replication.sh saves it as table.md
    return rc


if __name__ == "__main__":
    sys.exit(main())
