#!/usr/bin/env python3
"""Runs the shell examples of README.md and docs/api.md against real agents, so the documentation cannot drift
from the code.

    scripts/check-docs.py [--bin PATH] [--verbose]

- README.md: the tour's blocks (from "5-minute tour" to the end of the alerts block) run in order in one bash,
  in a temporary directory, with `gossamer` on PATH. The tour's fixed ports (7700-7703, 7946-7950, 8080, 9001) are
  mapped to free loopback ports, so nothing else on the machine is touched.
- docs/api.md: every `curl`, `gossamer` and (with REDIS_PORT set) `redis-cli` example runs, in document order
  (with GOSSAMER_ADDR=$A, and the db.yaml and ops.json they name), against two agents (`n1` is `$A`, `b` is its peer;
  gossip encrypted, `debug_metrics = true`, Redis when REDIS_PORT is set) and a `gossamer lb` (`$L`).

Every command must succeed: a CLI command exits 0 (or the status a following `(exit N)` names); a curl gets a 2xx answer, or the status its comment names
(`# 409 ...` on the same line, or `# 504 {...}` / `# (status 400 ...` on the next). A streaming command (`curl -N`,
`watch`) must still be running and have printed something after 2 s. Blocking queries wait 1 s instead of 30 s.
Examples with placeholders (`<base64>`, `…`, `[--json]`) are skipped, and `POST /v1/agent/leave`, which stops
the agent, runs last. Prints one line per command and exits 1 if any failed.
"""
import argparse
import os
import re
import shlex
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


