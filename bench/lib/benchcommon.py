"""Shared by the Python drivers in bench/lib (replbench.py, watchlat.py, gossip_bench.py, kvtool.py; standard
library only): the benchmark value, percentiles, loopback ports, /proc readings, the report header, and the
reader for watch streams (an HTTP/1.1 response on a non-blocking socket: head, chunked or close-delimited body,
messages split off as they complete).

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
