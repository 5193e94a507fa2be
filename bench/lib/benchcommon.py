"""Shared by the Python drivers in bench/lib (replbench.py, registrybench.py, watchlat.py, gossip_bench.py,
kvtool.py; standard library only): the benchmark value, percentiles, loopback ports, /proc readings, the report
header and a driver's start, and the reader for watch streams (an HTTP/1.1 response on a non-blocking socket:
head, chunked or close-delimited body, messages split off as they complete).

The drivers run as scripts (`python3 bench/lib/<driver>.py`), which puts this directory first on sys.path; each
also inserts it itself, so the import works from any current directory and under `python3 -P`.
"""

from __future__ import annotations

import base64
import math
import os
import selectors
import signal
import socket
import sys
import threading
import time

# The same pattern bench/lib/kv.lua writes.
PATTERN = "gossamer-bench-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ|"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------------------------
# Values and figures


def bench_value(size: int) -> bytes:
    """The value bench/lib/kv.lua writes (for preloads)."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size].encode()


def make_value(tag: str, size: int) -> bytes:
    """`tag;` then the pattern, `size` bytes in all (longer if the tag needs it): the tag identifies the write."""
    s = tag + ";" + PATTERN * (size // len(PATTERN) + 1)
    return s[:max(size, len(tag) + 1)].encode()


def b64(data) -> str:
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None if empty)."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[k]


# --------------------------------------------------------------------------------------------------------------
# The machine


def port_free(port: int) -> bool:
    """True if 127.0.0.1:port can be bound for both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def sleep_until(target: float) -> None:
    """Sleeps until time.perf_counter() reaches `target` (a slot of a paced schedule); returns at once if past."""
    now = time.perf_counter()
    if target > now:
        time.sleep(target - now)


def paced_calls(count: int, rate: float, senders: int, target, connect, call, errors: list[str], what: str):
    """Makes `count` calls on a fixed schedule: call k is due at start + k / rate (start = 0.1 s from now) and runs
    as call(k, conn) on one of `senders` threads sharing the schedule, so one slow answer does not hold up the next
    ones. Connections are kept alive and pooled per target(k) (at most `senders` each), made by connect(target) and
    closed at the end; call() must close one that broke (it is reused, and must reconnect). The whole is capped at
    the schedule's length + 120 s: a sender past that appends to `errors` and stops. Returns (start, end) as
    time.perf_counter() values and, per call, how late it started (s)."""
    interval = 1.0 / rate
    senders = max(1, min(senders, count))
    hard_deadline = time.monotonic() + count * interval + 120
    pools: dict = {}
    lock = threading.Lock()
    late = [0.0] * count
    start = time.perf_counter() + 0.1

    def sender(tid: int):
        for k in range(tid, count, senders):
            if time.monotonic() > hard_deadline:
                errors.append(f"sender {tid}: hard timeout at {what} {k}")
                return
            due = start + k * interval
            sleep_until(due)
            i = target(k)
            with lock:
                pool = pools.setdefault(i, [])
                conn = pool.pop() if pool else None
            if conn is None:
                conn = connect(i)
            late[k] = time.perf_counter() - due
            call(k, conn)
            with lock:
                pools[i].append(conn)

    threads = [threading.Thread(target=sender, args=(t,), daemon=True) for t in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, hard_deadline - time.monotonic()))
    end = time.perf_counter()
    with lock:
        for pool in pools.values():
            for conn in pool:
                close_quietly(conn)
    return start, end, late


def close_quietly(conn) -> None:
    """conn.close() unless conn is None, ignoring OSError (the connection may have broken already)."""
    if conn is not None:
        try:
            conn.close()
        except OSError:
            pass


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), in CLK_TCK ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# --------------------------------------------------------------------------------------------------------------
# Driver set-up


def sigterm_interrupts() -> None:
    """SIGTERM (the calling script's clean-up) raises KeyboardInterrupt, so the driver reports what it measured
    and its finally blocks stop what it started."""

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)