def wait_listening(port: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_http(url: str, predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if predicate(r.read().decode()):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


# --- Extracting commands -------------------------------------------------------------------------------------


class Command:
    def __init__(self, text: str, comment: str, line: int, source: str):
        self.text = text          # the command without its trailing comment (continuations joined)
        self.comment = comment    # its trailing comment, "" if none
        self.line = line
        self.source = source
        self.expected = None      # HTTP status a curl must get (None: any 2xx)
        self.expected_exit = None # exit status another command must end with (None: 0)

    def __repr__(self):
        return f"{self.source}:{self.line}: {self.text}"


def split_comment(line: str):
    """(code, comment): the comment starts at a '#' outside quotes that follows whitespace."""
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip(), line[i + 1:].strip()
        i += 1
    return line.rstrip(), ""


def finished(pending: str):
    """(code, trailing comment) once `pending` holds a whole command, else None: no trailing backslash, no open
    quote, a heredoc up to its EOF line."""
    if "<<'EOF'" in pending:
        return (pending, "") if pending.rstrip().endswith("\nEOF") else None
    head, _, tail = pending.rpartition("\n")
    tail, comment = split_comment(tail)
    code = f"{head}\n{tail}" if head else tail
    if code.endswith("\\"):
        return None
    try:
        shlex.split(code)
    except ValueError:
        return None
    return code, comment


def blocks(path: str):
    """(first line number, [lines]) of each ```sh block."""
    out, current, start = [], None, 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if current is None:
                if line.strip() == "```sh":
                    current, start = [], n + 1
            elif line.strip() == "```":
                out.append((start, current))
                current = None
            else:
                current.append(line)
    return out


def commands(path: str, first_line: int = 0, last_line: int = 10**9):
    source = os.path.relpath(path, ROOT)
    result = []
    for start, lines in blocks(path):
        if start < first_line or start > last_line:
            continue
        pending, pending_line = None, 0
        for offset, raw in enumerate(lines):
            n = start + offset
            if pending is None:
                if not raw.strip():
                    continue
                if raw.lstrip().startswith("#"):
                    # A comment line just after a command may name what it gets: a curl's status, another
                    # command's exit status.
                    last = result[-1] if result and result[-1].source == source and n - result[-1].line <= 3 else None
                    if last and last.text.startswith("curl"):
                        m = re.match(r"#\s*(\d{3})\b", raw.strip()) or re.search(r"\(status (\d{3})\b", raw)
                        if m and last.expected is None:
                            last.expected = int(m.group(1))
                    elif last:
                        m = re.search(r"\(exit (\d+)\)", raw)
                        if m:
                            last.expected_exit = int(m.group(1))
                    continue
                pending, pending_line = raw, n
            else:
                pending += "\n" + raw
            done = finished(pending)
            if done:
                code, comment = done
                cmd = Command(code.strip(), comment, pending_line, source)
                m = re.match(r"(\d{3})\b", comment)
                if m and cmd.text.startswith("curl"):
                    cmd.expected = int(m.group(1))
                result.append(cmd)
                pending = None
    return result


def skip_reason(cmd: Command):
    if re.search(r"<[a-z0-9-]+>|…|\[--", cmd.text):
        return "placeholder"
    if re.match(r"gossamer agent ", cmd.text) and not cmd.text.rstrip().endswith("&"):
        return "runs until stopped"
    return None


# --- Running ---------------------------------------------------------------------------------------------------


PRELUDE = r"""
__check_curl() {  # expected-status command...
  local expected=$1; shift
  local body; body=$(mktemp)
  local status
  status=$(command curl -sS --max-time 15 -o "$body" -w '%{http_code}' "$@")
  local rc=$?
  head -c 300 "$body" | tr '\n' ' '; echo
  rm -f "$body"
  if [ $rc -ne 0 ]; then echo "curl exit $rc"; return 1; fi
  if [ "$expected" = "2xx" ]; then
    case "$status" in 2??) return 0 ;; esac
  elif [ "$status" = "$expected" ]; then return 0; fi
  echo "HTTP $status, expected $expected"; return 1
}
if [ -n "${REDIS_PORT:-}" ]; then redis-cli() { command redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }; fi
__stream() {  # runs a streaming command for 2 s: it must print something and still be running
  local out; out=$(mktemp)
  "$@" > "$out" 2>&1 &
  local pid=$!
  sleep 2
  if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; echo "exited with $? before 2 s:"; head -c 300 "$out"; rm -f "$out"; return 1; fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ ! -s "$out" ]; then echo "printed nothing in 2 s"; rm -f "$out"; return 1; fi
  head -c 200 "$out" | tr '\n' ' '; echo; rm -f "$out"; return 0
}
"""


def shell_form(cmd: Command) -> str:
    """The command as the runner executes it."""
    text = cmd.text.replace("wait=30s", "wait=1s")
    words = text.split()
    if words[0] == "curl" and "-N" in words or re.match(r"gossamer (kv|services) watch|redis-cli SUBSCRIBE", text):
        return "__stream " + text
    if words[0] == "curl" and "-o" not in words and "|" not in text:
        expected = str(cmd.expected) if cmd.expected else "2xx"
        return f"__check_curl {expected} " + text[len("curl"):].lstrip()
    return text


class Runner:
    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.failed = []
        self.ran = 0
        self.skipped = 0

    def run(self, cmds, env: dict, cwd: str):
        """Runs the commands in one bash, in order; background ones (`&`) are waited for by their port."""
        bash = subprocess.Popen(["bash"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=cwd, env=env, start_new_session=True)
        bash.stdin.write(PRELUDE)
        marker = "__DOCS_DONE__"
        try:
            for cmd in cmds:
                reason = skip_reason(cmd)
                if reason:
                    self.skipped += 1
                    if self.verbose:
                        print(f"skip  {cmd.source}:{cmd.line}: {cmd.text.splitlines()[0][:100]} ({reason})")
                    continue
                form = shell_form(cmd)
                if form.rstrip().endswith("&"):
                    script = f"{form} echo; echo {marker} 0\n"
                elif cmd.expected_exit is not None:
                    n = cmd.expected_exit
                    script = (f"{form}\n__rc=$?; if [ $__rc -eq {n} ]; then __rc=0; else echo \"exit $__rc, expected {n}\"; "
                              f"__rc=1; fi; echo; echo {marker} $__rc\n")
                else:
                    script = f"{form}\n__rc=$?; echo; echo {marker} $__rc\n"
                try:
                    bash.stdin.write(script)
                    bash.stdin.flush()
                except BrokenPipeError:
                    print(f"FAIL  {cmd.source}:{cmd.line}: the shell running the examples exited")
                    self.failed.append(cmd)
                    break
                output = []
                deadline = time.monotonic() + 60
                rc = None
                while time.monotonic() < deadline:
                    line = bash.stdout.readline()
                    if not line:
                        break
                    if line.startswith(marker):
                        rc = int(line.split()[1])
                        break
                    output.append(line.rstrip("\n"))
                if form.rstrip().endswith("&") and rc == 0:
                    m = re.search(r"--(?:http|listen) 127\.0\.0\.1:(\d+)", form)
                    if m and not wait_listening(int(m.group(1))):
                        rc = 1
                        output.append(f"nothing listens on port {m.group(1)} after 30 s")
                    elif not m:
                        time.sleep(1)
                self.ran += 1
                first = cmd.text.splitlines()[0][:110]
                if rc == 0:
                    print(f"ok    {cmd.source}:{cmd.line}: {first}")
                    if self.verbose:
                        for o in output[-3:]:
                            print(f"        {o[:200]}")
                else:
                    print(f"FAIL  {cmd.source}:{cmd.line}: {first}")
                    for o in output[-8:]:
                        print(f"        {o[:300]}")
                    self.failed.append(cmd)
        finally:
            try:
                bash.stdin.close()
            except OSError:
                pass
            try:
                os.killpg(bash.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                bash.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(bash.pid, signal.SIGKILL)


def readme_tour(binary: str, runner: Runner, workdir: str):
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        text = f.read().splitlines()
    tour = next(i for i, l in enumerate(text, 1) if l.startswith("## ") and "tour" in l.lower())
    end = next(i for i, l in enumerate(text, 1) if i > tour and l.startswith("## ") and "tour" not in l.lower())
    cmds = commands(path, tour, end)
    ports = {}
    for fixed in (7700, 7701, 7702, 7703, 7946, 7947, 7948, 7950, 8080, 9001):
        ports[fixed] = free_port()
    def remap(s: str) -> str:
        return re.sub(r"\b(7700|7701|7702|7703|7946|7947|7948|7950|8080|9001)\b", lambda m: str(ports[int(m.group(1))]), s)
    for c in cmds:
        c.text = remap(c.text)
    # The tour's first agent is the one `make run` starts.
    bindir = os.path.dirname(binary)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", GOSSAMER_ADDR=f"http://127.0.0.1:{ports[7700]}")
    env.pop("GOSSAMER_BIN", None)
    agent = subprocess.Popen([binary, "agent", "--node-name", "local", "--data-dir", os.path.join(workdir, "data"),
                              "--http", f"127.0.0.1:{ports[7700]}"], cwd=workdir, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        if not wait_listening(ports[7700]):
            raise SystemExit("the tour's agent did not start")
        cmds = [c for c in cmds if not c.text.startswith("export PATH=")]
        runner.run(cmds, env, workdir)
    finally:
        agent.terminate()
        agent.wait()


def api_examples(binary: str, runner: Runner, workdir: str):
    path = os.path.join(ROOT, "docs", "api.md")
    runs = r"curl |head |gossamer |[A-Z]+=\$\(curl " + ("|redis-cli " if os.environ.get("REDIS_PORT") else "")
    cmds = [c for c in commands(path) if re.match(runs, c.text)]
    last = [c for c in cmds if "/v1/agent/leave" in c.text]
    cmds = [c for c in cmds if c not in last] + last
    key = subprocess.run([binary, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    p = {name: free_port() for name in ("a_http", "a_gossip", "b_http", "b_gossip", "l_http", "l_gossip")}
    with open(os.path.join(workdir, "n1.toml"), "w") as f:
        f.write("debug_metrics = true\n")
    # The files the CLI examples name.
    with open(os.path.join(workdir, "db.yaml"), "w") as f:
        f.write("port: 5432\n")
    with open(os.path.join(workdir, "ops.json"), "w") as f:
        f.write('{"ops": [{"op": "set", "key": "prod/x", "value": "2"}]}\n')
    redis = []
    if os.environ.get("REDIS_PORT"):
        redis = ["--redis", f"redis://127.0.0.1:{os.environ['REDIS_PORT']}/0"]
    procs = []
    try:
        procs.append(subprocess.Popen(
            [binary, "agent", "--config", os.path.join(workdir, "n1.toml"), "--node-name", "n1", "--data-dir",
             os.path.join(workdir, "n1"), "--http", f"127.0.0.1:{p['a_http']}", "--gossip", f"127.0.0.1:{p['a_gossip']}",
             "--encrypt-key", key, "--gossip-profile", "local"] + redis,
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [binary, "agent", "--node-name", "b", "--data-dir", os.path.join(workdir, "b"), "--http",
             f"127.0.0.1:{p['b_http']}", "--gossip", f"127.0.0.1:{p['b_gossip']}", "--join", f"127.0.0.1:{p['a_gossip']}",
             "--encrypt-key", key, "--gossip-profile", "local"] + redis,
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [binary, "lb", "--listen", f"127.0.0.1:{p['l_http']}", "--gossip", f"127.0.0.1:{p['l_gossip']}", "--join",
             f"127.0.0.1:{p['a_gossip']}", "--encrypt-key", key, "--gossip-profile", "local", "--route",
             "/svc/payments/=payments"],
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        a = f"http://127.0.0.1:{p['a_http']}"
        if not wait_http(f"{a}/v1/consistency", lambda body: '"all_agree":true' in body and '"node":"b"' in body):
            raise SystemExit("the two agents for docs/api.md did not agree within 30 s")
        if not wait_http(f"http://127.0.0.1:{p['l_http']}/_lb/upstreams", lambda body: body.count('"healthy":true') >= 2):
            raise SystemExit("the lb for docs/api.md did not see both agents within 30 s")
        env = dict(os.environ, PATH=f"{os.path.dirname(binary)}:{os.environ['PATH']}", A=a,
                   L=f"http://127.0.0.1:{p['l_http']}", GOSSAMER_ADDR=a)
        runner.run(cmds, env, workdir)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default=os.environ.get("GOSSAMER_BIN"), help="the gossamer binary")
    parser.add_argument("--verbose", action="store_true", help="also print each answer")
    args = parser.parse_args()
    binary = args.bin
    if not binary:
        bindir = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        binary = os.path.join(bindir, "gossamer")
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        raise SystemExit(f"error: no gossamer binary at {binary}: build it first (swift build)")
    runner = Runner(args.verbose)
    started = time.monotonic()
    for name, fn in (("README.md tour", readme_tour), ("docs/api.md", api_examples)):
        print(f"== {name}")
        workdir = tempfile.mkdtemp(prefix="gossamer-docs-")
        try:
            fn(binary, runner, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"docs examples: {runner.ran} run, {len(runner.failed)} failed, {runner.skipped} skipped (placeholders, long-running), "
          f"{time.monotonic() - started:.0f} s")
    sys.exit(1 if runner.failed else 0)


if __name__ == "__main__":
    main()
