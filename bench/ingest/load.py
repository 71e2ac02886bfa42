"""The load generators (bounded in count and time, 127.0.0.1 only) and their figures:
a raw HTTP/1.1 keep-alive epoll loop (the default) or httpx on trio."""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.ingest import HOST
from bench.ingest.bodies import Request


@dataclass
class RunResult:
    n: int
    status: list[int]  # HTTP status; 0 = no answer (deadline), -1 = connection error
    t0: list[float]  # perf_counter just before the request's first byte was sent
    t1: list[float]  # perf_counter when the whole response had arrived
    wall0: list[float]  # time.time() just before the first byte was sent
    bodies: list[bytes | None]
    cpu_s: float = 0.0  # the generator process's CPU time during the run
    thread_cpu_s: float = 0.0  # the generator's own thread (its loop) during the run
    client: str = "raw"
    timed_out: bool = False

    @classmethod
    def empty(cls, n: int, client: str) -> RunResult:
        return cls(n, [0] * n, [0.0] * n, [0.0] * n, [0.0] * n, [None] * n, client=client)


class Conn:
    __slots__ = ("buf", "clen", "close", "hdr_end", "idx", "off", "out", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idx = -1
        self.out = memoryview(b"")
        self.off = 0
        self.buf = bytearray()
        self.hdr_end = -1
        self.clen = -1
        self.close = False
        self.writing = False


def receive_answer(conn: Conn, statuses: list[int]) -> bytes | None:
    """Read what ``conn``'s socket holds: the body of its answer once it is complete (the
    status goes in ``statuses[conn.idx]``), None while it is not (or for stray bytes on an
    idle connection). Raises :class:`ConnectionError`: closed, or not an answer these
    servers give (no status, no Content-Length)."""
    try:
        data = conn.sock.recv(262144)
    except BlockingIOError:
        return None
    except OSError:
        data = b""
    if not data:
        raise ConnectionError("closed by the server")
    if conn.idx < 0:
        return None  # stray bytes on an idle connection
    conn.buf += data
    if conn.hdr_end < 0:
        k = conn.buf.find(b"\r\n\r\n")
        if k < 0:
            return None
        head = bytes(conn.buf[:k]).lower()
        conn.hdr_end = k + 4
        try:
            statuses[conn.idx] = int(head[9:12])
        except ValueError as exc:
            raise ConnectionError("no status line") from exc
        m = head.find(b"\r\ncontent-length:")
        if m < 0:
            raise ConnectionError("no Content-Length")  # no chunked bodies from these servers
        end = head.find(b"\r\n", m + 2)
        conn.clen = int(head[m + 17 : end if end >= 0 else len(head)])
        conn.close = b"\r\nconnection: close" in head
    if len(conn.buf) < conn.hdr_end + conn.clen:
        return None
    return bytes(conn.buf[conn.hdr_end : conn.hdr_end + conn.clen])


def run_raw(port: int, requests: list[Request], concurrency: int, time_limit_s: float) -> RunResult:
    """C keep-alive HTTP/1.1 connections driven by one epoll loop (no threads)."""
    n = len(requests)
    result = RunResult.empty(n, "raw")
    if n == 0:
        return result
    sel = selectors.DefaultSelector()
    raws = [r.raw for r in requests]
    state = {"next": 0, "done": 0}
    perf, wall = time.perf_counter, time.time
    cpu0, tcpu0 = time.process_time(), time.thread_time()
    deadline = perf() + time_limit_s

    def open_conn() -> Conn:
        sock = socket.create_connection((HOST, port), timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        return conn

    def drop(conn: Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.sock.close()

    def fail(conn: Conn) -> Conn | None:
        if conn.idx >= 0:
            result.status[conn.idx] = -1
            result.t1[conn.idx] = perf()
            state["done"] += 1
            conn.idx = -1
        drop(conn)
        if state["next"] < n and perf() < deadline:
            try:
                fresh = open_conn()
            except OSError:
                return None
            start(fresh)
            return fresh
        return None

    def flush(conn: Conn) -> None:
        with contextlib.suppress(BlockingIOError):
            conn.off += conn.sock.send(conn.out[conn.off :])
        pending = conn.off < len(conn.out)
        if pending != conn.writing:
            conn.writing = pending
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            sel.modify(conn.sock, events, conn)

    def start(conn: Conn) -> None:
        i = state["next"]
        if i >= n or perf() >= deadline:
            conn.idx = -1
            return
        state["next"] = i + 1
        conn.idx = i
        conn.out = memoryview(raws[i])
        conn.off = 0
        conn.buf = bytearray()
        conn.hdr_end = -1
        conn.clen = -1
        conn.close = False
        result.wall0[i] = wall()
        result.t0[i] = perf()
        try:
            flush(conn)
        except OSError:
            fail(conn)

    def on_readable(conn: Conn) -> None:
        try:
            body = receive_answer(conn, result.status)
        except ConnectionError:
            fail(conn)
            return
        if body is not None:
            i = conn.idx
            result.t1[i] = perf()
            result.bodies[i] = body
            state["done"] += 1
            conn.idx = -1
            if conn.close:
                drop(conn)
                if state["next"] < n and perf() < deadline:
                    start(open_conn())
            else:
                start(conn)

    conns = [open_conn() for _ in range(min(concurrency, n))]
    for conn in conns:
        start(conn)
    while state["done"] < state["next"] or (state["next"] < n and perf() < deadline):
        if perf() >= deadline:
            result.timed_out = True
            break
        for key, mask in sel.select(timeout=0.25):
            conn = key.data
            if mask & selectors.EVENT_WRITE and conn.idx >= 0:
                try:
                    flush(conn)
                except OSError:
                    fail(conn)
                    continue
            if mask & selectors.EVENT_READ:
                on_readable(conn)
        if not sel.get_map():
            break
    for key in list(sel.get_map().values()):
        key.data.sock.close()
    sel.close()
    result.cpu_s = time.process_time() - cpu0
    result.thread_cpu_s = time.thread_time() - tcpu0
    return result


def run_httpx(
    port: int, requests: list[Request], concurrency: int, time_limit_s: float
) -> RunResult:
    """C trio tasks sharing one httpx.AsyncClient with C keep-alive connections."""
    import trio

    n = len(requests)
    result = RunResult.empty(n, "httpx")
    url = f"http://{HOST}:{port}/hooks/sentry"
    cpu0, tcpu0 = time.process_time(), time.thread_time()

    async def main() -> None:
        nxt = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

            async def worker() -> None:
                nonlocal nxt
                while nxt < n:
                    i = nxt
                    nxt += 1
                    req = requests[i]
                    result.wall0[i] = time.time()
                    result.t0[i] = time.perf_counter()
                    try:
                        resp = await client.post(url, content=req.body, headers=req.headers)
                    except httpx.HTTPError:
                        result.status[i] = -1
                        result.t1[i] = time.perf_counter()
                        continue
                    result.t1[i] = time.perf_counter()
                    result.status[i] = resp.status_code
                    result.bodies[i] = resp.content

            with trio.move_on_after(time_limit_s) as scope:
                async with trio.open_nursery() as nursery:
                    for _ in range(min(concurrency, n)):
                        nursery.start_soon(worker)
            result.timed_out = scope.cancelled_caught

    trio.run(main)
    result.cpu_s = time.process_time() - cpu0
    result.thread_cpu_s = time.thread_time() - tcpu0
    return result


def run_load(
    client: str, port: int, requests: list[Request], concurrency: int, time_limit_s: float
) -> RunResult:
    runner = run_httpx if client == "httpx" else run_raw
    return runner(port, requests, concurrency, time_limit_s)


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100.0 * len(ordered)) - 1))
    return ordered[k]


