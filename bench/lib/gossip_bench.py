#!/usr/bin/env python3
"""Gossip membership side by side: Gossamer agents against HashiCorp Serf (memberlist LAN defaults).

Called by bench/gossip.sh (which installs Serf and builds Gossamer); stdlib only. For each cluster size N and
run, interleaving the two systems, it

  1. starts agents 1..N-2 joined to agent 0 and waits until those N-1 agree (formation, informative only),
     then starts the last agent and times until every one of the N agents lists all N as alive (join);
  2. waits IDLE_SETTLE s, then measures IDLE s of nothing happening: UDP datagrams/s in and out per agent
     (/proc/net/snmp deltas over the window, minus the background rate measured before the run, divided by N;
     loopback counts each datagram once out and once in), CPU % per agent (utime+stime of every agent from
     /proc/<pid>/stat), RSS per agent (VmRSS);
  3. `kill -9`s member N//2 and times until the first and until every survivor shows it failed/dead;
  4. makes member N//2+1 leave gracefully (`serf leave` / `gossamer leave --addr`) and times until every
     remaining member shows it as left;

then prints medians per system, the ratio Gossamer/Serf and the goals. Membership is polled every POLL_MS:
Serf over its msgpack RPC (`members`, one persistent TCP connection per agent, the same data as
`serf members -format=json`), Gossamer over `GET /v1/members` (one keep-alive HTTP connection per agent). Each
agent's first poll showing the condition is timestamped on its own, so a figure is the time of the last
agent's first such poll; an agent that satisfied a condition is not polled again for it. Every wait is capped
(WAIT_TIMEOUT) and reported as a timeout rather than hanging. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchcommon import (CLK_TCK, close_quietly, cpu_ticks, loadavg, meta_pairs, port_free, sigterm_interrupts,  # noqa: E402
                         utc_date)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Minimal MessagePack (enough for Serf's RPC)


def mp_pack(obj) -> bytes:
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 0x80:
            return bytes([obj])
        if -32 <= obj < 0:
            return struct.pack("b", obj)
        if 0 <= obj < 1 << 8:
            return b"\xcc" + struct.pack(">B", obj)
        if 0 <= obj < 1 << 16:
            return b"\xcd" + struct.pack(">H", obj)
        if 0 <= obj < 1 << 32:
            return b"\xce" + struct.pack(">I", obj)
        if obj >= 0:
            return b"\xcf" + struct.pack(">Q", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        n = len(raw)
        if n < 32:
            return bytes([0xA0 | n]) + raw
        if n < 1 << 8:
            return b"\xd9" + bytes([n]) + raw
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + raw
        return b"\xdb" + struct.pack(">I", n) + raw
    if isinstance(obj, (bytes, bytearray)):
        n = len(obj)
        if n < 1 << 8:
            return b"\xc4" + bytes([n]) + bytes(obj)
        if n < 1 << 16:
            return b"\xc5" + struct.pack(">H", n) + bytes(obj)
        return b"\xc6" + struct.pack(">I", n) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        n = len(obj)
        head = bytes([0x90 | n]) if n < 16 else (b"\xdc" + struct.pack(">H", n) if n < 1 << 16 else b"\xdd" + struct.pack(">I", n))
        return head + b"".join(mp_pack(x) for x in obj)
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else (b"\xde" + struct.pack(">H", n) if n < 1 << 16 else b"\xdf" + struct.pack(">I", n))
        return head + b"".join(mp_pack(k) + mp_pack(v) for k, v in obj.items())
    raise TypeError(f"cannot pack {type(obj)}")


class _Short(Exception):
    """The buffer ends inside the object being decoded."""


class MsgpackStream:
    """Reads MessagePack objects one by one from a socket: decodes from a buffer, and on running short receives
    more and decodes the object again from its start (responses are small; this keeps decoding cheap)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.pos = 0

    def read(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise _Short
        out = self.buf[self.pos:end]
        self.pos = end
        return out

    def unpack(self):
        while True:
            start = self.pos
            try:
                obj = self._unpack()
            except _Short:
                self.pos = start
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("connection closed") from None
                self.buf = self.buf[start:] + chunk
                self.pos = 0
                continue
            self.buf = self.buf[self.pos:]
            self.pos = 0
            return obj

    def _str(self, n: int):
        raw = self.read(n)
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw

    def _unpack(self):
        b = self.read(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0x80 <= b <= 0x8F:
            return self._map(b & 0x0F)
        if 0x90 <= b <= 0x9F:
            return [self._unpack() for _ in range(b & 0x0F)]
        if 0xA0 <= b <= 0xBF:
            return self._str(b & 0x1F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if b in (0xC4, 0xC5, 0xC6):
            n = self._len({0xC4: 1, 0xC5: 2, 0xC6: 4}[b])
            return self.read(n)
        if b in (0xC7, 0xC8, 0xC9):
            n = self._len({0xC7: 1, 0xC8: 2, 0xC9: 4}[b])
            self.read(1)
            return self.read(n)
        if b == 0xCA:
            return struct.unpack(">f", self.read(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.read(8))[0]
        if 0xCC <= b <= 0xCF:
            fmt, size = {0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8)}[b]
            return struct.unpack(fmt, self.read(size))[0]
        if 0xD0 <= b <= 0xD3:
            fmt, size = {0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8)}[b]
            return struct.unpack(fmt, self.read(size))[0]
        if 0xD4 <= b <= 0xD8:
            size = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[b]
            self.read(1)
            return self.read(size)
        if b in (0xD9, 0xDA, 0xDB):
            return self._str(self._len({0xD9: 1, 0xDA: 2, 0xDB: 4}[b]))
        if b in (0xDC, 0xDD):
            return [self._unpack() for _ in range(self._len(2 if b == 0xDC else 4))]
        if b in (0xDE, 0xDF):
            return self._map(self._len(2 if b == 0xDE else 4))
        raise ValueError(f"unsupported msgpack byte 0x{b:02x}")

    def _len(self, size: int) -> int:
        return int.from_bytes(self.read(size), "big")

    def _map(self, n: int) -> dict:
        out = {}
        for _ in range(n):
            k = self._unpack()
            out[k] = self._unpack()
        return out


# --------------------------------------------------------------------------------------------------------------
# Membership clients: members() -> {name: status} or raises


class SerfRPC:
    """One Serf agent's RPC (msgpack over TCP): handshake once, then `members` on demand."""

    def __init__(self, port: int):
        self.port = port
        self.sock = None
        self.stream = None
        self.seq = 0

    def close(self):
        close_quietly(self.sock)
        self.sock = None
        self.stream = None

    def _call(self, command: str, body=None):
        self.seq += 1
        seq = self.seq
        payload = mp_pack({"Command": command, "Seq": seq})
        if body is not None:
            payload += mp_pack(body)
        self.sock.sendall(payload)
        header = self.stream.unpack()
        if not isinstance(header, dict) or header.get("Seq") != seq:
            raise ConnectionError(f"unexpected RPC header {header!r}")
        if header.get("Error"):
            raise ConnectionError(f"RPC error: {header['Error']}")
        return header

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = MsgpackStream(self.sock)
        self._call("handshake", {"Version": 1})

    def members(self) -> dict:
        try:
            if self.sock is None:
                self._connect()
            self._call("members")
            body = self.stream.unpack()
        except (OSError, ConnectionError, ValueError):
            self.close()
            raise
        return {m["Name"]: m["Status"] for m in body.get("Members", [])}


class GossamerHTTP:
    """One Gossamer agent's `GET /v1/members` over a keep-alive connection."""

    def __init__(self, port: int):
        self.port = port
        self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def members(self) -> dict:
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            self.conn.request("GET", "/v1/members")
            resp = self.conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise ConnectionError(f"HTTP {resp.status}")
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException, ConnectionError):
            self.close()
            raise
        return {m["name"]: m["status"] for m in json.loads(data)}


# --------------------------------------------------------------------------------------------------------------
# Systems


class System:
    name = ""
    dead_status = ""
    left_status = "left"

    def __init__(self, args, workdir: str, n: int, pidfile: str):
        self.args = args
        self.workdir = workdir
        self.n = n
        self.pidfile = pidfile
        self.procs: dict[int, subprocess.Popen] = {}
        self.clients = {}
        self.logs = {}

    def node(self, i: int) -> str:
        raise NotImplementedError

    def command(self, i: int) -> list[str]:
        raise NotImplementedError

    def leave_command(self, i: int) -> list[str]:
        raise NotImplementedError

    def client(self, i: int):
        raise NotImplementedError

    def ports(self, i: int) -> list[int]:
        raise NotImplementedError

    def start(self, i: int) -> None:
        path = os.path.join(self.workdir, f"{self.node(i)}.log")
        out = open(path, "wb")
        self.logs[i] = path
        proc = subprocess.Popen(self.command(i), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
        out.close()
        self.procs[i] = proc
        with open(self.pidfile, "a") as f:
            f.write(f"{proc.pid}\n")
        self.clients[i] = self.client(i)

    def members(self, i: int):
        """{name: status} from agent i, or None if it does not answer."""
        try:
            return self.clients[i].members()
        except Exception:  # noqa: BLE001 - any failure means "no answer yet"
            return None

    def alive(self, i: int) -> bool:
        p = self.procs.get(i)
        return p is not None and p.poll() is None

    def kill9(self, i: int) -> None:
        p = self.procs[i]
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        self.clients[i].close()

    def stop_all(self) -> None:
        for c in self.clients.values():
            c.close()
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


class Serf(System):
    name = "serf"
    dead_status = "failed"

    def node(self, i):
        return f"s{i}"

    def ports(self, i):
        return [self.args.port_base + i, self.args.port_base + 1000 + i]

    def command(self, i):
        cmd = [self.args.serf_bin, "agent", f"-node={self.node(i)}", f"-bind=127.0.0.1:{self.args.port_base + i}",
               f"-rpc-addr=127.0.0.1:{self.args.port_base + 1000 + i}", "-log-level=warn"]
        if i > 0:
            cmd.append(f"-join=127.0.0.1:{self.args.port_base}")
        return cmd

    def leave_command(self, i):
        return [self.args.serf_bin, "leave", f"-rpc-addr=127.0.0.1:{self.args.port_base + 1000 + i}"]

    def client(self, i):
        return SerfRPC(self.args.port_base + 1000 + i)


class Gossamer(System):
    name = "gossamer"
    dead_status = "dead"

    def node(self, i):
        return f"g{i}"

    def http_port(self, i):
        return self.args.port_base + 2000 + i

    def gossip_port(self, i):
        return self.args.port_base + 3000 + i

    def ports(self, i):
        return [self.http_port(i), self.gossip_port(i)]

    def command(self, i):
        cmd = [self.args.gossamer_bin, "agent", "--node-name", self.node(i), "--data-dir", os.path.join(self.workdir, self.node(i)),
               "--http", f"127.0.0.1:{self.http_port(i)}", "--gossip", f"127.0.0.1:{self.gossip_port(i)}", "--log-level", "warning"]
        if i > 0:
            cmd += ["--join", f"127.0.0.1:{self.gossip_port(0)}"]
        return cmd

    def leave_command(self, i):
        return [self.args.gossamer_bin, "leave", "--addr", f"http://127.0.0.1:{self.http_port(i)}"]

    def client(self, i):
        return GossamerHTTP(self.http_port(i))


SYSTEMS = {"serf": Serf, "gossamer": Gossamer}


# --------------------------------------------------------------------------------------------------------------
# Measurement helpers


def udp_counters() -> dict:
    with open("/proc/net/snmp") as f:
        lines = [l.split() for l in f if l.startswith("Udp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def shared_memory_kib(pid: int) -> tuple:
    """(PSS, private) KiB from /proc/<pid>/smaps_rollup: RSS counts every page an agent maps, including the
    binary's and libraries' pages that all N agents share; PSS splits shared pages among their users and private
    (USS) is what this process alone holds. (0, 0) if unreadable."""
    pss = private = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Private_Clean:") or line.startswith("Private_Dirty:"):
                    private += int(line.split()[1])
    except OSError:
        pass
    return pss, private


class Poller:
    """Polls agents every `interval` until each satisfies a predicate; per-agent first-satisfied timestamps."""

    def __init__(self, system: System, interval: float, anomalies: list, phase: str):
        self.system = system
        self.interval = interval
        self.anomalies = anomalies
        self.phase = phase
        self.seen_bad: set = set()
        self.sweeps = 0
        self.swept_agents = 0
        self.sweep_seconds = 0.0

    def check_others(self, observer: int, members: dict, expected_changed: set) -> None:
        """Record any member outside `expected_changed` not shown alive (a false suspicion or failure)."""
        for name, status in members.items():
            if name in expected_changed or status == "alive":
                continue
            key = (observer, name, status)
            if key not in self.seen_bad:
                self.seen_bad.add(key)
                self.anomalies.append({"phase": self.phase, "observer": self.system.node(observer), "member": name,
                                       "status": status, "at": round(time.monotonic() - self.t0, 3)})

    def wait(self, agents: list, predicate, t0: float, timeout: float, expected_changed: set) -> dict:
        """Returns {agent: seconds since t0 of its first poll satisfying predicate(members)}; missing = timeout."""
        self.t0 = t0
        pending = list(agents)
        done: dict = {}
        deadline = t0 + timeout
        while pending and time.monotonic() < deadline:
            sweep_start = time.monotonic()
            self.sweeps += 1
            self.swept_agents += len(pending)
            still = []
            for i in pending:
                members = self.system.members(i)
                now = time.monotonic()
                if members is None:
                    if self.system.alive(i):
                        still.append(i)  # not up yet, or slow: ask again
                    continue  # exited: it will never answer
                self.check_others(i, members, expected_changed)
                if predicate(members):
                    done[i] = now - t0
                else:
                    still.append(i)
            pending = still
            self.sweep_seconds += time.monotonic() - sweep_start
            if pending:
                left = self.interval - (time.monotonic() - sweep_start)
                if left > 0:
                    time.sleep(min(left, max(0.0, deadline - time.monotonic())))
        return done


def check_running(system: System, agents, when: str) -> None:
    """Raises if any of `agents` has exited (the run's figures would be meaningless)."""
    gone = [f"{system.node(i)} (exit {system.procs[i].returncode})" for i in agents if not system.alive(i)]
    if gone:
        raise RuntimeError(f"{len(gone)} agent(s) exited {when}: {', '.join(gone)}")


def snapshot(system: System, agents, name: str) -> dict:
    """How many of `agents` show `name` in each status right now (for timeout diagnostics)."""
    seen: dict = {}
    for i in agents:
        m = system.members(i)
        st = m.get(name, "absent") if m is not None else "no answer"
        seen[st] = seen.get(st, 0) + 1
    return seen


def measure_background(seconds: float) -> dict:
    a = udp_counters()
    time.sleep(seconds)
    b = udp_counters()
    return {"in": (b["InDatagrams"] - a["InDatagrams"]) / seconds, "out": (b["OutDatagrams"] - a["OutDatagrams"]) / seconds}


# --------------------------------------------------------------------------------------------------------------
# One run


def drop_page_cache(path: str) -> None:
    """Evicts a binary's file pages from the page cache, so that the run's agents read it in by their own page faults,
    as after a reboot or a fresh install, whatever wrote or read the file before (a linker that just wrote it
    leaves its pages cached in a shape that makes every mapping of it larger: Gossamer's idle RSS was 30 MiB right
    after a link and 25-26 MiB once the file had been read back by page faults). Done for both systems."""
    resolved = shutil.which(path) or path
    try:
        fd = os.open(os.path.realpath(resolved), os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def one_run(cls, args, n: int, run: int, pidfile: str, out_dir: str) -> dict:
    res = {"system": cls.name, "n": n, "run": run, "anomalies": [], "notes": []}
    drop_page_cache(args.gossamer_bin if cls.name == "gossamer" else args.serf_bin)
    taken = [p for i in range(n) for p in cls(args, "", n, pidfile).ports(i) if not port_free(p)]
    if taken:
        raise SystemExit(f"gossip_bench: ports in use: {taken[:10]}{' ...' if len(taken) > 10 else ''} "
                         f"(set PORT_BASE to another value below 28000)")
    background = measure_background(args.background)
    res["background_udp"] = background
    workdir = tempfile.mkdtemp(prefix=f"gossip-{cls.name}-n{n}-", dir=args.tmp)
    system = cls(args, workdir, n, pidfile)
    names = [system.node(i) for i in range(n)]
    timeout = args.wait_timeout
    interval = args.poll_ms / 1000
    keep_logs = False
    try:
        # Seed first; wait until it answers.
        system.start(0)
        t = time.monotonic()
        p = Poller(system, interval, res["anomalies"], "seed")
        if not p.wait([0], lambda m: names[0] in m, t, timeout, set()):
            raise RuntimeError(f"{cls.name} seed agent did not answer within {timeout} s (log: {system.logs[0]})")

        # Formation: agents 1..n-2 (all at once, or one after the other each once the previous answers), until
        # those n-1 all see each other alive.
        t = time.monotonic()
        for i in range(1, n - 1):
            system.start(i)
            if args.start == "rolling":
                Poller(system, 0.01, res["anomalies"], "formation").wait([i], lambda m: True, time.monotonic(), 10, set())
        res["start_s"] = time.monotonic() - t
        t = time.monotonic()  # formation counts from the moment the last of them is up
        first = names[: n - 1]
        p = Poller(system, interval, res["anomalies"], "formation")
        agree = lambda m: all(m.get(x) == "alive" for x in first)  # noqa: E731
        got = p.wait(list(range(n - 1)), agree, t, args.formation_note, set())
        if len(got) < n - 1:
            # Slow formation: note who is behind and what they miss, then keep waiting.
            behind = {}
            for i in range(n - 1):
                if i not in got:
                    m = system.members(i)
                    behind[names[i]] = "no answer" if m is None else f"{sum(1 for v in m.values() if v == 'alive')} alive"
            missing = {}
            for i in range(n - 1):
                m = system.members(i) if i not in got else None
                for x in first:
                    if m is not None and x not in m:
                        missing[x] = missing.get(x, 0) + 1
            res["notes"].append(f"formation slower than {args.formation_note:g} s: {len(behind)} agents behind "
                                f"({dict(list(behind.items())[:6])}); unknown to some: {dict(sorted(missing.items(), key=lambda kv: -kv[1])[:6])}")
            got.update(p.wait([i for i in range(n - 1) if i not in got], agree, t, timeout * 2, set()))
        res["formation_s"] = max(got.values()) if len(got) == n - 1 else None
        if res["formation_s"] is None:
            res["notes"].append(f"formation: only {len(got)}/{n - 1} agents saw all {n - 1} alive within {timeout * 2} s")
            keep_logs = True

        # Join: the last agent.
        t0 = time.monotonic()
        system.start(n - 1)
        p = Poller(system, interval, res["anomalies"], "join")
        got = p.wait(list(range(n)), lambda m: sum(1 for x in names if m.get(x) == "alive") == n, t0, timeout, set())
        res["join_s"] = max(got.values()) if len(got) == n else None
        res["join_self_s"] = got.get(n - 1)
        if res["join_s"] is None:
            counts = [sum(1 for st in m.values() if st == "alive") for m in map(system.members, range(n)) if m is not None]
            res["notes"].append(f"join: only {len(got)}/{n} agents saw all {n} alive within {timeout} s; "
                                f"alive counts now {min(counts, default=0)}..{max(counts, default=0)}, "
                                f"status of {names[n - 1]}: {snapshot(system, range(n - 1), names[n - 1])}")
            keep_logs = True

        # Idle.
        time.sleep(args.idle_settle)
        check_running(system, range(n), "before the idle window")
        pids = [system.procs[i].pid for i in range(n)]
        c0 = udp_counters()
        ticks0 = sum(cpu_ticks(pid) for pid in pids)
        w0 = time.monotonic()
        time.sleep(args.idle)
        c1 = udp_counters()
        ticks1 = sum(cpu_ticks(pid) for pid in pids)
        window = time.monotonic() - w0
        rss = [rss_kib(pid) for pid in pids]
        shared = [shared_memory_kib(pid) for pid in pids]
        check_running(system, range(n), "during the idle window")
        res["idle"] = {
            "window_s": window,
            "udp_out_per_agent": max(0.0, (c1["OutDatagrams"] - c0["OutDatagrams"]) / window - background["out"]) / n,
            "udp_in_per_agent": max(0.0, (c1["InDatagrams"] - c0["InDatagrams"]) / window - background["in"]) / n,
            "udp_rcvbuf_errors": c1.get("RcvbufErrors", 0) - c0.get("RcvbufErrors", 0),
            "udp_in_errors": c1.get("InErrors", 0) - c0.get("InErrors", 0),
            "cpu_pct_per_agent": (ticks1 - ticks0) / CLK_TCK / window * 100 / n,
            "rss_mib_per_agent": statistics.mean(rss) / 1024,
            "rss_mib_max": max(rss) / 1024,
            "pss_mib_per_agent": statistics.mean(p for p, _ in shared) / 1024,
            "private_mib_per_agent": statistics.mean(u for _, u in shared) / 1024,
        }
        # Anyone not alive after the quiet window?
        p = Poller(system, interval, res["anomalies"], "idle")
        p.wait(list(range(n)), lambda m: True, time.monotonic(), timeout, set())

        # kill -9 of member n//2.
        victim = n // 2
        vname = names[victim]
        survivors = [i for i in range(n) if i != victim]
        t0 = time.monotonic()
        system.kill9(victim)
        p = Poller(system, interval, res["anomalies"], "kill")
        dead = system.dead_status
        got = p.wait(survivors, lambda m: m.get(vname) == dead, t0, timeout, {vname})
        res["kill_poll"] = {"sweeps": p.sweeps, "ms_per_sweep": round(1000 * p.sweep_seconds / max(1, p.sweeps), 1),
                            "ms_per_agent": round(1000 * p.sweep_seconds / max(1, p.swept_agents), 2)}
        res["kill_first_s"] = min(got.values()) if got else None
        res["kill_all_s"] = max(got.values()) if len(got) == len(survivors) else None
        if res["kill_all_s"] is None:
            res["notes"].append(f"kill: only {len(got)}/{len(survivors)} survivors showed {vname} {dead} within {timeout} s; "
                                f"now {snapshot(system, survivors, vname)}")
            keep_logs = True

        # Graceful leave of member n//2 + 1.
        leaver = n // 2 + 1
        lname = names[leaver]
        rest = [i for i in survivors if i != leaver]
        t0 = time.monotonic()
        leave_log = open(os.path.join(workdir, f"leave-{lname}.log"), "wb")
        leave_proc = subprocess.Popen(system.leave_command(leaver), stdout=leave_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        leave_log.close()
        with open(pidfile, "a") as f:
            f.write(f"{leave_proc.pid}\n")
        p = Poller(system, interval, res["anomalies"], "leave")
        got = p.wait(rest, lambda m: m.get(lname) == system.left_status, t0, timeout, {vname, lname})
        res["leave_all_s"] = max(got.values()) if len(got) == len(rest) else None
        if res["leave_all_s"] is None:
            res["notes"].append(f"leave: only {len(got)}/{len(rest)} showed {lname} left within {timeout} s; "
                                f"now {snapshot(system, rest, lname)}")
            keep_logs = True
        try:
            res["leave_cmd_rc"] = leave_proc.wait(timeout=max(1.0, t0 + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            leave_proc.kill()
            leave_proc.wait()
            res["leave_cmd_rc"] = None
            res["notes"].append("leave command did not return")
        # Did the leaver exit by itself?
        lp = system.procs[leaver]
        try:
            lp.wait(timeout=5)
            res["leaver_exited"] = True
        except subprocess.TimeoutExpired:
            res["leaver_exited"] = False
            res["notes"].append(f"{lname} still running 5 s after its leave")
        if res["anomalies"]:
            keep_logs = True
        dead_agents = [f"{names[i]} (exit {system.procs[i].returncode})" for i in range(n) if i not in (victim, leaver) and not system.alive(i)]
        if dead_agents:
            res["notes"].append(f"agents exited unexpectedly: {dead_agents}")
            keep_logs = True
    except Exception as e:  # noqa: BLE001
        res["error"] = str(e)
        keep_logs = True
    finally:
        system.stop_all()
        if keep_logs:
            dest = os.path.join(out_dir, f"logs-{cls.name}-n{n}-run{run}")
            os.makedirs(dest, exist_ok=True)
            for path in system.logs.values():
                if os.path.exists(path):
                    shutil.copy(path, dest)
            for fn in os.listdir(workdir):
                if fn.startswith("leave-"):
                    shutil.copy(os.path.join(workdir, fn), dest)
            res["logs"] = dest
        shutil.rmtree(workdir, ignore_errors=True)
    return res


# --------------------------------------------------------------------------------------------------------------
# Report

METRICS = [
    # key, label, unit, digits
    ("join_s", "join: last joiner alive at every agent", "s", 2),
    ("kill_first_s", "kill -9: first survivor shows it dead", "s", 2),
    ("kill_all_s", "kill -9: all survivors show it dead", "s", 2),
    ("leave_all_s", "leave: all show it left", "s", 2),
    ("udp_out_per_agent", "idle: UDP datagrams/s out per agent", "/s", 2),
    ("udp_in_per_agent", "idle: UDP datagrams/s in per agent", "/s", 2),
    ("cpu_pct_per_agent", "idle: CPU % per agent", "%", 3),
    ("rss_mib_per_agent", "idle: RSS per agent", "MiB", 1),
    ("pss_mib_per_agent", "(info) idle: PSS per agent (shared pages split among users)", "MiB", 1),
    ("private_mib_per_agent", "(info) idle: private memory (USS) per agent", "MiB", 1),
    ("formation_s", "(info) first N-1 agents: all agree, from the last one up", "s", 2),
]


def value(res: dict, key: str):
    if key in res.get("idle", {}):
        return res["idle"][key]
    return res.get(key)


def median_or_none(values: list):
    """Median with timeouts (None) counted as +inf; None if the median itself is a timeout."""
    if not values:
        return None
    v = sorted(float("inf") if x is None else x for x in values)
    m = statistics.median(v)
    return None if m == float("inf") else m


def fmt(x, digits: int) -> str:
    if x is None:
        return "timeout"
    return f"{x:.{digits}f}"


def goal_for(key: str, n: int, ratio):
    """(goal text, met) for figures with a goal; the ratio is compared as printed (two decimals)."""
    ratio = round(ratio, 2) if ratio is not None else None
    if key == "kill_all_s" and n in (32, 64):
        return ("≤ 1/3", ratio is not None and ratio <= 1 / 3)
    if key in ("udp_out_per_agent", "udp_in_per_agent"):
        return ("≤ 1", ratio is not None and ratio <= 1)
    if key == "rss_mib_per_agent":
        return ("≤ 2", ratio is not None and ratio <= 2)
    return None


def report(results: list, sizes: list, systems: list, args, meta: dict) -> str:
    lines = []
    lines.append(f"Gossip membership: Gossamer vs Serf, median of {args.runs} run(s) per cell, runs interleaved")
    for k, v in meta.items():
        lines.append(f"  {k}: {v}")
    lines.append("")
    both = "gossamer" in systems and "serf" in systems
    head = "| measure | N | " + " | ".join(systems) + (" | Gossamer/Serf | goal |" if both else " |")
    lines.append(head)
    lines.append("|---|---:|" + "---:|" * len(systems) + ("---:|---|" if both else ""))
    goals_total, goals_met = 0, 0
    for n in sizes:
        for key, label, unit, digits in METRICS:
            cells, counts = {}, {}
            for s in systems:
                vals = [value(r, key) for r in results if r["system"] == s and r["n"] == n and "error" not in r]
                cells[s] = median_or_none(vals) if vals else None
                counts[s] = len(vals)
            row = f"| {label} ({unit}) | {n} | " + " | ".join(
                ("no run" if counts[s] == 0 else fmt(cells[s], digits)) + (f" ({counts[s]}/{args.runs} runs)" if 0 < counts[s] < args.runs else "")
                for s in systems)
            if both:
                g, sv = cells["gossamer"], cells["serf"]
                ratio = g / sv if g is not None and sv not in (None, 0) else None
                row += f" | {fmt(ratio, 2) if ratio is not None else '—'}"
                goal = goal_for(key, n, ratio)
                if goal and ratio is None:
                    row += f" | {goal[0]}: n/a"
                elif goal:
                    goals_total += 1
                    goals_met += goal[1]
                    row += f" | {goal[0]}: {'MET' if goal[1] else 'NOT MET'}"
                else:
                    row += " | "
            lines.append(row + " |")
    if both:
        lines.append("")
        lines.append(f"goals met: {goals_met} of {goals_total} (kill -9 all survivors ≤ 1/3 of Serf at N=32, 64; "
                     f"idle UDP in and out ≤ Serf per agent; RSS ≤ 2× Serf)")
    lines.append("")
    lines.append("Per run (join / kill first / kill all / leave s; idle out/in datagrams/s per agent, CPU %, RSS MiB;")
    lines.append("time to poll every survivor once during the kill wait = resolution of the timings):")
    for r in results:
        if "error" in r:
            lines.append(f"  {r['system']:8} N={r['n']:<3} run {r['run']}: ERROR {r['error']}")
            continue
        idle = r.get("idle", {})
        lines.append(
            f"  {r['system']:8} N={r['n']:<3} run {r['run']}: {fmt(r.get('join_s'), 2)} / {fmt(r.get('kill_first_s'), 2)} / "
            f"{fmt(r.get('kill_all_s'), 2)} / {fmt(r.get('leave_all_s'), 2)}; "
            f"{idle.get('udp_out_per_agent', 0):.2f}/{idle.get('udp_in_per_agent', 0):.2f}, {idle.get('cpu_pct_per_agent', 0):.3f}%, "
            f"{idle.get('rss_mib_per_agent', 0):.1f} (max {idle.get('rss_mib_max', 0):.1f}); "
            f"start {fmt(r.get('start_s'), 1)} s + formation {fmt(r.get('formation_s'), 2)} s"
            + (f"; poll sweep {r['kill_poll']['ms_per_sweep']:.0f} ms" if r.get("kill_poll") else "")
            + (f"; UDP rcvbuf errors {idle['udp_rcvbuf_errors']}" if idle.get("udp_rcvbuf_errors") else ""))
    anomalies = [(r, a) for r in results for a in r.get("anomalies", [])]
    notes = [(r, n) for r in results for n in r.get("notes", [])]
    lines.append("")
    if anomalies or notes:
        lines.append("Anomalies (members other than the killed/leaving one shown not alive; timeouts; exits):")
        for r, note in notes:
            lines.append(f"  {r['system']} N={r['n']} run {r['run']}: {note}")
        by_run: dict = {}
        for r, a in anomalies:
            by_run.setdefault((r["system"], r["n"], r["run"], r.get("logs")), []).append(a)
        for (s, n, run, logs), items in by_run.items():
            shown = ", ".join(f"{a['phase']}: {a['observer']} saw {a['member']} {a['status']} at +{a['at']} s" for a in items[:8])
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            lines.append(f"  {s} N={n} run {run}: {len(items)} false non-alive sightings: {shown}{more}" + (f"; logs in {logs}" if logs else ""))
    else:
        lines.append("Anomalies: none (no member other than the killed/leaving one was ever shown not alive; no timeouts).")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8 32 64")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--systems", default="gossamer serf")
    ap.add_argument("--gossamer-bin", default="gossamer")
    ap.add_argument("--serf-bin", default="serf")
    ap.add_argument("--port-base", type=int, default=20000, help="serf gossip +i, serf rpc +1000+i, gossamer http +2000+i, gossamer gossip +3000+i")
    ap.add_argument("--poll-ms", type=int, default=50)
    ap.add_argument("--wait-timeout", type=float, default=60)
    ap.add_argument("--idle", type=float, default=10, help="idle window, seconds")
    ap.add_argument("--idle-settle", type=float, default=3, help="seconds after the join before the idle window")
    ap.add_argument("--background", type=float, default=1, help="seconds of background UDP rate measured before each run")
    ap.add_argument("--start", choices=["rolling", "burst"], default="rolling",
                    help="agents 1..N-2: each once the previous answers (rolling) or all at once (burst)")
    ap.add_argument("--formation-note", type=float, default=10, help="note who is behind if the first N-1 agents do not agree within this")
    ap.add_argument("--pause", type=float, default=1, help="seconds between runs")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--meta", action="append", default=[], help="key=value lines for the report header")
    args = ap.parse_args()

    sizes = [int(x) for x in args.sizes.split()]
    systems = [s for s in args.systems.split() if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s}")
    if any(n < 4 or n > 900 for n in sizes):
        ap.error("sizes must be in 4..900")
    if not (1024 <= args.port_base and args.port_base + 3000 + max(sizes) < 32768):
        ap.error("port base must keep every port in 1024..32767")
    os.makedirs(args.out_dir, exist_ok=True)

    # Stop whatever we started if we are told to stop.
    sigterm_interrupts()

    meta = {"date": utc_date(), **meta_pairs(args.meta)}
    meta["load average before"] = loadavg()
    meta["method"] = (f"poll every {args.poll_ms} ms (Serf msgpack RPC `members`, Gossamer GET /v1/members), "
                      f"waits capped at {args.wait_timeout:g} s; idle window {args.idle:g} s starting {args.idle_settle:g} s after the join, "
                      "UDP from /proc/net/snmp deltas minus the rate measured just before the run, / N; "
                      "CPU from /proc/<pid>/stat utime+stime; RSS VmRSS; each binary evicted from the page cache before its run")
    results = []
    interrupted = False
    total = len(sizes) * args.runs * len(systems)
    k = 0
    started = time.monotonic()
    try:
        for n in sizes:
            for run in range(1, args.runs + 1):
                order = systems if (run + sizes.index(n)) % 2 == 1 else list(reversed(systems))
                for s in order:
                    k += 1
                    log(f"==> [{k}/{total}] {s} N={n} run {run} (load {loadavg()}, {time.monotonic() - started:.0f} s elapsed)")
                    r = one_run(SYSTEMS[s], args, n, run, args.pidfile, args.out_dir)
                    results.append(r)
                    idle = r.get("idle", {})
                    log(f"    join {fmt(r.get('join_s'), 2)} s, kill first {fmt(r.get('kill_first_s'), 2)} s / all {fmt(r.get('kill_all_s'), 2)} s, "
                        f"leave {fmt(r.get('leave_all_s'), 2)} s; idle out {idle.get('udp_out_per_agent', float('nan')):.2f}/s "
                        f"in {idle.get('udp_in_per_agent', float('nan')):.2f}/s, CPU {idle.get('cpu_pct_per_agent', float('nan')):.3f}%, "
                        f"RSS {idle.get('rss_mib_per_agent', float('nan')):.1f} MiB; start {fmt(r.get('start_s'), 1)} s + formation {fmt(r.get('formation_s'), 2)} s"
                        + (f"; ERROR {r['error']}" if "error" in r else "")
                        + (f"; {len(r['anomalies'])} false non-alive sightings" if r.get("anomalies") else "")
                        + "".join(f"; {x}" for x in r.get("notes", [])))
                    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
                        json.dump(results, f, indent=1)
                    time.sleep(args.pause)
    except KeyboardInterrupt:
        log("gossip_bench: interrupted; reporting what was measured")
        interrupted = True
    meta["load average after"] = loadavg()
    meta["wall time"] = f"{time.monotonic() - started:.0f} s"
    text = report(results, sizes, systems, args, meta)
    print(text, flush=True)
    with open(os.path.join(args.out_dir, "summary.md"), "w") as f:
        f.write(text + "\n")
    if interrupted:
        return 130
    return 0 if results and all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
