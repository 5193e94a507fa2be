#!/usr/bin/env python3
"""Load-balancer benchmark on this machine (called by bench/lb.sh; stdlib only).

  0. PickerBench (Benchmarks/PickerBench, unless --picker-bin is empty): ns per pick of each strategy at
     N = 3, 100 and 1,000 endpoints, and the time to rebuild a consistent-hash ring at N = 1,000; run first,
     while none of this benchmark's servers run.
  1. Backends: one nginx master (own config, pid and log files in the temp dir, --backend-workers workers) with
     three server blocks on free loopback ports, each `return 200 "ok";` (a 2-byte body).
  2. Proxies in front of those three backends, all started once and kept up:
       - nginx (its own master, --proxy-workers workers): `upstream { server ...; keepalive 64; }`,
         `proxy_http_version 1.1; proxy_set_header Connection "";`;
       - haproxy (foreground, by PID, nbthread --proxy-workers): `mode http`, `http-reuse always`, one frontend
         with `balance roundrobin` and one with `balance leastconn`;
       - one agent (`--gossip-profile local`) holding service `bench` (the 3 backends, weight 100 each) and
         `bench-w` (the same backends, weights --weights), and one `gossamer lb` per strategy joined to it:
         round-robin, least-conn and consistent-hash (`--hash-key path`) route `/b/` to `bench`, weighted routes
         `/b/` to `bench-w`. Each lb counts as ready once GET /_lb/upstreams lists the 3 backends in that pool,
         healthy, with their weights.
  3. wrk -t<threads> -c<concurrency> -d<duration>s --latency --timeout 5s against: one backend directly (no
     proxy), nginx, haproxy roundrobin, haproxy leastconn, and each gossamer lb at /b/. After one warm-up run of
     --warmup s per setup, --runs rounds; in each round every setup runs once, the order rotated by one setup
     from round to round. For every run: requests/s, p50 and p99 (wrk's latency distribution), errors, and the
     CPU (utime+stime from /proc) of the proxy (nginx: master and workers), of the backends, of wrk, of all
     processes of this benchmark and of the whole machine (/proc/stat), since everything shares the cores.

Prints one report (markdown) on stdout: medians per setup with the ratios to nginx and to haproxy roundrobin,
the PickerBench table, the goals marked MET / NOT MET, and the per-run figures. Writes results.json, every wrk
output, picker.txt, each lb's final /_lb/upstreams and /_lb/metrics, and every log to --out-dir. All traffic stays
on 127.0.0.1; every wait is capped; every process started is listed in --pidfile and stopped on exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchcommon import driver_start, loadavg  # noqa: E402
from registrybench import RedisServer, parse_wrk, run_tool  # noqa: E402
from replbench import Abort, Agent, Http, cpu_seconds, fmt, free_ports, goal, log, proc_stat_cpu  # noqa: E402

SERVICE = "bench"
WEIGHTED_SERVICE = "bench-w"
STRATEGIES = ("round-robin", "weighted", "least-conn", "consistent-hash")
GOAL_RPS_RATIO = 0.8  # gossamer lb round-robin requests/s ≥ 0.8 × nginx's
GOAL_P99_RATIO = 1.5  # and its p99 ≤ 1.5 × nginx's
GOAL_PICK_NS = 100  # every strategy at N = 1,000
GOAL_RING_PICK_NS = 250  # consistent hash (ring) at N = 1,000
GOAL_REBUILD_MS = 50  # ring rebuild at N = 1,000


# --------------------------------------------------------------------------------------------------------------
# Processes


def children(pid: int) -> list[int]:
    """The PIDs whose parent is pid (nginx's workers), from /proc/<pid>/stat."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    return out


def log_tail(path: str, lines: int = 8) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "\n".join("      " + x for x in f.read().splitlines()[-lines:])
    except OSError:
        return "      (no log)"


def get_ok(port: int, path: str = "/") -> bool:
    """True if GET path on 127.0.0.1:port answers 200 with the backends' body, "ok"."""
    conn = Http(port, timeout=2)
    try:
        status, body = conn.request("GET", path, retry=False)
        return status == 200 and body == b"ok"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class Server:
    """nginx or haproxy in the foreground, started by us with its own config file in the temp dir, known by its
    PID (nginx's workers too, once it answers); stopped by SIGTERM, then SIGKILL."""

    def __init__(self, args, name: str, config: str, ports: list[int]):
        self.args = args
        self.name = name
        self.ports = ports
        self.conf_path = os.path.join(args.tmp, f"{name}.conf")
        self.log_path = os.path.join(args.tmp, f"{name}.log")
        with open(self.conf_path, "w") as f:
            f.write(config)
        self.proc: subprocess.Popen | None = None
        self.workers: list[int] = []

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float) -> None:
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.args.tmp)
        with open(self.args.pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        while pending:
            if not self.running():
                raise Abort(f"{self.name} exited with status {self.proc.returncode} at start; see logs/{self.name}.log:\n"
                            + log_tail(self.log_path))
            if time.monotonic() > deadline:
                raise Abort(f"{self.name} did not answer 200 \"ok\" on port {pending[0]} within {timeout:g} s")
            if get_ok(pending[0]):
                pending.pop(0)
            else:
                time.sleep(0.05)
        self.workers = children(self.proc.pid)
        with open(self.args.pidfile, "a") as f:
            f.writelines(f"{w}\n" for w in self.workers)

    running = RedisServer.running  # started and not exited

    def pids(self) -> list[int]:
        return ([self.proc.pid] if self.proc else []) + self.workers

    def stop(self) -> None:
        RedisServer.stop(self)  # SIGTERM, up to 10 s, then SIGKILL
        for w in self.workers:  # a worker outliving its master (SIGKILLed) keeps the port
            try:
                with open(f"/proc/{w}/cmdline", errors="replace") as f:
                    if f.read().startswith("nginx: worker"):
                        os.kill(w, signal.SIGKILL)
            except OSError:
                pass


class Nginx(Server):
    def command(self) -> list[str]:
        return ["nginx", "-p", self.args.tmp + "/", "-c", self.conf_path, "-e", self.log_path]


class HAProxy(Server):
    def command(self) -> list[str]:
        return ["haproxy", "-f", self.conf_path, "-db"]


def nginx_config(args, name: str, workers: int, http_block: str) -> str:
    tmp = args.tmp
    temps = "".join(f"  {k}_temp_path {tmp}/{name}-{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"worker_processes {workers};\ndaemon off;\nmaster_process on;\npid {tmp}/{name}.pid;\n"
            f"error_log {tmp}/{name}.log warn;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n  access_log off;\n  default_type text/plain;\n  keepalive_requests 1000000;\n"
            f"  keepalive_timeout 300s;\n{temps}{http_block}}}\n")


def backends_config(args, ports: list[int]) -> str:
    servers = "".join(f"  server {{ listen 127.0.0.1:{p}; location / {{ return 200 \"ok\"; }} }}\n" for p in ports)
    return nginx_config(args, "nginx-backends", args.backend_workers, servers)


def nginx_proxy_config(args, port: int, backends: list[int]) -> str:
    upstream = "".join(f"    server 127.0.0.1:{p};\n" for p in backends)
    block = (f"  upstream backends {{\n{upstream}    keepalive 64;\n    keepalive_requests 1000000;\n  }}\n"
             f"  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://backends;\n"
             f"      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n")
    return nginx_config(args, "nginx-proxy", args.proxy_workers, block)


def haproxy_config(args, rr_port: int, lc_port: int, backends: list[int]) -> str:
    servers = "".join(f"  server b{i} 127.0.0.1:{p}\n" for i, p in enumerate(backends, 1))
    text = (f"global\n  nbthread {args.proxy_workers}\n  maxconn 4096\n\n"
            "defaults\n  mode http\n  http-reuse always\n  timeout connect 5s\n  timeout client 300s\n  timeout server 300s\n\n")
    for name, port, balance in (("rr", rr_port, "roundrobin"), ("lc", lc_port, "leastconn")):
        text += f"frontend fe_{name}\n  bind 127.0.0.1:{port}\n  default_backend be_{name}\n\n"
        text += f"backend be_{name}\n  balance {balance}\n{servers}\n"
    return text


class LbAgent(Agent):
    """replbench's agent with the local gossip profile: the one the load balancers join."""

    def command(self) -> list[str]:
        return super().command() + ["--gossip-profile", "local"]


class Lb(Agent):
    """One `gossamer lb`, started like an agent (listen port = http_port; same stdout line, logs and pidfile)."""

    def __init__(self, args, workdir: str, strategy: str, join_port: int, service: str):
        super().__init__(args, workdir, f"lb-{strategy}", gossip=True, join_port=join_port)
        self.strategy = strategy
        self.service = service

    def command(self) -> list[str]:
        cmd = [self.args.gossamer_bin, "lb", "--node-name", self.name, "--listen", f"127.0.0.1:{self.http_port}",
               "--gossip", f"127.0.0.1:{self.gossip_port}", "--join", f"127.0.0.1:{self.join_port}",
               "--gossip-profile", "local", "--strategy", self.strategy, "--route", f"/b/={self.service}"]
        if self.strategy == "consistent-hash":
            cmd += ["--hash-key", "path"]
        return cmd

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc else []

    def upstreams(self) -> dict:
        return self.api.json("GET", "/_lb/upstreams")

    def pool(self) -> list[dict]:
        return next((p["upstreams"] for p in self.upstreams()["pools"] if p["name"] == self.service), [])

    def wait_pool(self, expect: dict[str, int], timeout: float) -> float:
        """Seconds from the start until the listening line and a pool of exactly the expected upstreams (address →
        weight), all healthy; Abort with the last answer and the log's tail if that takes over timeout."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.running():
                raise Abort(f"{self.name} exited with status {self.proc.returncode} during startup; logs/{self.name}.log:\n"
                            + log_tail(os.path.join(self.log_dir, f"{self.name}.log")))
            if self.listen_t is not None:
                try:
                    pool = self.pool()
                    got = {u["address"]: u["weight"] for u in pool if u["healthy"]}
                    if got == expect and len(pool) == len(expect):
                        return time.perf_counter() - self.spawn_t
                    last = json.dumps(pool)
                except (OSError, RuntimeError, http.client.HTTPException, ValueError, KeyError) as e:
                    last = f"error {e}"
            time.sleep(self.args.poll_ms / 1000)
        raise Abort(f"{self.name}: pool {self.service} did not list {expect} within {timeout:g} s; last /_lb/upstreams "
                    f"pool: {last[:600]}; logs/{self.name}.log:\n" + log_tail(os.path.join(self.log_dir, f"{self.name}.log")))


# --------------------------------------------------------------------------------------------------------------
# 0: PickerBench


def run_picker(args) -> dict:
    out_path = os.path.join(args.out_dir, "picker.txt")
    text, info = run_tool(args, [args.picker_bin], out_path, 600)
    if info["exit"] != 0:
        raise Abort(f"PickerBench exited with status {info['exit']}: {text[-300:]!r}")
    sizes, rows, rebuild = [], [], None
    for line in text.splitlines():
        if line.startswith("strategy") and "N=" in line:
            sizes = [int(x) for x in re.findall(r"N=(\d+)", line)]
        elif line.startswith("ring rebuild"):
            rebuild = float(line.split()[-1])
        elif sizes and (m := re.match(r"^(.*\S)\s+" + r"\s+".join([r"([\d.]+)"] * len(sizes)) + r"\s*$", line)):
            rows.append({"name": m.group(1), "ns": dict(zip(sizes, (float(x) for x in m.groups()[1:])))})
    if not rows or rebuild is None:
        raise Abort(f"no table in PickerBench's output: {text[-300:]!r}")
    return {"sizes": sizes, "rows": rows, "rebuild_ms": rebuild, "wall_s": info["wall_s"]}


def pick_goal_ns(name: str) -> int:
    return GOAL_RING_PICK_NS if "consistent hash" in name else GOAL_PICK_NS


# --------------------------------------------------------------------------------------------------------------
# 1-3: servers and load


class Setup:
    def __init__(self, key: str, label: str, port: int, path: str, proxy: list, lb: Lb | None = None):
        self.key, self.label, self.port, self.path, self.proxy, self.lb = key, label, port, path, proxy, lb

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def proxy_pids(self) -> list[int]:
        return [p for s in self.proxy for p in s.pids()]


def cpu_of(pids: list[int]) -> float:
    return sum(x for x in (cpu_seconds(p) for p in pids) if x == x)  # skips NaN (gone)


def run_wrk(args, setup: Setup, seconds: int, out_path: str, everything: list[int], backends: list[int],
            agent: list[int]) -> dict:
    cmd = ["wrk", f"-t{min(args.threads, args.concurrency)}", f"-c{args.concurrency}", f"-d{seconds}s", "--timeout", "5s",
           "--latency", setup.url]
    before_dist = dist(setup.lb) if setup.lb else None
    proxy, back, ours, ag = (cpu_of(x) for x in (setup.proxy_pids(), backends, everything, agent))
    stat0 = proc_stat_cpu()
    text, info = run_tool(args, cmd, out_path, seconds + 60)
    stat = [b - a for a, b in zip(stat0, proc_stat_cpu())]
    wall = info["wall_s"]
    r = parse_wrk(text)
    if r["rps"] is None or "p99_ms" not in r:
        raise Abort(f"no figures in wrk's output for {setup.label} (exit {info['exit']}): {text[-300:]!r}")
    r.update(info)
    total = max(1, sum(stat[:8]))  # user nice system idle iowait irq softirq steal
    busy = (total - stat[3] - stat[4]) / total * (os.cpu_count() or 1)
    r["proxy_cores"] = round((cpu_of(setup.proxy_pids()) - proxy) / wall, 2) if setup.proxy else None
    r["backend_cores"] = round((cpu_of(backends) - back) / wall, 2)
    r["agent_cores"] = round((cpu_of(agent) - ag) / wall, 2)
    ours_cores = (cpu_of(everything) - ours) / wall + r["client_cores"]
    r["machine_busy_cores"] = round(busy, 2)
    r["other_cores"] = round(max(0.0, busy - ours_cores), 2)  # the machine's busy cores minus this benchmark's
    r["proxy_us_per_request"] = (round(r["proxy_cores"] / r["rps"] * 1e6, 1) if r["proxy_cores"] is not None and r["rps"]
                                 else None)
    if setup.lb:
        after = dist(setup.lb)
        r["backend_share"] = {k: after[k][0] - before_dist.get(k, (0, 0))[0] for k in after}
        r["lb_failures"] = sum(after[k][1] - before_dist.get(k, (0, 0))[1] for k in after)
    return r


def dist(lb: Lb) -> dict:
    """Per upstream of the lb's service pool: (requests, failures) so far."""
    return {u["id"]: (u["requests"], u["failures"]) for u in lb.pool()}


def phase_http(args, results: dict, servers: list, lbs: list[Lb], agent: Agent) -> None:
    ports = free_ports(3 + 1 + 2)
    back_ports, nginx_port, rr_port, lc_port = ports[:3], ports[3], ports[4], ports[5]
    backends = Nginx(args, "nginx-backends", backends_config(args, back_ports), back_ports)
    servers.append(backends)
    backends.start(args.wait_timeout)
    nginx = Nginx(args, "nginx-proxy", nginx_proxy_config(args, nginx_port, back_ports), [nginx_port])
    servers.append(nginx)
    nginx.start(args.wait_timeout)
    haproxy = HAProxy(args, "haproxy", haproxy_config(args, rr_port, lc_port, back_ports), [rr_port, lc_port])
    servers.append(haproxy)
    haproxy.start(args.wait_timeout)
    log(f"nginx backends on {back_ports} (pid {backends.proc.pid}, workers {backends.workers}); nginx proxy on {nginx_port} "
        f"(workers {nginx.workers}); haproxy rr on {rr_port}, leastconn on {lc_port} (pid {haproxy.proc.pid})")

    agent.start()
    agent.wait_ready()
    for service, weights in ((SERVICE, [100, 100, 100]), (WEIGHTED_SERVICE, args.weights)):
        for i, (port, weight) in enumerate(zip(back_ports, weights), 1):
            body = json.dumps({"address": "127.0.0.1", "port": port, "weight": weight}).encode()
            status, data = agent.api.request("PUT", f"/v1/services/{service}/instances/b{i}", body,
                                             {"Content-Type": "application/json"}, retry=False)
            if status != 200:
                raise Abort(f"registering {service}/b{i} answered {status}: {data[:200]!r}")
    ready = {}
    for strategy in STRATEGIES:
        service = WEIGHTED_SERVICE if strategy == "weighted" else SERVICE
        lb = Lb(args, agent.log_dir, strategy, agent.gossip_port, service)
        lbs.append(lb)
        lb.start()
    for lb in lbs:
        weights = args.weights if lb.service == WEIGHTED_SERVICE else [100, 100, 100]
        ready[lb.strategy] = round(lb.wait_pool({f"127.0.0.1:{p}": w for p, w in zip(back_ports, weights)},
                                                args.wait_timeout), 2)
    results["lb_ready_s"] = ready
    log(f"agent {agent.name} on {agent.http_port}; lbs ready (start → pool listed) in {ready} s")

    setups = [Setup("direct", "no proxy (one nginx backend)", back_ports[0], "/", []),
              Setup("nginx", "nginx round robin, keepalive 64", nginx_port, "/", [nginx]),
              Setup("haproxy-rr", "haproxy roundrobin", rr_port, "/", [haproxy]),
              Setup("haproxy-lc", "haproxy leastconn", lc_port, "/", [haproxy])]
    labels = {"round-robin": "round-robin", "weighted": f"weighted ({'/'.join(map(str, args.weights))})",
              "least-conn": "least-conn", "consistent-hash": "consistent-hash (path)"}
    setups += [Setup(f"gossamer-{lb.strategy}", f"gossamer lb {labels[lb.strategy]}", lb.http_port, "/b/", [lb], lb) for lb in lbs]
    for s in setups:
        if not get_ok(s.port, s.path):
            raise Abort(f"{s.label}: GET {s.url} did not answer 200 \"ok\"")
    everything = [p for s in servers for p in s.pids()] + [agent.proc.pid] + [lb.proc.pid for lb in lbs]
    back_pids, agent_pids = backends.pids(), [agent.proc.pid]

    def check_running() -> None:
        for s in servers:
            if not s.running():
                raise Abort(f"{s.name} exited (status {s.proc.returncode}); logs/{s.name}.log:\n" + log_tail(s.log_path))
        for a in [agent] + lbs:
            if not a.running():
                raise Abort(f"{a.name} exited (status {a.proc.returncode}); logs/{a.name}.log:\n"
                            + log_tail(os.path.join(a.log_dir, f"{a.name}.log")))

    # Idle: what the servers cost while nothing is sent (gossip of the agent and 4 lbs, blocking queries).
    groups = {s.name: s.pids() for s in servers}
    groups.update(agent=agent_pids, lbs=[lb.proc.pid for lb in lbs])
    cpu0 = {k: cpu_of(v) for k, v in groups.items()}
    t0 = time.perf_counter()
    time.sleep(args.idle)
    wall = time.perf_counter() - t0
    results["idle_cores"] = {k: round((cpu_of(groups[k]) - v) / wall, 3) for k, v in cpu0.items()}
    log(f"idle ({args.idle:g} s): cores {results['idle_cores']}")

    if args.warmup > 0:
        log(f"warm-up: {args.warmup} s of wrk per setup (not counted)")
        for s in setups:
            check_running()
            run_wrk(args, s, args.warmup, os.path.join(args.out_dir, f"wrk-warmup-{s.key}.txt"), everything, back_pids, agent_pids)
            time.sleep(args.pause)

    results["setups"] = [{"key": s.key, "label": s.label, "url": s.url} for s in setups]
    runs = results.setdefault("runs", [])
    for run in range(1, args.runs + 1):
        shift = (run - 1) % len(setups)
        order = setups[shift:] + setups[:shift]
        log(f"round {run}/{args.runs} (load {loadavg()}): {', '.join(s.key for s in order)}")
        for s in order:
            check_running()
            r = run_wrk(args, s, args.duration, os.path.join(args.out_dir, f"wrk-{s.key}-run{run}.txt"), everything,
                        back_pids, agent_pids)
            r.update(run=run, setup=s.key)
            runs.append(r)
            share = f", per backend {r['backend_share']}" if "backend_share" in r else ""
            log(f"  {s.key:26s} {r['rps']:>9,.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms, errors "
                f"{r['non2xx'] + r['socket_errors']}; proxy {fmt(r['proxy_cores'], 2)} cores, backends {r['backend_cores']}, "
                f"wrk {r['client_cores']}, other work {r['other_cores']}{share}")
            time.sleep(args.pause)
    check_running()


# --------------------------------------------------------------------------------------------------------------
# Report


def median_of(runs: list[dict], setup: str, key: str):
    xs = [r[key] for r in runs if r["setup"] == setup and r.get(key) is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


def rx(x) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def report(results: dict, args, meta: dict) -> str:
    L = [f"Load-balancer benchmark, {meta.get('date')}: {meta.get('command')}",
         f"{meta.get('versions')}; load average before {meta.get('load_before')}, after {meta.get('load_after', 'n/a')}", ""]
    runs = results.get("runs", [])
    setups = results.get("setups", [])
    nruns = len({r["run"] for r in runs})
    rps = {s["key"]: median_of(runs, s["key"], "rps") for s in setups}
    p99 = {s["key"]: median_of(runs, s["key"], "p99_ms") for s in setups}
    rps_goal = p99_goal = None
    if setups:
        L.append(f"| setup (wrk -t{min(args.threads, args.concurrency)} -c{args.concurrency}, {args.duration} s; median of {nruns} "
                 f"round{'s' if nruns != 1 else ''}) | requests/s | p50 ms | p99 ms | req/s ÷ nginx | p99 ÷ nginx | req/s ÷ haproxy rr | p99 ÷ haproxy rr "
                 f"| proxy CPU (cores) | proxy CPU µs/request | errors | goal |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in setups:
            k = s["key"]
            errors = sum(r["non2xx"] + r["socket_errors"] for r in runs if r["setup"] == k)
            cell = ""
            if k == "gossamer-round-robin":
                rr, pr = ratio(rps[k], rps["nginx"]), ratio(p99[k], p99["nginx"])
                rps_goal = None if rr is None else rr >= GOAL_RPS_RATIO
                p99_goal = None if pr is None else pr <= GOAL_P99_RATIO
                cell = (f"req/s ≥ {GOAL_RPS_RATIO:.1f}x nginx: {goal(rps_goal)}; p99 ≤ {GOAL_P99_RATIO:.1f}x nginx: "
                        f"{goal(p99_goal)}")
            proxy_cells = ("n/a | n/a" if k == "direct" else
                           f"{fmt(median_of(runs, k, 'proxy_cores'), 2)} | {fmt(median_of(runs, k, 'proxy_us_per_request'), 1)}")
            L.append(f"| {s['label']} | {fmt(rps[k], 0)} | {fmt(median_of(runs, k, 'p50_ms'), 2)} | {fmt(p99[k], 2)} | "
                     f"{rx(ratio(rps[k], rps['nginx']))} | {rx(ratio(p99[k], p99['nginx']))} | "
                     f"{rx(ratio(rps[k], rps['haproxy-rr']))} | {rx(ratio(p99[k], p99['haproxy-rr']))} | {proxy_cells} | "
                     f"{errors} | {cell} |")
        L.append("")

    picker = results.get("picker")
    worst = worst_ring = None
    pick_ok = rebuild_ok = None
    if picker:
        sizes = picker["sizes"]
        big = max(sizes)
        L.append(f"| PickerBench: ns per pick (best of 5 × 1,000,000) | " + " | ".join(f"N={n:,}" for n in sizes) + f" | goal at N={big:,} |")
        L.append("|---|" + "---:|" * len(sizes) + "---|")
        for row in picker["rows"]:
            limit = pick_goal_ns(row["name"])
            ok = row["ns"][big] <= limit
            L.append(f"| {row['name']} | " + " | ".join(f"{row['ns'][n]:g}" for n in sizes) + f" | ≤ {limit} ns: {goal(ok)} |")
        plain = [r for r in picker["rows"] if pick_goal_ns(r["name"]) == GOAL_PICK_NS]
        ring = [r for r in picker["rows"] if pick_goal_ns(r["name"]) == GOAL_RING_PICK_NS]
        worst = max(plain, key=lambda r: r["ns"][big]) if plain else None
        worst_ring = max(ring, key=lambda r: r["ns"][big]) if ring else None
        pick_ok = all(r["ns"][big] <= pick_goal_ns(r["name"]) for r in picker["rows"])
        rebuild_ok = picker["rebuild_ms"] <= GOAL_REBUILD_MS
        L.append(f"| ring rebuild, N = {big:,} × 160 vnodes (ms) | " + " | ".join([""] * (len(sizes) - 1))
                 + f" | {picker['rebuild_ms']:g} | ≤ {GOAL_REBUILD_MS} ms: {goal(rebuild_ok)} |")
        L.append("")
    elif args.picker_bin:
        L += ["PickerBench: not run (see the anomalies)", ""]

    L.append("Goals:")
    if setups:
        per_round = [ratio(a["rps"], b["rps"]) for a in runs for b in runs
                     if a["setup"] == "gossamer-round-robin" and b["setup"] == "nginx" and a["run"] == b["run"]]
        L.append(f"  - gossamer lb round-robin requests/s ≥ {GOAL_RPS_RATIO:.1f}x nginx's: {fmt(rps.get('gossamer-round-robin'), 0)} vs "
                 f"{fmt(rps.get('nginx'), 0)} = {rx(ratio(rps.get('gossamer-round-robin'), rps.get('nginx')))} (rounds: "
                 f"{', '.join(rx(x) for x in per_round) or 'none'}) -> {goal(rps_goal)}")
        L.append(f"  - gossamer lb round-robin p99 ≤ {GOAL_P99_RATIO:.1f}x nginx's: {fmt(p99.get('gossamer-round-robin'), 2)} ms vs "
                 f"{fmt(p99.get('nginx'), 2)} ms = {rx(ratio(p99.get('gossamer-round-robin'), p99.get('nginx')))} -> {goal(p99_goal)}")
    else:
        L.append("  - gossamer lb round-robin vs nginx: not measured -> n/a")
    if picker:
        big = max(picker["sizes"])
        L.append(f"  - every strategy ≤ {GOAL_PICK_NS} ns per pick at N={big:,} (consistent hash ≤ {GOAL_RING_PICK_NS} ns): slowest "
                 f"{worst['name']!r} {worst['ns'][big]:g} ns, slowest ring {worst_ring['name']!r} {worst_ring['ns'][big]:g} ns "
                 f"-> {goal(pick_ok)}")
        L.append(f"  - ring rebuild at N={big:,} ≤ {GOAL_REBUILD_MS} ms: {picker['rebuild_ms']:g} ms -> {goal(rebuild_ok)}")
    L.append("")

    anomalies = []
    if results.get("error"):
        anomalies.append(f"ABORTED: {results['error']}")
    for r in runs:
        if r["non2xx"] or r["socket_errors"]:
            anomalies.append(f"round {r['run']} {r['setup']}: wrk saw {r['non2xx']} non-2xx answers and {r['socket_errors']} "
                             f"socket errors")
        if r.get("lb_failures"):
            anomalies.append(f"round {r['run']} {r['setup']}: /_lb/upstreams counted {r['lb_failures']} upstream failures")
    for name, st in results.get("lb_exit", {}).items():
        if st["status"] != 0:
            anomalies.append(f"{name} exited with status {st['status']} on SIGTERM ({st['seconds']} s): {st['last_line']}")
    L += ["ERRORS / ANOMALIES:", *(f"  - {a}" for a in anomalies), ""] if anomalies else []

    L.append("Details:")
    if "lb_ready_s" in results:
        L.append(f"  - gossamer lb, start → /_lb/upstreams listing the 3 backends: {results['lb_ready_s']} s")
    if "idle_cores" in results:
        L.append(f"  - idle CPU before the load ({args.idle:g} s, cores): "
                 + ", ".join(f"{k} {v}" for k, v in results["idle_cores"].items()))
    if picker:
        L.append(f"  - PickerBench took {picker['wall_s']:.1f} s (run before any server started)")
    for r in runs:
        share = f"; requests per backend {r['backend_share']}" if "backend_share" in r else ""
        L.append(f"  - round {r['run']} {r['setup']}: {fmt(r['rps'], 0)} req/s, p50 {fmt(r['p50_ms'], 2)} p90 {fmt(r.get('p90_ms'), 2)} "
                 f"p99 {fmt(r['p99_ms'], 2)} ms; cores: proxy {fmt(r['proxy_cores'], 2)}, backends {r['backend_cores']}, "
                 f"wrk {r['client_cores']}, agent {r['agent_cores']}, machine busy {r['machine_busy_cores']} of "
                 f"{os.cpu_count()}, of which other work {r['other_cores']}{share}")
    L += ["", "Method: " + meta.get("method", "")]
    return "\n".join(L)


# --------------------------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--picker-bin", default="", help="PickerBench binary (empty: skip it)")
    ap.add_argument("--weights", default="300 200 100", help="weights of the 3 backends for the weighted lb")
    for opt in ("--gossamer-bin", "--out-dir", "--pidfile", "--tmp"):
        ap.add_argument(opt, required=True)
    # The numeric knobs, in lb.sh's order: option -> (type, default).
    knobs = {
        "--duration": (int, 10), "--runs": (int, 3), "--concurrency": (int, 64), "--threads": (int, 2),
        "--warmup": (int, 2), "--pause": (float, 1), "--idle": (float, 3), "--backend-workers": (int, 1),
        "--proxy-workers": (int, 2), "--poll-ms": (int, 50), "--wait-timeout": (float, 60),
    }
    for opt, (kind, default) in knobs.items():
        ap.add_argument(opt, type=kind, default=default)
    ap.add_argument("--meta", action="append", default=[], help="key=value for the report header")
    args = ap.parse_args()
    args.weights = [int(x) for x in args.weights.split()]
    meta = driver_start(args)
    meta["method"] = (
        f"3 nginx backends (one master, {args.backend_workers} worker(s), `return 200 \"ok\"`, keepalive_requests 1000000) on "
        f"loopback; proxies kept up throughout: nginx ({args.proxy_workers} workers, upstream keepalive 64, HTTP/1.1), haproxy "
        f"(nbthread {args.proxy_workers}, http-reuse always; roundrobin and leastconn frontends), and one gossamer lb per strategy "
        f"(joined to 1 agent, --gossip-profile local, --route /b/=bench; weighted: /b/=bench-w with weights "
        f"{'/'.join(map(str, args.weights))}; consistent-hash --hash-key path, so every request of wrk's single path goes to "
        f"one backend). wrk -t{min(args.threads, args.concurrency)} -c{args.concurrency} -d{args.duration}s --latency --timeout "
        f"5s, {args.warmup} s warm-up per setup, {args.runs} round{'s' if args.runs != 1 else ''} with the order rotated each round; medians. CPU = "
        f"utime+stime from /proc/<pid>/stat over the run (nginx: master + workers); everything shares the machine's "
        f"{os.cpu_count()} cores with wrk and with other work")
    results: dict = {"meta": meta}
    started = time.monotonic()
    servers: list[Server] = []
    lbs: list[Lb] = []
    workdir = os.path.join(args.tmp, "gossamer")
    os.makedirs(workdir, exist_ok=True)
    agent = LbAgent(args, workdir, "a0", gossip=True)
    rc = 0
    try:
        if args.picker_bin:
            log("PickerBench (ns per pick, ring rebuild)")
            results["picker"] = run_picker(args)
            save_results(args, results)
        phase_http(args, results, servers, lbs, agent)
    except Abort as e:
        log(f"ABORTED: {e}")
        results["error"], rc = str(e), 1
    except KeyboardInterrupt:
        log("lbbench: interrupted; reporting what was measured")
        rc = 130
    finally:
        results["lb_exit"] = stop_all(args, workdir, servers, lbs, agent)
    meta.update(load_after=loadavg(), wall_s=round(time.monotonic() - started))
    save_results(args, results)
    print(report(results, args, meta), flush=True)  # lb.sh saves it as table.md
    return rc


def save_results(args, results: dict) -> None:
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=lambda x: None)


def stop_all(args, workdir: str, servers: list[Server], lbs: list[Lb], agent: Agent) -> dict:
    """Saves each lb's final /_lb/upstreams and /_lb/metrics, stops every lb (SIGTERM: how it exited is returned),
    the agent and the servers, and moves every log and config into <out-dir>/logs."""
    exits = {}
    for lb in lbs:
        if not lb.running():
            continue
        for what in ("upstreams", "metrics"):
            try:
                _, data = lb.api.request("GET", f"/_lb/{what}")
            except (OSError, http.client.HTTPException):
                continue
            with open(os.path.join(args.out_dir, f"{lb.name}-{what}.txt"), "wb") as f:
                f.write(data)
        seconds, by_itself = lb.terminate()
        with open(os.path.join(workdir, f"{lb.name}.log"), errors="replace") as f:
            lines = f.read().splitlines()
        exits[lb.name] = {"status": lb.proc.returncode, "seconds": round(seconds, 2), "by_itself": by_itself,
                          "last_line": lines[-1][:400] if lines else ""}
    agent.kill()
    for s in reversed(servers):
        s.stop()
    logs = os.path.join(args.out_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    for d in (args.tmp, workdir):
        for name in os.listdir(d):
            if name.endswith((".log", ".out", ".conf")):
                os.replace(os.path.join(d, name), os.path.join(logs, name))
    return exits


if __name__ == "__main__":
    sys.exit(main())