def utc_date() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def meta_pairs(pairs: list[str]) -> dict:
    """The --meta key=value arguments as a dict, in order (a later key wins)."""
    out = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        out[k] = v
    return out


def driver_start(args) -> dict:
    """What a driver does once its arguments (--out-dir, --meta) are parsed: creates the output dir, shortens the
    interpreter's switch interval (reader threads timestamp receives), makes SIGTERM interrupt, and returns the
    report's meta: date, load average, and the --meta pairs."""
    os.makedirs(args.out_dir, exist_ok=True)
    sys.setswitchinterval(0.0005)
    sigterm_interrupts()
    return {"date": utc_date(), "load_before": loadavg(), **meta_pairs(args.meta)}


# --------------------------------------------------------------------------------------------------------------
# Watch streams


def stream_socket(host: str, port: int, request: bytes) -> socket.socket:
    """A TCP connection (TCP_NODELAY) that has sent `request`, then made non-blocking for read_streams()."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(request)
    sock.setblocking(False)
    return sock


def sse_request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()


def sse_event(msg: bytes) -> tuple[str, bytes]:
    """(event name, data lines joined by newlines) of one Server-Sent Events message."""
    event, data = "message", []
    for line in msg.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip())
    return event, b"\n".join(data)


class WatchStream:
    """One watch: an HTTP/1.1 response read from a non-blocking socket and parsed as it arrives. feed() takes the
    head, then the body (de-chunked, or as it comes when close-delimited), and hands each complete message (the
    body up to the next `sep`) to message() with the time its bytes were received. Problems go to `errors`."""

    sep = b"\n\n"  # Server-Sent Events; b"\n" for newline-delimited JSON
    closed_note = "stream closed by server"  # the error recorded when the server ends the stream

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.payload = b""
        self.head_done = False
        self.chunked = False
        self.closed = False
        self.errors: list[str] = []

    def close(self) -> None:
        close_quietly(self.sock)

    def bad_status(self, status_line: str) -> str:
        """The error for an answer other than 200."""
        return f"watch answered {status_line!r}"

    def message(self, msg: bytes, t: float) -> None:
        raise NotImplementedError

    def feed(self, data: bytes, t: float) -> None:
        self.buf += data
        if not self.head_done:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = self.buf[:i].decode("latin-1").split("\r\n")
            self.buf = self.buf[i + 4:]
            self.head_done = True
            parts = head[0].split()
            if len(parts) < 2 or parts[1] != "200":
                self.errors.append(self.bad_status(head[0]))
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
                    self.chunked = True
        if self.chunked:
            while True:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                try:
                    size = int(self.buf[:i].split(b";")[0], 16)
                except ValueError:
                    self.errors.append("bad chunk header")
                    self.closed = True
                    return
                end = i + 2 + size + 2
                if len(self.buf) < end:
                    break
                self.payload += self.buf[i + 2:i + 2 + size]
                self.buf = self.buf[end:]
                if size == 0:
                    self.closed = True
                    break
        else:
            self.payload += self.buf
            self.buf = b""
        while True:
            i = self.payload.find(self.sep)
            if i < 0:
                return
            msg = self.payload[:i]
            self.payload = self.payload[i + len(self.sep):]
            self.message(msg, t)


def read_streams(streams: list[WatchStream], stop: threading.Event) -> None:
    """Reads every stream until `stop` is set: one thread for all (selectors); each receive is timestamped with
    time.perf_counter() right after its recv(), before any parsing."""
    sel = selectors.DefaultSelector()
    for s in streams:
        sel.register(s.sock, selectors.EVENT_READ, s)
    while not stop.is_set():
        got = []
        for key, _ in sel.select(timeout=0.05):
            s = key.data
            try:
                data = s.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data = b""
                s.errors.append(f"recv: {e}")
            got.append((s, data, time.perf_counter()))
        for s, data, t in got:
            if not data:
                if not s.closed:
                    s.errors.append(s.closed_note)
                s.closed = True
                sel.unregister(s.sock)
                continue
            s.feed(data, t)
    sel.close()
