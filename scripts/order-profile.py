#!/usr/bin/env python3
"""Writes the link order file of the release binary (scripts/gossamer.order) from a profile of a running agent.

    scripts/order-profile.py [--bin PATH] [--map PATH] [--out scripts/gossamer.order] [--idle 40]

Without --bin it builds one with `scripts/build-release.sh --no-order` (function sections, no order file), so that
the profiled symbols are the ones the linker later places; --map is that link's map (.build-release/gossamer.map).
Needs valgrind (Debian's package; installed when missing). What it runs, all on 127.0.0.1 ports it picks:

1. two plain agents, a and b, and a third, p, under `valgrind --tool=callgrind`, joined to a;
2. phase 1, start-up and idle: p runs until it sees three members alive, then idles for --idle seconds of wall
   time (gossip probes, push-pull, anti-entropy, the monitor's sampler), and callgrind dumps;
3. phase 2, requests: puts and gets on p, puts on a that replicate to p, members, status, health, metrics, a
   service registration with a TTL check and its lookups, a short watch; then p is stopped with SIGTERM.

The order file lists every function that ran in phase 1, hottest first, then every function that first ran in
phase 2, hottest first. A name defined more than once (local helpers such as `objectdestroyTm`, one per object file)
is listed only if every definition sits in a small section: the linker places every section that defines a listed
name, and some static libraries of the Swift toolchain hold hundreds of functions in one `.text` section. The linker (lld `--symbol-ordering-file`) puts those functions together at the start of
`.text`, in that order, and everything that never ran after them. An idle agent then touches a few MiB of
contiguous code instead of pages scattered over the 18 MiB of `.text` and the Swift runtime, and the kernel's
fault-around (which maps the 64-128 KiB around each touched page) maps mostly code that is used.

A stale order file is harmless: functions it does not name are placed after the ones it does. Regenerate it
when the idle agent's RSS grows (docs/architecture.md, "Memory footprint").
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"order-profile: the profiled agent exited ({proc.returncode}) while waiting for {what}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"order-profile: timed out waiting for {what}")


def read_costs(path: str) -> dict[str, int]:
    """Self cost (instructions) per function name in one callgrind dump (written with --compress-strings=no)."""
    costs: dict[str, int] = {}
    current = None
    in_call = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                # callgrind marks recursion levels as name'2, name'3: one symbol for the linker.
                current = re.sub(r"'[0-9]+$", "", line[3:].strip())
                costs.setdefault(current, 0)
                in_call = False
            elif line.startswith("calls="):
                in_call = True  # the next cost line is the callee's inclusive cost, not ours
            elif line[:1].isdigit() or line[:1] in "+-*":
                if in_call:
                    in_call = False
                    continue
                parts = line.split()
                if current is not None and len(parts) >= 2:
                    costs[current] += int(parts[1])
    return costs


def section_sizes(map_path: str) -> dict[str, list[int]]:
    """For every symbol of an lld map (written with --no-demangle), the sizes of the input sections defining it."""
    defs: dict[str, list[int]] = {}
    size = None
    with open(map_path, errors="replace") as f:
        for line in f:
            fields = line.split()
            if ":(" in line and len(fields) >= 5:
                try:
                    size = int(fields[2], 16)
                except ValueError:
                    size = None
            elif size is not None and len(fields) == 5 and fields[3] == "1":
                defs.setdefault(fields[4], []).append(size)
    return defs


COARSE_SECTION = 16 * 1024  # bytes: a duplicated name in a larger section is left out of the order file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin")
    ap.add_argument("--map", default=os.path.join(ROOT, ".build-release", "gossamer.map"))
    ap.add_argument("--out", default=os.path.join(ROOT, "scripts", "gossamer.order"))
    ap.add_argument("--idle", type=float, default=40)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        subprocess.run([os.path.join(ROOT, "scripts", "install-debs.sh"), "valgrind"], check=True)
    if args.bin is None:
        args.bin = subprocess.run([os.path.join(ROOT, "scripts", "build-release.sh"), "--no-order"], check=True,
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
    tmp = tempfile.mkdtemp(prefix="gossamer-order-")
    # valgrind 3.19 cannot read the DWARF 5 that Swift 6 writes; it only needs the symbol table.
    binary = os.path.join(tmp, "gossamer")
    subprocess.run(["objcopy", "--strip-debug", os.path.abspath(args.bin), binary], check=True)
    procs: list[subprocess.Popen] = []
    ports = {n: (free_port(), free_port()) for n in "abp"}

    def agent(name: str, join: str | None, wrap: list[str]) -> subprocess.Popen:
        http, gossip = ports[name]
        cmd = wrap + [binary, "agent", "--node-name", name, "--data-dir", os.path.join(tmp, name),
                      "--http", f"127.0.0.1:{http}", "--gossip", f"127.0.0.1:{gossip}", "--log-level", "warning"]
        if join:
            cmd += ["--join", join]
        log = open(os.path.join(tmp, f"{name}.log"), "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    out_prefix = os.path.join(tmp, "callgrind.out")
    try:
        agent("a", None, [])
        seed = f"127.0.0.1:{ports['a'][1]}"
        agent("b", seed, [])
        grind = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no", "--compress-pos=no",
                 "--dump-line=no", f"--callgrind-out-file={out_prefix}.%p"]
        p = agent("p", seed, grind)
        P = f"http://127.0.0.1:{ports['p'][0]}"
        A = f"http://127.0.0.1:{ports['a'][0]}"
        print("order-profile: waiting for the profiled agent to start (valgrind is slow)", flush=True)
        wait_for(lambda: request("GET", f"{P}/health", timeout=10)[0] in (200, 503), 300, "p's HTTP API", p)

        def three_alive() -> bool:
            status, body = request("GET", f"{P}/v1/members", timeout=10)
            members = json.loads(body) if status == 200 else []
            return sum(1 for m in members if m.get("status") == "alive") >= 3
        wait_for(three_alive, 300, "three members alive on p", p)
        print(f"order-profile: phase 1, idle for {args.idle:.0f} s", flush=True)
        time.sleep(args.idle)
        subprocess.run(["callgrind_control", "--dump=phase1", str(p.pid)], check=True, stdout=subprocess.DEVNULL)

        print("order-profile: phase 2, requests", flush=True)
        value = b"v" * 256
        for i in range(20):
            request("PUT", f"{P}/v1/kv/app/key{i % 5}", value)
            request("GET", f"{P}/v1/kv/app/key{i % 5}")
            request("GET", f"{P}/v1/kv/app/key{i % 5}?raw")
            request("PUT", f"{A}/v1/kv/app/from-a{i % 5}", value)
        for path in ("/v1/kv/app?recurse", "/v1/kv/app?keys", "/v1/kv/app/key1?history", "/v1/members",
                     "/v1/status", "/health", "/metrics", "/v1/kv/missing", "/v1/consistency"):
            request("GET", P + path)
        request("DELETE", f"{P}/v1/kv/app/key4")
        reg = json.dumps({"address": "127.0.0.1", "port": 9001, "tags": ["v2"],
                          "checks": [{"type": "ttl", "ttl": "30s"}]}).encode()
        request("PUT", f"{P}/v1/services/web/instances/web-1", reg)
        for _ in range(10):
            request("GET", f"{P}/v1/services/web?passing")
            request("GET", f"{P}/v1/services")
        request("GET", f"{P}/v1/kv/app/key1?index=1&wait=1s")
        try:
            urllib.request.urlopen(f"{P}/v1/watch/app?since=0", timeout=5).read(200)
        except OSError:
            pass
        time.sleep(5)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=300)
    finally:
        for q in procs:
            if q.poll() is None:
                q.kill()
                q.wait()

    dumps = sorted(f for f in os.listdir(tmp) if f.startswith("callgrind.out"))
    if len(dumps) < 2:
        sys.exit(f"order-profile: expected two callgrind dumps in {tmp}, found {dumps}")
    # callgrind names the --dump file <prefix>.<pid>.1 and the final one <prefix>.<pid>.
    phase1 = [d for d in dumps if d.endswith(".1")]
    final = [d for d in dumps if not d.endswith(".1")]
    first = read_costs(os.path.join(tmp, phase1[0]))
    second = read_costs(os.path.join(tmp, final[0]))
    order = [n for n, c in sorted(first.items(), key=lambda kv: -kv[1]) if c > 0]
    seen = set(order)
    order += [n for n, c in sorted(second.items(), key=lambda kv: -kv[1]) if c > 0 and n not in seen]
    # Only symbols the linker places in this binary (not the shared libraries' functions), and duplicated names
    # only where no definition would drag a coarse section along.
    defs = section_sizes(args.map)
    order = [n for n in order if n in defs and (len(defs[n]) == 1 or max(defs[n]) <= COARSE_SECTION)]
    with open(args.out, "w") as f:
        f.write("\n".join(order) + "\n")
    print(f"order-profile: {len(order)} functions ({sum(1 for n in order if n in seen)} from phase 1) -> "
          f"{os.path.relpath(args.out)}; dumps kept in {tmp}")


if __name__ == "__main__":
    main()