def summarise(result: RunResult) -> dict[str, Any]:
    answered = [i for i in range(result.n) if result.t1[i] > 0.0]
    ok = [i for i in answered if result.status[i] == 202]
    by_status: dict[str, int] = {}
    for i in range(result.n):
        if result.status[i] != 202:
            name = {0: "no_answer", -1: "connection_error"}.get(
                result.status[i], str(result.status[i])
            )
            by_status[name] = by_status.get(name, 0) + 1
    sent = [i for i in range(result.n) if result.t0[i] > 0.0]
    first = min((result.t0[i] for i in sent), default=0.0)
    last = max((result.t1[i] for i in answered), default=first)
    window = max(last - first, 1e-9)
    lat_ok = [(result.t1[i] - result.t0[i]) * 1000.0 for i in ok]
    lat_all = [(result.t1[i] - result.t0[i]) * 1000.0 for i in answered]
    return {
        "requests": result.n,
        "sent": len(sent),
        "answered": len(answered),
        "accepted": len(ok),
        "non_202": by_status,
        "seconds": round(window, 3),
        "accepted_per_s": round(len(ok) / window, 1),
        "answered_per_s": round(len(answered) / window, 1),
        "p50_ms": rounded(pct(lat_ok, 50)),
        "p99_ms": rounded(pct(lat_ok, 99)),
        "max_ms": rounded(max(lat_ok, default=None)),
        "p50_all_ms": rounded(pct(lat_all, 50)),
        "p99_all_ms": rounded(pct(lat_all, 99)),
        "timed_out": result.timed_out,
        "client": result.client,
        "client_cpu_s": round(result.cpu_s, 3),
        "client_cpu_us_per_request": round(result.cpu_s * 1e6 / max(len(answered), 1), 1),
        "client_thread_cpu_us_per_request": round(
            result.thread_cpu_s * 1e6 / max(len(answered), 1), 1
        ),
        # the generator's process minus its own thread: the RSS sampler and, with
        # --sink webhook, the webhook receiver's and fake DNS's threads
        "client_other_threads_cpu_cores": round(
            max(result.cpu_s - result.thread_cpu_s, 0.0) / window, 2
        ),
    }


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)
