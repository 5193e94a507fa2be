#!/usr/bin/env python3
"""Driver of bench/alerts.sh: the alert engine alone (Benchmarks/AlertBench), then one real agent evaluating
RULES rules over SERIES test gauges (round time from its own gossamer_alert_round_seconds histogram, CPU share from
/proc), and the latency from a threshold crossing to the webhook receiving the firing notification (rule with
`for: 0`, its own interval, group_wait 0). Prints a markdown table on stdout; progress on stderr.

Every process it starts is on 127.0.0.1 and listed in --pidfile; every loop is bounded in count and time."""

import argparse
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from benchcommon import cpu_ticks, driver_start, percentile  # noqa: E402


def log(msg: str) -> None:
    print(f"==> [{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    def __init__(self, binary: str, tmp: str, pidfile: str, interval: str):
        self.dir = os.path.join(tmp, "agent")
        os.makedirs(self.dir, exist_ok=True)
        config = os.path.join(self.dir, "agent.toml")
        with open(config, "w") as f:
            f.write(f'debug_metrics = true\n[alerts]\ninterval = "{interval}"\ngroup_wait = "0s"\n'
                    'group_interval = "1s"\ndefault_rules = false\n')
        self.out = open(os.path.join(self.dir, "stdout"), "w")
        self.proc = subprocess.Popen(
            [binary, "agent", "--node-name", "bench", "--data-dir", os.path.join(self.dir, "data"), "--http", "127.0.0.1:0",
             "--config", config, "--log-level", "warning"], stdout=self.out, stderr=subprocess.STDOUT)
        with open(pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline and self.proc.poll() is None:
            text = open(os.path.join(self.dir, "stdout")).read()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if self.port is None:
            raise RuntimeError("the agent did not start: " + open(os.path.join(self.dir, "stdout")).read()[-2000:])
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        raise AssertionError("unreachable")

    def gauge(self, name: str, value: float, labels=None) -> None:
        status, body = self.request("PUT", f"/v1/debug/metrics/{name}", {"value": value, "labels": labels or {}})
        if status != 200:
            raise RuntimeError(f"setting {name}: {status} {body[:200]!r}")

    def metric(self, name: str) -> float:
        _, body = self.request("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{}"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook receiver recording when each firing/resolved payload arrives (time.monotonic)."""

    def __init__(self):
        self.events: list[tuple[float, str]] = []
        self.lock = threading.Lock()

        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.monotonic()
                try:
                    status = json.loads(body).get("status", "?")
                except ValueError:
                    status = "?"
                with outer.lock:
                    outer.events.append((now, status))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, status: str, after: int, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for at, s in self.events[after:]:
                    if s == status:
                        return at
            time.sleep(0.002)
        return None


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--gossamer-bin", required=True)
    p.add_argument("--alertbench-bin", required=True)
    p.add_argument("--webhookbench-bin", default="")
    p.add_argument("--client-requests", type=int, default=1000)
    p.add_argument("--rules", type=int, default=1000)
    p.add_argument("--series", type=int, default=10000)
    p.add_argument("--interval", default="15s")
    p.add_argument("--measure", type=float, default=60)
    p.add_argument("--crossings", type=int, default=20)
    p.add_argument("--latency-interval", default="1s")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--pidfile", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--meta", action="append", default=[])
    args = p.parse_args()
    meta = driver_start(args)
    rows = []

    # 1. The engine alone.
    log(f"engine: {args.rules} rules over {args.series} series (Benchmarks/AlertBench)")
    engine = subprocess.run([args.alertbench_bin, "--rules", str(args.rules), "--series", str(args.series)],
                            capture_output=True, text=True, timeout=300)
    with open(os.path.join(args.out_dir, "alertbench.txt"), "w") as f:
        f.write(engine.stdout + engine.stderr)
    result = dict(re.findall(r"(\w+)=([0-9.]+)", next((l for l in engine.stdout.splitlines() if l.startswith("RESULT")), "")))
    if result:
        rows.append(("engine round p50 (sample + evaluate + encode state), ms", result.get("round_p50_ms", "?"), "≤ 50",
                     "MET" if float(result.get("round_p50_ms", "inf")) <= 50 else "NOT MET"))
        rows.append(("engine round p99, ms", result.get("round_p99_ms", "?"), "", ""))
        rows.append(("engine evaluation only p50, ms", result.get("eval_p50_ms", "?"), "", ""))
    else:
        rows.append(("engine", "no RESULT line", "", "see alertbench.txt"))

    # 2. One agent: RULES rules over SERIES gauges.
    agent = Agent(args.gossamer_bin, args.tmp, args.pidfile, args.interval)
    receiver = Receiver()
    try:
        metrics = 100
        per_metric = max(1, args.series // metrics)
        log(f"agent on port {agent.port}: setting {metrics * per_metric} gauges")
        start = time.time()
        for m in range(metrics):
            for i in range(per_metric):
                agent.gauge(f"gossamer_debug_m{m:03d}", float(i % 97), {"shard": f"s{i:03d}", "zone": f"z{i % 4}"})
            if time.time() - start > 300:
                raise RuntimeError("setting the gauges took over 5 minutes")
        log(f"loading {args.rules} rules")
        aggregates = ["none", "max", "sum", "avg"]
        for r in range(args.rules):
            m = r % metrics
            aggregate = aggregates[r % 4]
            rule = {"name": f"bench-{r:04d}", "metric": f"gossamer_debug_m{m:03d}", "op": ">", "aggregate": aggregate,
                    "threshold": 95 if aggregate == "none" else 1e9, "for": "1m" if r % 3 == 0 else "0s",
                    "annotations": {"summary": "{{ $labels.shard }} at {{ $value }}"}}
            if r % 5 == 0:
                rule["match"] = {"zone": f"z{r % 4}"}
            status, body = agent.request("PUT", f"/v1/alerts/rules/{rule['name']}", rule)
            if status != 200:
                raise RuntimeError(f"rule {rule['name']}: {status} {body[:300]!r}")
        # The latency rule, on its own gauge and interval.
        status, body = agent.request("PUT", "/v1/alerts/rules/latency", {
            "name": "latency", "metric": "gossamer_debug_latency", "op": ">", "threshold": 10,
            "interval": args.latency_interval, "receivers": [{"webhook": f"http://127.0.0.1:{receiver.server_port}/hook"}]})
        if status != 200:
            raise RuntimeError(f"latency rule: {status} {body[:300]!r}")
        agent.gauge("gossamer_debug_latency", 0)

        log(f"measuring rounds and CPU for {args.measure:.0f} s")
        time.sleep(2)
        sum0, count0 = agent.metric("gossamer_alert_round_seconds_sum"), agent.metric("gossamer_alert_round_seconds_count")
        ticks0, t0 = cpu_ticks(agent.proc.pid), time.monotonic()
        time.sleep(args.measure)
        ticks1, t1 = cpu_ticks(agent.proc.pid), time.monotonic()
        sum1, count1 = agent.metric("gossamer_alert_round_seconds_sum"), agent.metric("gossamer_alert_round_seconds_count")
        rounds = count1 - count0
        mean_ms = (sum1 - sum0) / rounds * 1000 if rounds else float("nan")
        cpu_share = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK") / (t1 - t0) * 100
        rows.append((f"agent round mean ({rounds:.0f} rounds: sample {args.series} series + evaluate due rules + save), ms",
                     f"{mean_ms:.1f}", "≤ 50", "MET" if mean_ms <= 50 else "NOT MET"))
        rows.append((f"agent CPU share with {args.rules} rules every {args.interval} plus a {args.latency_interval} rule, % of one core",
                     f"{cpu_share:.2f}", "", ""))

        # 3. Crossing → webhook.
        interval_ms = float(re.match(r"([0-9.]+)", args.latency_interval).group(1)) * (1000 if args.latency_interval.endswith("s") and not args.latency_interval.endswith("ms") else 1)
        log(f"{args.crossings} crossings, rule interval {args.latency_interval}")
        latencies = []
        for c in range(args.crossings):
            seen = len(receiver.events)
            agent.gauge("gossamer_debug_latency", 20)
            crossed = time.monotonic()
            arrived = receiver.wait_for("firing", seen, timeout=interval_ms / 1000 + 30)
            if arrived is None:
                raise RuntimeError(f"crossing {c}: no firing notification within {interval_ms / 1000 + 30:.0f} s")
            latencies.append((arrived - crossed) * 1000)
            seen = len(receiver.events)
            agent.gauge("gossamer_debug_latency", 0)
            if receiver.wait_for("resolved", seen, timeout=interval_ms / 1000 + 30) is None:
                raise RuntimeError(f"crossing {c}: no resolved notification")
            time.sleep(1.1 + (c % 5) * 0.1)  # past group_interval, at a different phase of the evaluation tick
        latencies.sort()
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        goal = interval_ms + 100
        rows.append((f"crossing → webhook p50 (rule interval {args.latency_interval}, for 0, group_wait 0), ms", f"{p50:.0f}", "", ""))
        rows.append((f"crossing → webhook p99, ms", f"{p99:.0f}", f"≤ {goal:.0f}", "MET" if p99 <= goal else "NOT MET"))
        rows.append(("crossing → webhook max, ms", f"{latencies[-1]:.0f}", "", ""))
        # 4. The outbound HTTP client: AsyncHTTPClient (what WebhookSender uses) against URLSession (libcurl).
        if args.webhookbench_bin:
            agent.stop()
            log(f"HTTP clients: {args.client_requests} webhook POSTs each, 3 rounds (Benchmarks/WebhookBench)")
            clients = subprocess.run([args.webhookbench_bin, "--url", f"http://127.0.0.1:{receiver.server_port}/hook",
                                      "--requests", str(args.client_requests), "--rounds", "3"],
                                     capture_output=True, text=True, timeout=600)
            with open(os.path.join(args.out_dir, "webhookbench.txt"), "w") as f:
                f.write(clients.stdout + clients.stderr)
            got = dict(re.findall(r"(\w+)=([0-9.]+)", next((l for l in clients.stdout.splitlines() if l.startswith("RESULT")), "")))
            if got:
                for key, name in (("ahc", "AsyncHTTPClient"), ("urlsession", "URLSession (libcurl)")):
                    rows.append((f"webhook POST via {name}: p50 / p99 ms, CPU µs per request, errors",
                                 f"{got[key + '_p50_ms']} / {got[key + '_p99_ms']}, {got[key + '_cpu_us']}, {got[key + '_errors']}", "", ""))
            else:
                rows.append(("webhook clients", "no RESULT line", "", "see webhookbench.txt"))
    finally:
        agent.stop()
        receiver.shutdown()

    print(f"# Alerts benchmark, {meta['date']}\n")
    for key in ("command", "versions"):
        if key in meta:
            print(f"- {key}: {meta[key]}")
    print(f"- load before: {meta['load_before']}\n")
    print("| figure | value | goal | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
