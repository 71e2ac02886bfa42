"""Single-webhook ingest benchmark: EyeTok beside a bare hypercorn-trio ceiling, one run.

    uv run python bench/ingest.py                 # N=5000, C=32, ceiling + EyeTok burst
    uv run python bench/ingest.py -n 500 --trickle
    uv run python bench/ingest.py --json          # one JSON object on stdout
    uv run python bench/ingest.py --sink webhook  # burst delivered to a webhook sink

Phases (each bounded in count and time; only 127.0.0.1; every subprocess is stopped in
a ``finally``):

1. ceiling: ``bench/ceiling_app.py`` (bare ASGI on hypercorn's trio worker: body, size,
   HMAC, msgspec decode, 202; no journal) gets the same N signed requests at
   concurrency C from the same load generator: accepted/s, p50/p99, peak RSS.
2. burst: the fake Slack (``tests.peers.slack``) and EyeTok (fresh data dir, Slack rate
   per channel lifted to ``--slack-rate`` through ``EYETOK_CONFIG``) get the same N
   requests: accepted/s, p50/p99, non-202 answers by status, peak RSS of the daemon
   (psutil, every 50 ms, children included), then receipt -> Slack post latency for
   every accepted signal (matched by incident id; each body has its own issue id, so
   each opens an incident and makes one top-level post).
   ``--sink webhook``: the operator tenant's policy routes all four SEV channels only to
   a webhook sink whose receiver (``tests.peers.webhook_receiver``, threads in this
   process) is verified through the real DNS TXT handshake against ``tests.peers.dns``
   (also threads here); then receipt -> webhook arrival per incident instead (design
   section 9's end-to-end target). Slack stays configured for the operator notices.
3. trickle (``--trickle``): a fresh EyeTok on the default config (Slack's real 1 msg/s
   per channel) gets ``--trickle-count`` alerts, one at a time, spread over the SEV
   channels at ``--trickle-rate`` per channel: receipt -> Slack post p50/p99.

The load generator is a single-threaded epoll loop over C raw HTTP/1.1 keep-alive
connections with pre-signed, pre-serialised requests (``--client raw``, the default), so
its cost per request is a few tens of microseconds and it is not the bottleneck on a
2-core machine; ``--client httpx`` runs httpx.AsyncClient on trio instead, for
comparison. The report states the generator's own CPU per request.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import heapq
import itertools
import json
import math
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import durability  # noqa: E402
from eyetok.sources.sentry import sign  # noqa: E402
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, verify_slack_sync  # noqa: E402

HOST = "127.0.0.1"
FIXTURE_DIR = ROOT / "tests" / "fixtures" / "sentry"
# ~4 KB event_alert bodies that open an incident and post to Slack, one per SEV channel
# family: paper_gate -> SEV1, h12/synthetic -> SEV2 (SEV2.5 in business hours),
# warning -> SEV3. (The 7-10 KB fixtures and the audit-only info/debug ones are left out.)
BURST_FIXTURES = (
    "event_alert_h12.json",
    "event_alert_paper_gate.json",
    "event_alert_synthetic.json",
    "event_alert_warning.json",
)
TRICKLE_FIXTURES = (
    "event_alert_paper_gate.json",
    "event_alert_h12.json",
    "event_alert_warning.json",
)
SLACK_TOKEN = "xoxb-test"
TARGET_RATIO = 0.9
TARGET_E2E_P99_MS = 1000.0
TARGET_RSS_MB = 120.0
SEV_CHANNELS = ("SEV1", "SEV2", "SEV2.5", "SEV3")
WEBHOOK_SINK = "bench-hook"  # --sink webhook: the operator's webhook sink
WEBHOOK_TARGET = "bench"
WEBHOOK_SECRET_ENV = "BENCH_WHSEC"
WEBHOOK_VERIFY_LIMIT_S = 30.0
_INCIDENT_IN_POST = re.compile(r"\*incident\* `(inc_[0-9a-f]+)`")
_ANY_INCIDENT = re.compile(r"inc_[0-9a-f]+")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- requests ----------------------------------------------------------------------------


@dataclass
class Request:
    key: str  # "b000123": phase letter + index; also the title marker's suffix
    issue_id: str
    body: bytes
    raw: bytes  # the whole HTTP/1.1 request, pre-serialised
    headers: dict[str, str]


class RequestFactory:
    """Variants of real fixtures: a distinct issue id, event id and title marker each."""

    def __init__(self, secret: str, host: str, tag: str) -> None:
        self.secret = secret
        self.host = host
        self.tag = tag
        self._templates: dict[str, dict[str, Any]] = {
            name: json.loads((FIXTURE_DIR / name).read_text(encoding="utf-8"))
            for name in {*BURST_FIXTURES, *TRICKLE_FIXTURES}
        }
        self._issue_seq = 8_000_000_000

    def marker(self, key: str) -> str:
        return f"[bench-{self.tag}-{key}]"

    def make(self, key: str, fixture: str, port: int) -> Request:
        self._issue_seq += 1
        issue_id = str(self._issue_seq)
        event_id = secrets.token_hex(16)
        payload = copy.deepcopy(self._templates[fixture])
        event = payload["data"]["event"]
        old_event, old_issue = event.get("event_id", ""), str(event.get("issue_id", ""))
        event["event_id"] = event_id
        event["issue_id"] = issue_id
        event["title"] = f"{event.get('title', '')} {self.marker(key)}"
        for url_key in ("url", "web_url", "issue_url"):
            if isinstance(event.get(url_key), str):
                event[url_key] = (
                    event[url_key].replace(old_event, event_id).replace(old_issue, issue_id)
                )
        body = json.dumps(payload, indent=2).encode("utf-8")  # the fixtures' own layout
        headers = {
            "Content-Type": "application/json",
            "Sentry-Hook-Resource": "event_alert",
            "Sentry-Hook-Signature": sign(body, self.secret),
        }
        head = (
            f"POST /hooks/sentry HTTP/1.1\r\nHost: {self.host}:{port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + f"Content-Length: {len(body)}\r\n\r\n"
        )
        return Request(key, issue_id, body, head.encode("latin-1") + body, headers)

    def batch(self, phase: str, count: int, fixtures: tuple[str, ...], port: int) -> list[Request]:
        return [
            self.make(f"{phase}{i:06d}", fixtures[i % len(fixtures)], port) for i in range(count)
        ]


def retarget(requests: list[Request], old_port: int, new_port: int) -> list[Request]:
    """The same requests (same bodies, same signatures) for another port."""
    old, new = f"{HOST}:{old_port}".encode(), f"{HOST}:{new_port}".encode()
    return [
        Request(r.key, r.issue_id, r.body, r.raw.replace(old, new, 1), r.headers) for r in requests
    ]


# --- load generators ---------------------------------------------------------------------


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


class _Conn:
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

    def open_conn() -> _Conn:
        sock = socket.create_connection((HOST, port), timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        return conn

    def drop(conn: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.sock.close()

    def fail(conn: _Conn) -> _Conn | None:
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

    def flush(conn: _Conn) -> None:
        with contextlib.suppress(BlockingIOError):
            conn.off += conn.sock.send(conn.out[conn.off :])
        pending = conn.off < len(conn.out)
        if pending != conn.writing:
            conn.writing = pending
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            sel.modify(conn.sock, events, conn)

    def start(conn: _Conn) -> None:
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

    def on_readable(conn: _Conn) -> None:
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            fail(conn)
            return
        if conn.idx < 0:
            return  # stray bytes on an idle connection
        conn.buf += data
        if conn.hdr_end < 0:
            k = conn.buf.find(b"\r\n\r\n")
            if k < 0:
                return
            head = bytes(conn.buf[:k]).lower()
            conn.hdr_end = k + 4
            try:
                result.status[conn.idx] = int(head[9:12])
            except ValueError:
                fail(conn)
                return
            m = head.find(b"\r\ncontent-length:")
            if m < 0:
                fail(conn)  # no chunked bodies expected from these servers
                return
            end = head.find(b"\r\n", m + 2)
            conn.clen = int(head[m + 17 : end if end >= 0 else len(head)])
            conn.close = b"\r\nconnection: close" in head
        if len(conn.buf) >= conn.hdr_end + conn.clen:
            i = conn.idx
            result.t1[i] = perf()
            result.bodies[i] = bytes(conn.buf[conn.hdr_end : conn.hdr_end + conn.clen])
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


@dataclass
class RetryRun:
    """``run_raw_retrying``'s outcome: ``result`` holds each request's final answer
    (``t0``/``wall0`` of its first attempt, ``t1`` of its final answer)."""

    result: RunResult
    attempts: list[int]  # sends per request (1 = answered on the first try)
    answers: dict[str, int]  # every answer by HTTP status, retried 503s included
    connection_errors: int  # attempts lost with their connection (reset, closed, timed out)
    connect_refused: int  # connection attempts refused (nothing listening on the port)
    retries: int  # re-sends
    seconds: float
    stopped: bool = False  # ``should_stop`` ended the run early


def run_raw_retrying(
    port: int,
    requests: list[Request],
    concurrency: int,
    time_limit_s: float,
    *,
    on_accepted: Any = None,  # Callable[[int, int, float], None]: (index, 202s, attempt t0)
    should_stop: Any = None,  # Callable[[], bool]: checked once per loop turn
    retry_status: frozenset[int] = frozenset({503}),
    retry_delay_s: float = 0.05,
    max_backoff_s: float = 0.25,
    attempt_timeout_s: float = 30.0,
) -> RetryRun:
    """``run_raw`` (C raw HTTP/1.1 keep-alive connections, one epoll loop, pre-serialised
    requests) that keeps every request until it is answered 202 or finally refused:
    a request whose connection fails (reset, closed, refused, no answer within
    ``attempt_timeout_s``) or that is answered with a status in ``retry_status`` is sent
    again after ``retry_delay_s``; a connection slot that cannot connect retries with
    backoff (up to ``max_backoff_s``). Bounded by ``time_limit_s`` in all."""
    n = len(requests)
    result = RunResult.empty(n, "raw+retry")
    attempts = [0] * n
    attempt_t0 = [0.0] * n
    answers: dict[str, int] = {}
    counts = {"done": 0, "accepted": 0, "conn_errors": 0, "refused": 0, "retries": 0}
    raws = [r.raw for r in requests]
    fresh: collections.deque[int] = collections.deque(range(n))
    later: list[tuple[float, int]] = []  # (due, request index): retries, a heap
    reconnect: list[tuple[float, int]] = []  # (due, failures in a row): empty slots, a heap
    idle: list[_Conn] = []
    live: set[_Conn] = set()
    sel = selectors.DefaultSelector()
    perf, wall = time.perf_counter, time.time
    cpu0 = time.process_time()
    t_start = perf()
    deadline = t_start + time_limit_s

    def retry(i: int, delay: float) -> None:
        counts["retries"] += 1
        heapq.heappush(later, (perf() + delay, i))

    def drop(conn: _Conn) -> None:
        """Close ``conn``; its slot reconnects at once."""
        live.discard(conn)
        if conn in idle:
            idle.remove(conn)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.sock.close()
        heapq.heappush(reconnect, (perf(), 0))

    def fail(conn: _Conn) -> None:
        if conn.idx >= 0:
            i, conn.idx = conn.idx, -1
            counts["conn_errors"] += 1
            result.status[i] = -1
            retry(i, retry_delay_s)
        drop(conn)

    def try_open(failures: int) -> None:
        try:
            sock = socket.create_connection((HOST, port), timeout=5.0)
        except OSError:
            counts["refused"] += 1
            backoff = min(retry_delay_s * 2**failures, max_backoff_s)
            heapq.heappush(reconnect, (perf() + backoff, failures + 1))
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        live.add(conn)
        start(conn)

    def work_due(now: float) -> bool:
        return bool(fresh) or (bool(later) and later[0][0] <= now)

    def flush(conn: _Conn) -> None:
        with contextlib.suppress(BlockingIOError):
            conn.off += conn.sock.send(conn.out[conn.off :])
        pending = conn.off < len(conn.out)
        if pending != conn.writing:
            conn.writing = pending
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            sel.modify(conn.sock, events, conn)

    def start(conn: _Conn) -> None:
        now = perf()
        if fresh:
            i = fresh.popleft()
        elif later and later[0][0] <= now:
            i = heapq.heappop(later)[1]
        else:
            conn.idx = -1
            if conn.writing:
                conn.writing = False
                sel.modify(conn.sock, selectors.EVENT_READ, conn)
            if conn not in idle:
                idle.append(conn)
            return
        conn.idx = i
        conn.out = memoryview(raws[i])
        conn.off = 0
        conn.buf = bytearray()
        conn.hdr_end = -1
        conn.clen = -1
        conn.close = False
        attempts[i] += 1
        attempt_t0[i] = now
        if attempts[i] == 1:
            result.wall0[i] = wall()
            result.t0[i] = now
        try:
            flush(conn)
        except OSError:
            fail(conn)

    def on_readable(conn: _Conn) -> None:
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            fail(conn)
            return
        if conn.idx < 0:
            return  # stray bytes on an idle connection
        conn.buf += data
        if conn.hdr_end < 0:
            k = conn.buf.find(b"\r\n\r\n")
            if k < 0:
                return
            head = bytes(conn.buf[:k]).lower()
            conn.hdr_end = k + 4
            try:
                result.status[conn.idx] = int(head[9:12])
            except ValueError:
                fail(conn)
                return
            m = head.find(b"\r\ncontent-length:")
            if m < 0:
                fail(conn)
                return
            end = head.find(b"\r\n", m + 2)
            conn.clen = int(head[m + 17 : end if end >= 0 else len(head)])
            conn.close = b"\r\nconnection: close" in head
        if len(conn.buf) < conn.hdr_end + conn.clen:
            return
        i, conn.idx = conn.idx, -1
        status = result.status[i]
        answers[str(status)] = answers.get(str(status), 0) + 1
        result.bodies[i] = bytes(conn.buf[conn.hdr_end : conn.hdr_end + conn.clen])
        if status in retry_status:
            retry(i, 2 * retry_delay_s)
        else:  # 202, or refused for good
            result.t1[i] = perf()
            counts["done"] += 1
            if status == 202:
                counts["accepted"] += 1
                if on_accepted is not None:
                    on_accepted(i, counts["accepted"], attempt_t0[i])
        if conn.close:
            drop(conn)
        else:
            start(conn)

    for _ in range(min(concurrency, n)):
        heapq.heappush(reconnect, (t_start, 0))
    timed_out = stopped = False
    last_sweep = t_start
    while counts["done"] < n:
        now = perf()
        if now >= deadline:
            timed_out = True
            break
        if should_stop is not None and should_stop():
            stopped = True
            break
        while reconnect and reconnect[0][0] <= now:
            try_open(heapq.heappop(reconnect)[1])
        while idle and work_due(perf()):
            start(idle.pop())
        now = perf()
        if now - last_sweep >= 0.5:
            last_sweep = now
            for conn in list(live):
                if conn.idx >= 0 and now - attempt_t0[conn.idx] > attempt_timeout_s:
                    fail(conn)
        wake = 0.25
        if reconnect:
            wake = min(wake, reconnect[0][0] - now)
        if idle and later:
            wake = min(wake, later[0][0] - now)
        for key, mask in sel.select(timeout=max(wake, 0.0)):
            conn = key.data
            if conn not in live:
                continue  # closed earlier in this turn
            if mask & selectors.EVENT_WRITE and conn.idx >= 0:
                try:
                    flush(conn)
                except OSError:
                    fail(conn)
                    continue
            if mask & selectors.EVENT_READ:
                on_readable(conn)
    for conn in list(live):
        conn.sock.close()
    sel.close()
    result.timed_out = timed_out
    result.cpu_s = time.process_time() - cpu0
    return RetryRun(
        result=result,
        attempts=attempts,
        answers=answers,
        connection_errors=counts["conn_errors"],
        connect_refused=counts["refused"],
        retries=counts["retries"],
        seconds=perf() - t_start,
        stopped=stopped,
    )


# --- figures -----------------------------------------------------------------------------


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
        "p50_ms": _r(pct(lat_ok, 50)),
        "p99_ms": _r(pct(lat_ok, 99)),
        "max_ms": _r(max(lat_ok, default=None)),
        "p50_all_ms": _r(pct(lat_all, 50)),
        "p99_all_ms": _r(pct(lat_all, 99)),
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


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- processes -----------------------------------------------------------------------------


class RssSampler:
    """Peak RSS of a process and all its descendants, sampled every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.last = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        children: list[psutil.Process] = []
        while not self._stop.is_set():
            total = 0
            try:
                total = proc.memory_info().rss
                # Listing descendants scans /proc (~2 ms here): refresh it once a second.
                if self.samples % max(1, round(1.0 / self.interval_s)) == 0:
                    children = proc.children(recursive=True)
                for child in children:
                    with contextlib.suppress(psutil.Error):
                        total += child.memory_info().rss
            except psutil.Error:
                return
            self.last = total
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=2.0)
        return self.peak


def cpu_snapshot(pid: int) -> dict[str, float]:
    """CPU seconds of a process so far: all threads (exited ones included) and the main one."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        main = next((t.user_time + t.system_time for t in proc.threads() if t.id == pid), 0.0)
        return {"total": times.user + times.system, "main": main}
    except psutil.Error:
        return {"total": 0.0, "main": 0.0}


def cpu_figures(
    before: dict[str, float], after: dict[str, float], answered: int, seconds: float, prefix: str
) -> dict[str, float]:
    total = after["total"] - before["total"]
    main = after["main"] - before["main"]
    per = 1e6 / max(answered, 1)
    return {
        f"{prefix}cpu_s": round(total, 3),
        f"{prefix}cpu_cores": round(total / max(seconds, 1e-9), 2),
        f"{prefix}cpu_us_per_request": round(total * per, 1),
        f"{prefix}main_thread_cpu_us_per_request": round(main * per, 1),
        f"{prefix}other_threads_cpu_us_per_request": round((total - main) * per, 1),
    }


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    files: list[Any] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; the exit code (None if killed)."""
        code = self.popen.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                code = self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5.0)
                code = None
        for f in self.files:
            with contextlib.suppress(OSError):
                f.close()
        return code


def _read_json_line(proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> dict[str, Any]:
    """The first stdout line of ``proc`` as JSON, within ``timeout_s``."""
    assert proc.stdout is not None
    box: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline()))
    reader.daemon = True
    reader.start()
    reader.join(timeout_s)
    line = box.get("line", b"")
    if not line:
        raise RuntimeError(f"{what} printed nothing within {timeout_s}s (exit {proc.poll()})")
    return json.loads(line)


def _clean_env() -> dict[str, str]:
    drop = ("EYETOK_", "SENTRY_CLIENT_SECRET", "SLACK_", "DATABASE_URL", "PORT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start_ceiling(secret: str, workdir: Path, *, token: str | None = None) -> tuple[Proc, int]:
    """The bare ASGI ceiling on a free port; ``token``: the bearer token its batch hooks
    (``bench/batched.py``) require."""
    workdir.mkdir(parents=True, exist_ok=True)
    err = (workdir / "ceiling.stderr").open("ab")
    argv = [sys.executable, str(ROOT / "bench" / "ceiling_app.py"), "--host", HOST]
    argv += ["--port", "0", "--secret", secret]
    if token is not None:
        argv += ["--token", token]
    popen = subprocess.Popen(argv, cwd=ROOT, env=_clean_env(), stdout=subprocess.PIPE, stderr=err)
    proc = Proc("ceiling", popen, [err])
    try:
        port = int(_read_json_line(popen, 30.0, "ceiling_app")["port"])
    except Exception:
        proc.stop()
        raise
    return proc, port


def start_fake_slack(workdir: Path) -> tuple[Proc, str]:
    err = (workdir / "fake_slack.stderr").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.slack", "--port", "0", "--token", SLACK_TOKEN],
        cwd=ROOT,
        env=_clean_env(),
        stdout=subprocess.PIPE,
        stderr=err,
    )
    proc = Proc("fake_slack", popen, [err])
    try:
        base_url = str(_read_json_line(popen, 30.0, "fake Slack")["base_url"])
    except Exception:
        proc.stop()
        raise
    return proc, base_url


@dataclass
class Daemon:
    proc: Proc
    port: int
    data_dir: Path
    log_path: Path
    ready_s: float


_SWITCH_INTERVAL_BOOT = (
    "import runpy, sys; sys.setswitchinterval(float(sys.argv.pop(1))); "
    "runpy.run_module('eyetok.cli', run_name='__main__', alter_sys=True)"
)


def start_eyetok(
    *,
    secret: str,
    slack_url: str,
    data_dir: Path,
    config_yaml: str | None,
    profile_path: Path | None = None,
    prefix: list[str] | None = None,
    switch_interval: float | None = None,
    extra_env: dict[str, str] | None = None,
    port: int = 0,
    name: str = "eyetok",
) -> Daemon:
    """``port`` 0 lets the daemon pick one; ``name`` is the stem of its log files."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = _clean_env()
    env.update(
        PORT=str(port),
        EYETOK_DATA_DIR=str(data_dir / "data"),
        SENTRY_CLIENT_SECRET=secret,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_API_URL=slack_url,
        EYETOK_ROOT_TOKEN=ROOT_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    if config_yaml is not None:
        config_path = data_dir / "eyetok.yaml"
        config_path.write_text(config_yaml, encoding="utf-8")
        env["EYETOK_CONFIG"] = str(config_path)
    argv = [sys.executable]
    if profile_path is not None:
        argv += ["-m", "cProfile", "-o", str(profile_path)]
    if switch_interval:
        # A what-if, not a change to the daemon: the same entry point under another
        # GIL switch interval (sys.setswitchinterval; CPython's default is 5 ms).
        argv += ["-c", _SWITCH_INTERVAL_BOOT, str(switch_interval)]
    else:
        argv += ["-m", "eyetok.cli"]
    argv += ["run", "--host", HOST]
    argv = (prefix or []) + argv
    log_path = data_dir / f"{name}.log"
    out = log_path.open("wb")
    err_path = data_dir / f"{name}.stderr"
    err = err_path.open("wb")
    t0 = time.perf_counter()
    popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
    proc = Proc("eyetok", popen, [out, err])
    try:
        bound = _wait_ready(popen, log_path, err_path, 60.0)
        # The Slack sink delivers only once its ownership is verified: run the real
        # handshake (a nonce DM'd through the Events API). A restart keeps it.
        verify_slack_sync(f"http://{HOST}:{bound}", "slack")
    except Exception:
        proc.stop()
        raise
    return Daemon(proc, bound, data_dir, log_path, time.perf_counter() - t0)


def _wait_ready(
    popen: subprocess.Popen[bytes], log_path: Path, err_path: Path, limit: float
) -> int:
    deadline = time.perf_counter() + limit
    port: int | None = None
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            tail = err_path.read_text(errors="replace")[-2000:] + log_path.read_text()[-2000:]
            raise RuntimeError(f"EyeTok exited with {popen.returncode} before ready:\n{tail}")
        if port is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if '"eyetok_ready"' in line:
                    port = int(json.loads(line)["port"])
                    break
        if port is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2.0).status_code == 200:
                    return port
        time.sleep(0.05)
    raise RuntimeError(f"EyeTok was not ready within {limit}s")


def start_py_spy(pid: int, out: Path) -> Proc:
    """Attach py-spy to ``pid`` (active samples of every thread, collapsed stacks)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    err = out.with_suffix(out.suffix + ".stderr").open("wb")
    argv = [exe, "record", "--pid", str(pid), "--threads", "--nonblocking"]
    argv += ["-r", "200", "-f", "raw", "-o", str(out)]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(1.0)  # let it attach before the load starts
    return Proc("py-spy", popen, [err])


def stop_py_spy(spy: Proc) -> None:
    if spy.popen.poll() is None:
        spy.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.popen.wait(timeout=30.0)
    spy.stop(5.0)


# --- Slack side ------------------------------------------------------------------------------


class SlackWatch:
    """Reads the fake's posts incrementally (``?since=``); matches them to our requests."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.split("/api/")[0] + "/_fake/posts"
        self.seen = 0
        self.client = httpx.Client(timeout=30.0)

    def fetch_new(self) -> list[dict[str, Any]]:
        posts: list[dict[str, Any]] = self.client.get(self.url, params={"since": self.seen}).json()
        self.seen += len(posts)
        return posts

    def skip_existing(self) -> None:
        self.fetch_new()

    def wait_for(
        self,
        expected: dict[str, tuple[str, float]],  # incident_id -> (request key, wall at send)
        markers: dict[str, str],  # marker text -> incident_id
        limit_s: float,
    ) -> dict[str, Any]:
        """Wait (bounded) until every expected incident has its top-level post."""
        arrived: dict[str, float] = {}
        channels: dict[str, int] = {}
        matched_by_marker = 0
        other_posts = 0
        deadline = time.perf_counter() + limit_s
        t_start = time.perf_counter()
        while True:
            for post in self.fetch_new():
                text = post.get("text") or ""
                blob = text + json.dumps(post.get("blocks") or [])
                m = _INCIDENT_IN_POST.search(blob)
                incident_id = m.group(1) if m and m.group(1) in expected else None
                if incident_id is None:
                    incident_id = next((inc for mk, inc in markers.items() if mk in text), None)
                    matched_by_marker += incident_id is not None
                if incident_id is None or post.get("thread_ts"):
                    other_posts += 1
                    continue
                if incident_id not in arrived:
                    arrived[incident_id] = float(post["received_wall"])
                    channel = str(post.get("channel"))
                    channels[channel] = channels.get(channel, 0) + 1
            if len(arrived) >= len(expected) or time.perf_counter() >= deadline:
                break
            time.sleep(0.25)
        lat = [(arrived[i] - expected[i][1]) * 1000.0 for i in arrived]
        first = min(arrived.values(), default=0.0)
        last = max(arrived.values(), default=0.0)
        return {
            "expected": len(expected),
            "arrived": len(arrived),
            "missing": len(expected) - len(arrived),
            "waited_s": round(time.perf_counter() - t_start, 2),
            "limit_s": limit_s,
            "p50_ms": _r(pct(lat, 50), 1),
            "p90_ms": _r(pct(lat, 90), 1),
            "p99_ms": _r(pct(lat, 99), 1),
            "max_ms": _r(max(lat, default=None), 1),
            "min_ms": _r(min(lat, default=None), 1),
            "posts_per_s": round((len(arrived) - 1) / (last - first), 1)
            if len(arrived) > 1 and last > first
            else None,
            "by_channel": channels,
            "matched_by_title_marker": matched_by_marker,
            "other_posts": other_posts,
        }

    def close(self) -> None:
        self.client.close()


def expected_posts(
    requests: list[Request], result: RunResult, factory: RequestFactory
) -> tuple[dict[str, tuple[str, float]], dict[str, str], dict[str, int]]:
    expected: dict[str, tuple[str, float]] = {}
    markers: dict[str, str] = {}
    channels: dict[str, int] = {}
    for i, req in enumerate(requests):
        if result.status[i] != 202 or not result.bodies[i]:
            continue
        answer = json.loads(result.bodies[i] or b"{}")
        incident_id = answer.get("incident_id")
        channel = str(answer.get("sev_channel"))
        channels[channel] = channels.get(channel, 0) + 1
        if incident_id and answer.get("sev_channel") and answer.get("action") == "open":
            expected[incident_id] = (req.key, result.wall0[i])
            markers[factory.marker(req.key)] = incident_id
    return expected, markers, channels


# --- webhook side (--sink webhook) ---------------------------------------------------------------


@dataclass
class WebhookPeers:
    """The webhook receiver and the fake DNS, both threads in this process (127.0.0.1)."""

    receiver: Any  # tests.peers.webhook_receiver.WebhookReceiver
    dns: Any  # tests.peers.dns.FakeDns
    secret: str  # whsec_..., the sink's secret (the daemon gets it through the environment)

    @property
    def url(self) -> str:
        """The receiver under a DNS name: an IP-literal URL has no domain to verify."""
        return str(self.receiver.url).replace(HOST, "localhost", 1)

    @property
    def host(self) -> str:
        return "localhost"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.receiver.stop()
        with contextlib.suppress(Exception):
            self.dns.stop()


def start_webhook_peers() -> WebhookPeers:
    from eyetok.standard_webhooks import new_secret
    from tests.peers.dns import FakeDns
    from tests.peers.webhook_receiver import WebhookReceiver

    secret = new_secret()
    receiver = WebhookReceiver({"bench": secret}, host=HOST)
    dns = FakeDns(host=HOST)
    receiver.start()
    try:
        dns.start()
    except Exception:
        receiver.stop()
        raise
    return WebhookPeers(receiver, dns, secret)


def burst_config(args: argparse.Namespace, hook: WebhookPeers | None) -> str | None:
    """The burst daemon's EYETOK_CONFIG (None: the defaults)."""
    slack = (
        f"{{type: slack, rate_per_channel: {args.slack_rate:g}}}"
        if args.slack_rate > 0
        else "{type: slack}"
    )
    if hook is None:
        return f"sinks:\n  slack: {slack}\n" if args.slack_rate > 0 else None
    # Every SEV channel of the operator goes ONLY to the webhook sink; the Slack sink stays
    # (verified) for the operator notices (delivery.operator_notices, #eyetok-operator).
    route = f"[{{sink: {WEBHOOK_SINK}, target: {WEBHOOK_TARGET}}}]"
    routes = "".join(f'        "{ch}": {route}\n' for ch in SEV_CHANNELS)
    return (
        "sinks:\n"
        f"  slack: {slack}\n"
        f'  {WEBHOOK_SINK}: {{type: webhook, url: "{hook.url}", '
        f"secret_env: {WEBHOOK_SECRET_ENV}}}\n"
        "tenants:\n"
        "  operator:\n"
        "    tier: operator\n"
        "    policy:\n"
        "      routes:\n"
        f"{routes}"
        "verification: {txt_every_s: 0.1, txt_for_s: 30}\n"
    )


def verify_webhook_sync(base_url: str, hook: WebhookPeers, limit_s: float) -> dict[str, Any]:
    """The webhook's real ownership handshake: start it, publish the nonce in TXT
    ``_eyetok-verify.<host>`` on the fake DNS, poll ``GET /api/v1/sinks`` (bounded) until
    the sink is deliverable."""
    auth = {"authorization": f"Bearer {ROOT_TOKEN}"}
    t0 = time.perf_counter()
    with httpx.Client(base_url=base_url, timeout=10.0) as client:
        started = client.post(
            f"/api/v1/sinks/{WEBHOOK_SINK}/verification",
            json={"requested_by": "bench"},
            headers=auth,
        )
        if started.status_code != 200:
            raise RuntimeError(f"webhook verification: {started.status_code} {started.text}")
        record = f"_eyetok-verify.{hook.host}"
        hook.dns.set_txt(record, str(started.json()["nonce"]))
        deadline = t0 + limit_s
        while time.perf_counter() < deadline:
            listed = client.get("/api/v1/sinks", headers=auth)
            sinks = listed.json().get("sinks", []) if listed.status_code == 200 else []
            live = {s["sink_id"] for s in sinks if s.get("deliverable")}
            if WEBHOOK_SINK in live:
                return {
                    "handshake_s": round(time.perf_counter() - t0, 2),
                    "txt_record": record,
                    "deliverable_sinks": sorted(live),
                }
            time.sleep(0.05)
    raise RuntimeError(f"webhook sink {WEBHOOK_SINK} not deliverable within {limit_s}s")


def wait_for_webhooks(
    receiver: Any,
    expected: dict[str, tuple[str, float]],  # incident_id -> (request key, wall at send)
    limit_s: float,
    *,
    start_index: int,
    mono_to_wall: float,  # time.time() - time.monotonic(), sampled before the burst
) -> dict[str, Any]:
    """Wait (bounded) until every expected incident's ``incident.opened`` webhook arrived.
    Arrival is the receiver's ``at`` (``time.monotonic()`` once the request line and headers
    were read), put on the wall clock of the sends; matched by ``data.incident_id``."""
    arrived: dict[str, float] = {}
    channels: dict[str, int] = {}
    types: dict[str, int] = {}
    statuses: dict[str, int] = {}
    seen = start_index
    unverified = duplicates = other = undecodable = 0
    problems: list[str] = []
    t_start = time.perf_counter()
    deadline = t_start + limit_s
    while True:
        batch = receiver.deliveries[seen:]
        seen += len(batch)
        for hook in batch:
            statuses[str(hook.status)] = statuses.get(str(hook.status), 0) + 1
            if not hook.verified:
                unverified += 1
                if len(problems) < 3:
                    problems.append(str(hook.problem))
                continue
            try:
                body = hook.json()
                data = body.get("data") or {}
                incident_id, kind = data.get("incident_id"), str(body.get("type"))
            except (ValueError, AttributeError):
                undecodable += 1
                continue
            types[kind] = types.get(kind, 0) + 1
            if incident_id not in expected or kind != "incident.opened":
                other += 1
                continue
            if incident_id in arrived:
                duplicates += 1
                continue
            arrived[incident_id] = hook.at + mono_to_wall
            channel = str(data.get("sev_channel"))
            channels[channel] = channels.get(channel, 0) + 1
        if len(arrived) >= len(expected) or time.perf_counter() >= deadline:
            break
        time.sleep(0.1)
    lat = [(arrived[i] - expected[i][1]) * 1000.0 for i in arrived]
    first = min(arrived.values(), default=0.0)
    last = max(arrived.values(), default=0.0)
    return {
        "sink": "webhook",
        "expected": len(expected),
        "arrived": len(arrived),
        "missing": len(expected) - len(arrived),
        "waited_s": round(time.perf_counter() - t_start, 2),
        "limit_s": limit_s,
        "p50_ms": _r(pct(lat, 50), 1),
        "p90_ms": _r(pct(lat, 90), 1),
        "p99_ms": _r(pct(lat, 99), 1),
        "max_ms": _r(max(lat, default=None), 1),
        "min_ms": _r(min(lat, default=None), 1),
        "posts_per_s": round((len(arrived) - 1) / (last - first), 1)
        if len(arrived) > 1 and last > first
        else None,
        "last_arrival_after_first_send_s": round(
            last - min(sent for _, sent in expected.values()), 2
        )
        if arrived
        else None,
        "by_channel": channels,
        "by_type": types,
        "receiver_answers": statuses,
        "deliveries": seen - start_index,
        "duplicates": duplicates,
        "unverified": unverified,
        "unverified_problems": problems,
        "undecodable": undecodable,
        "other_deliveries": other,
    }


def slack_alert_posts(watch: SlackWatch, expected: dict[str, tuple[str, float]]) -> dict[str, Any]:
    """What Slack got during a --sink webhook burst: it should carry no alert at all."""
    posts = watch.fetch_new()
    naming = 0
    channels: dict[str, int] = {}
    for post in posts:
        blob = (post.get("text") or "") + json.dumps(post.get("blocks") or [])
        if any(m in expected for m in _ANY_INCIDENT.findall(blob)):
            naming += 1
        channel = str(post.get("channel"))
        channels[channel] = channels.get(channel, 0) + 1
    return {"posts": len(posts), "naming_a_burst_incident": naming, "by_channel": channels}


def journal_stats(db_path: Path) -> dict[str, Any]:
    """Group commits as the journal shows them: signals sharing ``journalled_at`` were
    written by one commit (the history actor stamps each commit once)."""
    try:
        import duckdb

        con = duckdb.connect(str(db_path), read_only=True)
        try:
            rows = con.execute(
                "SELECT count(*) AS n, epoch(journalled_at)::DOUBLE AS j, "
                "min(epoch(journalled_at) - epoch(received_at))::DOUBLE AS w "
                "FROM signals GROUP BY journalled_at ORDER BY j"
            ).fetchall()
            wait = con.execute(
                "SELECT quantile_cont(epoch(journalled_at) - epoch(received_at), [0.5, 0.99]) "
                "FROM signals"
            ).fetchone()
            lanes = con.execute(
                "SELECT d.target, count(*), quantile_cont(o.latency_ms, 0.5), "
                "quantile_cont(o.latency_ms, 0.99), "
                "(max(epoch(o.finished_at)) - min(epoch(o.finished_at)))::DOUBLE "
                "FROM deliveries d JOIN delivery_outcomes o USING (delivery_id) "
                "GROUP BY d.target ORDER BY d.target"
            ).fetchall()
        finally:
            con.close()
    except Exception as exc:  # a diagnostic: never fail the run over it
        return {"error": f"{type(exc).__name__}: {exc}"}
    if len(rows) < 2:
        return {"commits": len(rows)}
    sizes = [r[0] for r in rows]
    gaps = [(b[1] - a[1]) * 1000.0 for a, b in itertools.pairwise(rows)]
    q = (wait[0] if wait else None) or [None, None]
    lane_stats = {
        target: {
            "posts": n,
            "latency_p50_ms": _r(p50, 1),
            "latency_p99_ms": _r(p99, 1),
            "ms_per_post": _r(span * 1000.0 / n, 1) if n and span else None,
        }
        for target, n, p50, p99, span in lanes
    }
    return {
        "lanes": lane_stats,
        "signal_commits": len(rows),
        "signals": sum(sizes),
        "batch_mean": round(sum(sizes) / len(sizes), 1),
        "batch_p50": pct([float(x) for x in sizes], 50),
        "batch_max": max(sizes),
        "interval_p50_ms": _r(pct(gaps, 50), 1),
        "interval_p90_ms": _r(pct(gaps, 90), 1),
        "receipt_to_commit_start_p50_ms": _r(q[0] * 1000.0, 1) if q[0] is not None else None,
        "receipt_to_commit_start_p99_ms": _r(q[1] * 1000.0, 1) if q[1] is not None else None,
    }


# --- phases ----------------------------------------------------------------------------------


def phase_ceiling(
    args: argparse.Namespace, factory: RequestFactory, requests: list[Request], workdir: Path
) -> dict[str, Any]:
    proc, port = start_ceiling(factory.secret, workdir)
    sampler = RssSampler(proc.pid).start()
    try:
        reqs = retarget(requests, 1, port)
        if args.warmup:
            warm = retarget(factory.batch("c", args.warmup, BURST_FIXTURES, 1), 1, port)
            run_load(args.client, port, warm, args.concurrency, 60.0)
        log(f"ceiling: {len(reqs)} requests at concurrency {args.concurrency} -> :{port}")
        cpu0 = cpu_snapshot(proc.pid)
        result = run_load(args.client, port, reqs, args.concurrency, args.time_limit)
        cpu1 = cpu_snapshot(proc.pid)
        figures = summarise(result)
        figures.update(cpu_figures(cpu0, cpu1, figures["answered"], figures["seconds"], "server_"))
    finally:
        figures_rss = sampler.stop()
        proc.stop(5.0)
    figures["peak_rss_mb"] = round(figures_rss / 2**20, 1)
    log(
        f"ceiling: {figures['accepted_per_s']} accepted/s, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, peak RSS {figures['peak_rss_mb']} MB"
    )
    return figures


def phase_burst(
    args: argparse.Namespace,
    factory: RequestFactory,
    requests: list[Request],
    workdir: Path,
    slack: Proc,
    slack_url: str,
    watch: SlackWatch,
    hook: WebhookPeers | None = None,
) -> dict[str, Any]:
    config = burst_config(args, hook)
    profile = workdir / "eyetok.cprofile" if args.profile else None
    prefix = args.daemon_prefix.split() if args.daemon_prefix else None
    extra_env = dict(kv.split("=", 1) for kv in args.daemon_env)
    if hook is not None:
        extra_env[WEBHOOK_SECRET_ENV] = hook.secret
        extra_env["EYETOK_DNS_RESOLVER"] = f"{HOST}:{hook.dns.port}"
    daemon = start_eyetok(
        secret=factory.secret,
        slack_url=slack_url,
        data_dir=workdir / "eyetok-burst",
        config_yaml=config,
        profile_path=profile,
        prefix=prefix,
        switch_interval=args.switch_interval,
        extra_env=extra_env,
    )
    sampler = RssSampler(daemon.proc.pid).start()
    figures: dict[str, Any] = {"sink": "webhook" if hook is not None else "slack"}
    try:
        if hook is not None:
            base_url = f"http://{HOST}:{daemon.port}"
            figures["webhook_verification"] = verify_webhook_sync(
                base_url, hook, WEBHOOK_VERIFY_LIMIT_S
            )
            figures["webhook_url"] = hook.url
            log(
                f"eyetok: webhook sink {WEBHOOK_SINK} -> {hook.url} verified through DNS TXT in "
                f"{figures['webhook_verification']['handshake_s']} s"
            )
        time.sleep(0.2)
        figures["rss_ready_mb"] = round(sampler.last / 2**20, 1)
        watch.skip_existing()
        reqs = retarget(requests, 1, daemon.port)
        if args.warmup:
            warm = retarget(factory.batch("w", args.warmup, BURST_FIXTURES, 1), 1, daemon.port)
            run_load(args.client, daemon.port, warm, args.concurrency, 60.0)
        hook_start = len(hook.receiver.deliveries) if hook is not None else 0
        mono_to_wall = time.time() - time.monotonic()
        log(f"eyetok: {len(reqs)} requests at concurrency {args.concurrency} -> :{daemon.port}")
        spy = start_py_spy(daemon.proc.pid, Path(args.py_spy)) if args.py_spy else None
        cpu0, slack0 = cpu_snapshot(daemon.proc.pid), cpu_snapshot(slack.pid)
        try:
            result = run_load(args.client, daemon.port, reqs, args.concurrency, args.time_limit)
        finally:
            cpu1, slack1 = cpu_snapshot(daemon.proc.pid), cpu_snapshot(slack.pid)
            if spy is not None:
                stop_py_spy(spy)
        figures.update(summarise(result))
        n_ok, secs = figures["answered"], figures["seconds"]
        figures.update(cpu_figures(cpu0, cpu1, n_ok, secs, "server_"))
        fake = cpu_figures(slack0, slack1, n_ok, secs, "fake_slack_")
        figures["fake_slack_cpu_us_per_request"] = fake["fake_slack_cpu_us_per_request"]
        figures["fake_slack_cpu_cores"] = fake["fake_slack_cpu_cores"]
        figures["rss_after_burst_mb"] = round(sampler.last / 2**20, 1)
        figures["peak_rss_burst_mb"] = round(sampler.peak / 2**20, 1)
        log(
            f"eyetok: {figures['accepted_per_s']} accepted/s, p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms, non-202 {figures['non_202']}"
        )
        expected, markers, channels = expected_posts(reqs, result, factory)
        figures["sev_channels"] = channels
        if hook is None:
            log(f"eyetok: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} Slack posts")
            e2e = watch.wait_for(expected, markers, args.e2e_timeout)
            e2e["sink"] = "slack"
        else:
            log(f"eyetok: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} webhooks")
            e2e = wait_for_webhooks(
                hook.receiver,
                expected,
                args.e2e_timeout,
                start_index=hook_start,
                mono_to_wall=mono_to_wall,
            )
            time.sleep(0.5)  # anything Slack would (wrongly) get right after the last hook
            figures["slack_during_burst"] = slack_alert_posts(watch, expected)
        figures["e2e"] = e2e
        # CPU from the first request until the last delivery arrived: the whole cost of a
        # request, wherever the HTTP window ended (a faster ingest leaves more of its
        # deliveries for after the window).
        through = cpu_figures(cpu0, cpu_snapshot(daemon.proc.pid), n_ok, secs, "")
        figures["server_cpu_us_per_delivered_request"] = through["cpu_us_per_request"]
        figures["server_main_thread_cpu_us_per_delivered_request"] = through[
            "main_thread_cpu_us_per_request"
        ]
        log(
            f"eyetok: {e2e['arrived']}/{e2e['expected']} {e2e['sink']} deliveries, receipt->"
            f"arrival p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms"
        )
    finally:
        peak = sampler.stop()
        t_stop = time.perf_counter()
        code = daemon.proc.stop(40.0)
        figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
        figures["exit_code"] = code
    figures["journal"] = journal_stats(daemon.data_dir / "data" / "history.duckdb")
    figures["peak_rss_mb"] = round(peak / 2**20, 1)
    figures["slack_rate_per_channel"] = args.slack_rate if config else 1.0
    figures["ready_s"] = round(daemon.ready_s, 2)
    figures["switch_interval"] = args.switch_interval
    figures["daemon_env"] = args.daemon_env
    if profile is not None and profile.exists():
        figures["cprofile"] = str(profile)
    return figures


def phase_trickle(
    args: argparse.Namespace,
    factory: RequestFactory,
    workdir: Path,
    slack_url: str,
    watch: SlackWatch,
) -> dict[str, Any]:
    daemon = start_eyetok(
        secret=factory.secret,
        slack_url=slack_url,
        data_dir=workdir / "eyetok-trickle",
        config_yaml=None,  # the default: Slack's 1 msg/s per channel
    )
    figures: dict[str, Any] = {}
    count = args.trickle_count
    channels = len(TRICKLE_FIXTURES)
    interval = 1.0 / (args.trickle_rate * channels)
    try:
        watch.skip_existing()
        reqs = retarget(factory.batch("t", count, TRICKLE_FIXTURES, 1), 1, daemon.port)
        result = RunResult.empty(count, "httpx-sync")
        url = f"http://{HOST}:{daemon.port}/hooks/sentry"
        log(
            f"trickle: {count} alerts over {channels} channels, {args.trickle_rate:g}/s per "
            f"channel ({1 / interval:.2f}/s total), default Slack rate 1/s per channel"
        )
        begin = time.perf_counter()
        with httpx.Client(timeout=15.0) as client:
            for i, req in enumerate(reqs):
                due = begin + i * interval
                while (now := time.perf_counter()) < due:
                    time.sleep(min(due - now, 0.05))
                if now - begin > count * interval + 60.0:
                    break
                result.wall0[i] = time.time()
                result.t0[i] = time.perf_counter()
                try:
                    resp = client.post(url, content=req.body, headers=req.headers)
                except httpx.HTTPError:
                    result.status[i] = -1
                    result.t1[i] = time.perf_counter()
                    continue
                result.t1[i] = time.perf_counter()
                result.status[i] = resp.status_code
                result.bodies[i] = resp.content
        http = summarise(result)
        figures.update(
            requests=count,
            accepted=http["accepted"],
            non_202=http["non_202"],
            http_p50_ms=http["p50_ms"],
            http_p99_ms=http["p99_ms"],
            channels=channels,
            rate_per_channel=args.trickle_rate,
            rate_total=round(1 / interval, 3),
        )
        expected, markers, sev = expected_posts(reqs, result, factory)
        figures["sev_channels"] = sev
        e2e = watch.wait_for(expected, markers, args.e2e_timeout)
        figures["e2e"] = e2e
        log(
            f"trickle: {e2e['arrived']}/{e2e['expected']} posts, receipt->post p50 "
            f"{e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms"
        )
    finally:
        figures["exit_code"] = daemon.proc.stop(40.0)
    return figures


# --- kill -9 mid-stream ------------------------------------------------------------------------


class KillSwitch:
    """SIGKILLs the daemon from the load loop once ``at`` signals were answered 202, then
    restarts it (same data dir, same port) from a thread while the load keeps going."""

    def __init__(self, daemon: Daemon, at: int, restart: Any) -> None:
        self.daemon = daemon
        self.at = at
        self._restart = restart  # Callable[[], Daemon]
        self.killed_perf: float | None = None
        self.killed_wall: float | None = None
        self.accepted_at_kill = 0
        self.old_exit: int | None = None
        self.respawn_perf: float | None = None
        self.ready_perf: float | None = None
        self.first_202_after_perf: float | None = None
        self.restarted: Daemon | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def on_accepted(self, _: int, accepted: int, sent_perf: float) -> None:
        if self.killed_perf is not None:
            # The first 202 to a request sent after the respawn: the new daemon's first.
            respawn = self.respawn_perf
            if self.first_202_after_perf is None and respawn is not None and sent_perf > respawn:
                self.first_202_after_perf = time.perf_counter()
            return
        if accepted < self.at:
            return
        with contextlib.suppress(ProcessLookupError):
            self.daemon.proc.popen.send_signal(signal.SIGKILL)  # kill -9
        self.killed_perf = time.perf_counter()
        self.killed_wall = time.time()
        self.accepted_at_kill = accepted
        self._thread = threading.Thread(target=self._restart_now, name="restart", daemon=True)
        self._thread.start()

    def _restart_now(self) -> None:
        try:
            self.old_exit = self.daemon.proc.popen.wait(timeout=10.0)
            self.respawn_perf = time.perf_counter()
            self.restarted = self._restart()
            self.ready_perf = time.perf_counter()
        except BaseException as exc:  # reported by the phase; the load stops early
            self.error = exc

    def failed(self) -> bool:
        return self.error is not None

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


def _incidents_in(post: dict[str, Any], expected: set[str] | dict[str, Any]) -> str | None:
    blob = (post.get("text") or "") + json.dumps(post.get("blocks") or [])
    m = _INCIDENT_IN_POST.search(blob)
    if m and m.group(1) in expected:
        return m.group(1)
    return next((w for w in _ANY_INCIDENT.findall(blob) if w in expected), None)


def _log_events(path: Path, event: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
    return found


def journalled_signal_ids(db_path: Path) -> set[str]:
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT signal_id FROM signals").fetchall()}
    finally:
        con.close()


def phase_kill(
    args: argparse.Namespace,
    factory: RequestFactory,
    workdir: Path,
    slack_url: str,
    watch: SlackWatch,
    dsn: str | None = None,
) -> dict[str, Any]:
    """N distinct signed webhooks at concurrency C; SIGKILL at ``--kill-at`` x N accepted,
    restart on the same data dir and port (``--fresh-data-dir``: on a new, empty one with
    the same Postgres ``dsn``), retry what failed; then every accepted incident must
    reach Slack and every accepted signal must be in a journal."""
    n = args.requests
    config = (
        f"sinks:\n  slack: {{type: slack, rate_per_channel: {args.slack_rate:g}}}\n"
        if args.slack_rate > 0
        else None
    )
    data_dir = workdir / "eyetok-kill"
    restart_dir = workdir / "eyetok-kill-fresh" if args.fresh_data_dir else data_dir
    mode = args.durability or "disk"
    extra_env = durability.durability_env(mode, dsn)

    def boot(port: int = 0, name: str = "eyetok", where: Path = data_dir) -> Daemon:
        return start_eyetok(
            secret=factory.secret,
            slack_url=slack_url,
            data_dir=where,
            config_yaml=config,
            port=port,
            name=name,
            extra_env=extra_env,
        )

    daemon = boot()
    at = max(1, min(n, round(n * args.kill_at)))
    switch = KillSwitch(daemon, at, lambda: boot(daemon.port, "eyetok-restart", restart_dir))
    figures: dict[str, Any] = {
        "durability": mode,
        "postgres": dsn is not None,
        "fresh_data_dir": bool(args.fresh_data_dir),
        "requests": n,
        "concurrency": args.concurrency,
        "port": daemon.port,
        "slack_rate_per_channel": args.slack_rate if config else 1.0,
        "kill_after_accepted": at,
        "ready_s": round(daemon.ready_s, 2),
    }
    posts: list[dict[str, Any]] = []
    run: RetryRun | None = None
    last: Daemon = daemon
    try:
        watch.skip_existing()
        reqs = retarget(factory.batch("k", n, BURST_FIXTURES, 1), 1, daemon.port)
        log(
            f"kill: {n} requests at concurrency {args.concurrency} -> :{daemon.port}; "
            f"SIGKILL after {at} accepted, restart on "
            + ("a new, empty data dir" if restart_dir != data_dir else "the same data dir")
            + f" and port (durability {mode})"
        )
        run = run_raw_retrying(
            daemon.port,
            reqs,
            args.concurrency,
            args.time_limit,
            on_accepted=switch.on_accepted,
            should_stop=switch.failed,
        )
        switch.join(90.0)
        if switch.error is not None:
            raise RuntimeError(f"the restart failed: {switch.error}") from switch.error
        if switch.restarted is not None:
            last = switch.restarted
        res = run.result
        log(
            f"kill: load done in {run.seconds:.1f} s: "
            f"{sum(s == 202 for s in res.status)}/{n} accepted, {run.retries} re-sends"
        )
        # Every 202: its signal id and incident id (each body opens its own incident).
        answers = [
            (i, json.loads(res.bodies[i] or b"{}")) for i in range(n) if res.status[i] == 202
        ]
        expected: dict[str, int] = {}  # incident_id -> request index
        actions: dict[str, int] = {}
        no_incident = 0
        for i, answer in answers:
            action = str(answer.get("action"))
            actions[action] = actions.get(action, 0) + 1
            if answer.get("incident_id"):
                expected.setdefault(str(answer["incident_id"]), i)
            else:
                no_incident += 1
        accepted_signals = {str(a.get("signal_id")) for _, a in answers}
        log(f"kill: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} incidents in Slack")
        t_wait = time.perf_counter()
        deadline = t_wait + args.e2e_timeout
        while True:
            posts += watch.fetch_new()
            seen = {
                inc
                for p in posts
                if not p.get("thread_ts") and (inc := _incidents_in(p, expected)) is not None
            }
            if len(seen) >= len(expected) or time.perf_counter() >= deadline:
                break
            time.sleep(0.25)
        figures["delivery_wait_s"] = round(time.perf_counter() - t_wait, 2)
    finally:
        switch.join(90.0)
        t_stop = time.perf_counter()
        restarted = switch.restarted
        if restarted is not None:
            figures["exit_code"] = restarted.proc.stop(40.0)
            figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
        code = daemon.proc.stop(40.0)  # already dead after the kill: closes its log files
        if restarted is None:
            figures["exit_code"] = code
            figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
    posts += watch.fetch_new()  # whatever the drain posted on the way out

    res = run.result
    tops: dict[str, list[float]] = {}
    thread_replies = unmatched = 0
    for post in posts:
        if post.get("thread_ts"):
            thread_replies += 1  # e.g. the update of a retried signal journalled at the kill
        elif (inc := _incidents_in(post, expected)) is None:
            unmatched += 1
        else:
            tops.setdefault(inc, []).append(float(post["received_wall"]))
    lost = sorted(set(expected) - set(tops))
    duplicated = {inc: len(w) for inc, w in tops.items() if len(w) > 1}
    final_refused: dict[str, int] = {}
    for i in range(n):
        if res.status[i] != 202:
            name = {0: "no_answer", -1: "connection_error"}.get(res.status[i], str(res.status[i]))
            final_refused[name] = final_refused.get(name, 0) + 1
    retried = [a for a in run.attempts if a > 1]
    figures.update(
        sent=sum(a > 0 for a in run.attempts),
        attempts=sum(run.attempts),
        accepted=len(answers),
        actions=actions,
        accepted_without_incident=no_incident,
        retries=run.retries,
        retried_requests=len(retried),
        max_attempts=max(run.attempts, default=0),
        connection_errors=run.connection_errors,
        connect_refused=run.connect_refused,
        answers_by_status=dict(sorted(run.answers.items())),
        refused_by_status=final_refused,
        load_seconds=round(run.seconds, 2),
        accepted_per_s=round(len(answers) / max(run.seconds, 1e-9), 1),
        timed_out=res.timed_out,
        client_cpu_us_per_request=round(res.cpu_s * 1e6 / max(sum(run.attempts), 1), 1),
    )
    figures["killed"] = switch.killed_perf is not None
    figures["restarted"] = switch.restarted is not None
    if switch.killed_perf is not None and switch.killed_wall is not None:
        t_load0 = min((t for t in res.t0 if t > 0.0), default=switch.killed_perf)
        figures["kill_at_s"] = round(switch.killed_perf - t_load0, 2)
        figures["accepted_at_kill"] = switch.accepted_at_kill
        figures["killed_exit"] = switch.old_exit
        if switch.ready_perf is not None and switch.respawn_perf is not None:
            figures["kill_to_ready_s"] = round(switch.ready_perf - switch.killed_perf, 2)
            figures["spawn_to_ready_s"] = round(switch.ready_perf - switch.respawn_perf, 2)
        if switch.first_202_after_perf is not None:
            figures["kill_to_first_202_s"] = round(
                switch.first_202_after_perf - switch.killed_perf, 2
            )
        before = [inc for inc, i in expected.items() if 0.0 < res.t1[i] <= switch.killed_perf]
        posted_before = sum(
            1 for inc in before if tops.get(inc) and min(tops[inc]) <= switch.killed_wall
        )
        figures["accepted_before_kill"] = len(before)
        figures["posted_before_kill"] = posted_before
        figures["pending_at_kill"] = len(before) - posted_before
        last_post = max((w for ws in tops.values() for w in ws), default=None)
        figures["last_post_after_kill_s"] = (
            round(last_post - switch.killed_wall, 2) if last_post is not None else None
        )
        requeued = _log_events(restart_dir / "eyetok-restart.log", "outbox_requeued")
        figures["outbox_requeued"] = sum(int(e.get("pending", 0)) for e in requeued)
        restored = _log_events(restart_dir / "eyetok-restart.log", "rehydrated_from_postgres")
        figures["rehydrated_deliveries"] = sum(int(e.get("deliveries", 0)) for e in restored)
    figures.update(
        expected_incidents=len(expected),
        delivered=len(expected) - len(lost),
        lost=len(lost),
        lost_incidents=lost[:20],
        duplicates=len(duplicated),
        duplicate_posts=sum(c - 1 for c in duplicated.values()),
        slack_posts=len(posts),
        slack_thread_replies=thread_replies,
        slack_unmatched_posts=unmatched,
    )
    try:
        journal = journalled_signal_ids(last.data_dir / "data" / "history.duckdb")
        missing = accepted_signals - journal
        if restart_dir != data_dir and dsn is not None:
            # The dead dyno's disk is gone: what every 202 promised is its incident in
            # Postgres (each request opens its own), committed before the answer.
            committed = durability.incidents_in_postgres(dsn)
            missing = {f"{i} (incident not in postgres)" for i in set(expected) - committed}
            figures["checked_in"] = "postgres incident_state"
        figures.update(
            journal_signals=len(journal),
            accepted_signal_ids=len(accepted_signals),
            accepted_without_journal=len(missing),
            accepted_without_journal_ids=sorted(missing)[:20],
            journalled_not_accepted=len(journal - accepted_signals),
        )
    except Exception as exc:
        figures["journal_error"] = f"{type(exc).__name__}: {exc}"
        figures["accepted_without_journal"] = None
    log(
        f"kill: delivered {figures['delivered']}/{len(expected)}, LOST {len(lost)}, "
        f"duplicates {len(duplicated)}, 202 without journal "
        f"{figures['accepted_without_journal']}"
    )
    return figures


# --- report ------------------------------------------------------------------------------------


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if abs(value) >= 100 else f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def text_report(report: dict[str, Any]) -> str:
    meta = report["meta"]
    ceil = report.get("ceiling")
    eye = report.get("eyetok")
    tr = report.get("trickle")
    lines = [
        "EyeTok ingest benchmark",
        f"  {meta['when']}  {meta['cpus']} CPUs  Python {meta['python']}  "
        f"hypercorn {meta['hypercorn']}  trio {meta['trio']}",
        f"  N={meta['requests']} C={meta['concurrency']} warmup={meta['warmup']}  "
        f"bodies {meta['body_bytes_mean']:.0f} B mean ({meta['body_bytes_min']}-"
        f"{meta['body_bytes_max']}) from {', '.join(meta['fixtures'])}",
        f"  load generator: {meta['client_desc']}",
        "",
    ]
    if eye is not None or ceil is not None:
        lines.append(f"{'':28}{'ceiling':>14}{'EyeTok':>14}{'ratio':>9}   target")
        c = ceil or {}
        e = eye or {}
        ratio = report["figures"].get("accepted_ratio")

        def row(label: str, cv: Any, ev: Any, rv: str = "", target: str = "") -> None:
            lines.append(f"{label:28}{_fmt(cv):>14}{_fmt(ev):>14}{rv:>9}   {target}")

        row(
            "accepted/s",
            c.get("accepted_per_s"),
            e.get("accepted_per_s"),
            f"{ratio:.2f}" if ratio is not None else "-",
            f">= {TARGET_RATIO} x ceiling  {_verdict(report['verdicts'].get('throughput'))}",
        )
        row("accepted / sent", _acc(c), _acc(e))
        row("HTTP p50 (ms)", c.get("p50_ms"), e.get("p50_ms"))
        row("HTTP p99 (ms)", c.get("p99_ms"), e.get("p99_ms"))
        row("HTTP max (ms)", c.get("max_ms"), e.get("max_ms"))
        row("non-202 answers", _non202(c), _non202(e))
        row(
            "peak RSS (MB)",
            c.get("peak_rss_mb"),
            e.get("peak_rss_mb"),
            "",
            f"<= {TARGET_RSS_MB:g} MB  {_verdict(report['verdicts'].get('rss'))}",
        )
        row(
            "generator CPU/request (us)",
            c.get("client_cpu_us_per_request"),
            e.get("client_cpu_us_per_request"),
        )
        row(
            "server CPU/request (us)",
            c.get("server_cpu_us_per_request"),
            e.get("server_cpu_us_per_request"),
        )
        row(
            "  main thread (event loop)",
            c.get("server_main_thread_cpu_us_per_request"),
            e.get("server_main_thread_cpu_us_per_request"),
        )
        row(
            "  other threads",
            c.get("server_other_threads_cpu_us_per_request"),
            e.get("server_other_threads_cpu_us_per_request"),
        )
        row("server CPU (cores busy)", c.get("server_cpu_cores"), e.get("server_cpu_cores"))
        if eye is not None:
            lines.append(
                f"  fake Slack process during the burst: {e.get('fake_slack_cpu_cores')} cores, "
                f"{e.get('fake_slack_cpu_us_per_request')} us per request"
            )
            j = e.get("journal") or {}
            if "batch_mean" in j:
                lines.append(
                    f"  journal: {j['signals']} signals in {j['signal_commits']} group commits, "
                    f"batch mean {j['batch_mean']} (max {j['batch_max']}), one commit every "
                    f"{j['interval_p50_ms']} ms (p50; p90 {j['interval_p90_ms']}); receipt -> "
                    f"commit start p50 {j['receipt_to_commit_start_p50_ms']} ms, "
                    f"p99 {j['receipt_to_commit_start_p99_ms']} ms"
                )
            for target, lane in (j.get("lanes") or {}).items():
                lines.append(
                    f"  lane {target}: {lane['posts']} posts, one every {lane['ms_per_post']} ms; "
                    f"receipt -> delivered (journal) p50 {lane['latency_p50_ms']} ms, "
                    f"p99 {lane['latency_p99_ms']} ms"
                )
            if e.get("daemon_env"):
                lines.append(f"  WHAT-IF: daemon environment += {e['daemon_env']}")
            if e.get("switch_interval"):
                lines.append(
                    f"  WHAT-IF: daemon ran under sys.setswitchinterval({e['switch_interval']})"
                )
            lines.append(
                f"  EyeTok RSS: {e.get('rss_ready_mb')} MB ready, "
                f"{e.get('peak_rss_burst_mb')} MB peak during the HTTP burst, "
                f"{e.get('peak_rss_mb')} MB peak until all posts were in; ready in "
                f"{e.get('ready_s')} s; stopped (SIGTERM) in {e.get('stop_s')} s, "
                f"exit {e.get('exit_code')}"
            )
            lines.append(f"  SEV channels answered: {e.get('sev_channels')}")
            x = e.get("e2e") or {}
            if x.get("sink") == "webhook":
                lines += webhook_report_lines(e, report["verdicts"])
            else:
                lines += [
                    "",
                    f"receipt -> Slack post, burst of {e.get('accepted')} (Slack rate limit "
                    f"LIFTED to {e.get('slack_rate_per_channel'):g} msg/s per channel via "
                    "EYETOK_CONFIG)",
                    f"  arrived {x.get('arrived')}/{x.get('expected')} top-level posts in "
                    f"{x.get('waited_s')} s of waiting (limit {x.get('limit_s')} s)",
                    f"  p50 {_fmt(x.get('p50_ms'))} ms  p90 {_fmt(x.get('p90_ms'))} ms  "
                    f"p99 {_fmt(x.get('p99_ms'))} ms  max {_fmt(x.get('max_ms'))} ms   target "
                    f"p99 <= {TARGET_E2E_P99_MS:g} ms  "
                    f"{_verdict(report['verdicts'].get('e2e_p99'))}",
                    f"  Slack posts/s while draining: {x.get('posts_per_s')}; by channel "
                    f"{x.get('by_channel')}",
                ]
    if eye is not None and report.get("eyetok_postgres") is not None:
        lines += durability.report_lines(
            eye, report["eyetok_postgres"], report["figures"].get("durability") or {}
        )
    if tr is not None:
        x = tr.get("e2e") or {}
        lines += [
            "",
            f"trickle, default config (Slack 1 msg/s per channel): {tr['requests']} alerts "
            f"at {tr['rate_per_channel']:g}/s per channel over {tr['channels']} channels "
            f"({tr['rate_total']:g}/s total)",
            f"  accepted {tr['accepted']}/{tr['requests']}  non-202 {tr['non_202'] or 0}  "
            f"HTTP p50 {_fmt(tr['http_p50_ms'])} ms  p99 {_fmt(tr['http_p99_ms'])} ms",
            f"  receipt -> Slack post: arrived {x.get('arrived')}/{x.get('expected')}  "
            f"p50 {_fmt(x.get('p50_ms'))} ms  p99 {_fmt(x.get('p99_ms'))} ms  "
            f"max {_fmt(x.get('max_ms'))} ms",
            f"  by channel {x.get('by_channel')}",
        ]
    if report.get("kill") is not None:
        lines += kill_report_lines(report["kill"], report["verdicts"])
    if meta.get("workdir_kept"):
        lines += ["", f"kept: {meta['workdir_kept']}"]
    return "\n".join(lines)


def webhook_report_lines(e: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    x = e.get("e2e") or {}
    v = e.get("webhook_verification") or {}
    sl = e.get("slack_during_burst") or {}
    extras = (
        f"  receiver: {x.get('deliveries')} requests since the burst began, answers "
        f"{x.get('receiver_answers')}; by type {x.get('by_type')}; duplicates "
        f"{x.get('duplicates')}, unverified {x.get('unverified')}, not for a burst incident "
        f"{x.get('other_deliveries')}"
    )
    lines = [
        "",
        f"receipt -> webhook arrival, burst of {e.get('accepted')}: the operator's SEV1/SEV2/"
        f"SEV2.5/SEV3 routed ONLY to webhook sink {WEBHOOK_SINK} (no rate limit), verified "
        f"through DNS TXT {v.get('txt_record')} in {v.get('handshake_s')} s; receiver = "
        "tests.peers.webhook_receiver, threads in the bench process (signatures checked)",
        f"  arrived {x.get('arrived')}/{x.get('expected')} incident.opened webhooks in "
        f"{x.get('waited_s')} s of waiting (limit {x.get('limit_s')} s); last one "
        f"{_fmt(x.get('last_arrival_after_first_send_s'))} s after the first send",
        f"  p50 {_fmt(x.get('p50_ms'))} ms  p90 {_fmt(x.get('p90_ms'))} ms  "
        f"p99 {_fmt(x.get('p99_ms'))} ms  max {_fmt(x.get('max_ms'))} ms   target p99 "
        f"<= {TARGET_E2E_P99_MS:g} ms  {_verdict(verdicts.get('e2e_p99'))}",
        f"  webhooks/s while draining: {x.get('posts_per_s')}; by SEV channel "
        f"{x.get('by_channel')}",
        extras,
    ]
    if x.get("unverified_problems"):
        lines.append(f"  unverified: {x['unverified_problems']}")
    lines += [
        f"  Slack (kept for operator notices): {sl.get('posts')} posts during the burst, "
        f"{sl.get('naming_a_burst_incident')} naming a burst incident; by channel "
        f"{sl.get('by_channel')}",
        f"  bench process during the HTTP burst: generator loop thread "
        f"{e.get('client_thread_cpu_us_per_request')} us/request; its other threads "
        f"(webhook receiver, fake DNS, RSS sampler) {e.get('client_other_threads_cpu_cores')} "
        "cores, on the same GIL as the generator (the generator CPU/request row above is the "
        "whole bench process, receiver included)",
    ]
    return lines


def kill_report_lines(k: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    def pf(ok: bool | None) -> str:
        return "PASS" if ok else "FAIL"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{key}: {v}" for key, v in d.items()) or "none"

    lines = [
        f"kill -9 mid-stream: {k['requests']} distinct signed webhooks at C={k['concurrency']}, "
        f"Slack rate limit LIFTED to {k['slack_rate_per_channel']:g} msg/s per channel",
    ]
    if k.get("killed"):
        lines += [
            f"  SIGKILL {k.get('kill_at_s')} s into the load, after "
            f"{k.get('accepted_at_kill')} answered 202 (target {k['kill_after_accepted']}); "
            f"exit {k.get('killed_exit')}",
            f"  durability {k.get('durability')}; restart on "
            + (
                "a NEW, EMPTY data dir (same Postgres; "
                f"{k.get('rehydrated_deliveries')} pending deliveries rehydrated)"
                if k.get("fresh_data_dir")
                else "the same data dir"
            )
            + f" and port :{k['port']}: kill -> ready "
            f"{_fmt(k.get('kill_to_ready_s'))} s (spawn -> ready "
            f"{_fmt(k.get('spawn_to_ready_s'))} s); its first 202 "
            f"{_fmt(k.get('kill_to_first_202_s'))} s after the kill; outbox_requeued "
            f"{k.get('outbox_requeued')} pending deliveries",
            f"  at the kill: {k.get('accepted_before_kill')} incidents accepted, "
            f"{k.get('posted_before_kill')} of them already in Slack -> "
            f"{k.get('pending_at_kill')} deliveries pending across the kill",
        ]
    else:
        lines.append(f"  NO KILL: fewer than {k['kill_after_accepted']} requests were accepted")
    lines += [
        f"  sent {k['sent']}  accepted (202) {k['accepted']}/{k['requests']} in "
        f"{k['load_seconds']} s ({k['accepted_per_s']}/s overall)  actions {counts(k['actions'])}",
        f"  retried: {k['retries']} re-sends of {k['retried_requests']} requests (at most "
        f"{k['max_attempts']} attempts each); {k['connection_errors']} attempts lost with their "
        f"connection, {k['connect_refused']} connection attempts refused",
        f"  answers by status (every attempt): {counts(k['answers_by_status'])}",
        f"  refused in the end (never 202) by status: {counts(k['refused_by_status'])}"
        + ("  (load deadline hit)" if k.get("timed_out") else ""),
        f"  Slack: delivered {k['delivered']}/{k['expected_incidents']} accepted incidents "
        f"(waited {k.get('delivery_wait_s')} s, limit {k.get('e2e_limit_s')} s); last post "
        f"+{_fmt(k.get('last_post_after_kill_s'))} s after the kill; "
        f"{k['slack_posts']} posts: {k['slack_thread_replies']} thread replies, "
        f"{k['slack_unmatched_posts']} top-level for no accepted incident",
        f"  duplicates: {k['duplicates']} incidents posted more than once as a top-level "
        f"message ({k['duplicate_posts']} extra posts; at-least-once delivery)",
    ]
    if k.get("journal_error"):
        lines.append(f"  journal: could not read history.duckdb: {k['journal_error']}")
    else:
        if k.get("checked_in"):
            lines.append(
                f"  every 202's incident looked up in {k['checked_in']} (the dead dyno's "
                "journal went with its disk)"
            )
        lines.append(
            f"  journal ({k['journal_signals']} signals in history.duckdb after SIGTERM of the "
            f"restarted daemon: exit {k.get('exit_code')} in {k.get('stop_s')} s): "
            f"{k['accepted_signal_ids']} accepted signal ids, "
            f"{k['journalled_not_accepted']} journalled but never answered 202"
        )
    if k.get("accepted_without_incident"):
        lines.append(f"  202s without an incident id: {k['accepted_without_incident']}")
    lost_ids = f"  e.g. {', '.join(k['lost_incidents'][:5])}" if k["lost"] else ""
    lines += [
        "",
        f"  ==> LOST (accepted, never delivered): {k['lost']}   "
        f"{pf(verdicts.get('kill_lost'))}{lost_ids}",
        f"  ==> 202 without journal: {_fmt(k.get('accepted_without_journal'))}   "
        f"{pf(verdicts.get('kill_journal'))}",
    ]
    if not verdicts.get("kill_complete"):
        lines.append(
            "  ==> the run is incomplete (no kill, no restart or not every request accepted): FAIL"
        )
    return lines


def _acc(fig: dict[str, Any]) -> str | None:
    return f"{fig['accepted']}/{fig['sent']}" if "accepted" in fig else None


def _non202(fig: dict[str, Any]) -> str | None:
    if "non_202" not in fig:
        return None
    return ", ".join(f"{k}:{v}" for k, v in fig["non_202"].items()) or "0"


# --- main ----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/ingest.py",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "-n", "--requests", type=int, default=None, help="requests per phase (5000; --kill: 2000)"
    )
    p.add_argument("-c", "--concurrency", type=int, default=32, help="connections in flight")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--skip-ceiling", action="store_true", help="do not measure the ceiling")
    p.add_argument("--skip-burst", action="store_true", help="do not run the EyeTok burst")
    p.add_argument("--keep", action="store_true", help="keep the temporary directories")
    p.add_argument("--client", choices=("raw", "httpx"), default="raw", help="load generator")
    p.add_argument("--warmup", type=int, default=None, help="warm-up requests (default: C)")
    p.add_argument(
        "--slack-rate",
        type=float,
        default=1000.0,
        help="burst: Slack msgs/s per channel (0: the default 1/s, no config file)",
    )
    p.add_argument(
        "--sink",
        choices=("slack", "webhook"),
        default="slack",
        help="burst: where the alerts go (webhook: the operator's SEV channels routed only "
        "to a DNS-verified webhook sink received in this process)",
    )
    p.add_argument("--trickle", action="store_true", help="also run the trickle phase")
    p.add_argument(
        "--kill",
        action="store_true",
        help="only the kill -9 phase: SIGKILL EyeTok mid-stream, restart, check nothing is lost",
    )
    p.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="--kill: SIGKILL once this fraction of the N requests was answered 202",
    )
    p.add_argument(
        "--fresh-data-dir",
        action="store_true",
        help="--kill: restart on a NEW, EMPTY data dir with the same Postgres (a dyno)",
    )
    p.add_argument(
        "--durability",
        choices=("disk", "postgres"),
        default=None,
        help="--kill: EYETOK_DURABILITY of the daemon (default: postgres with "
        "--fresh-data-dir, else disk without Postgres)",
    )
    p.add_argument(
        "--skip-durability",
        action="store_true",
        help="do not run the burst again in postgres durability (bench/durability.py)",
    )
    p.add_argument(
        "--database-url",
        default="",
        help="Postgres for postgres durability (default: a fresh database on "
        "EYETOK_TEST_PG_DSN's server, dropped after)",
    )
    p.add_argument("--trickle-count", type=int, default=40, help="trickle alerts")
    p.add_argument(
        "--trickle-rate",
        type=float,
        default=0.5,
        help="trickle alerts/s per channel (Slack allows 1)",
    )
    p.add_argument(
        "--e2e-timeout", type=float, default=120.0, help="seconds to wait for all Slack posts"
    )
    p.add_argument(
        "--time-limit", type=float, default=300.0, help="seconds a load phase may take at most"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the burst daemon under cProfile (main thread; kept with --keep)",
    )
    p.add_argument(
        "--py-spy",
        metavar="OUT",
        default="",
        help="attach py-spy to the burst daemon during the HTTP burst; collapsed stacks to OUT",
    )
    p.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="S",
        help="what-if: run the burst daemon under sys.setswitchinterval(S) (default 0.005)",
    )
    p.add_argument(
        "--daemon-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what-if: extra environment for the burst daemon (repeatable)",
    )
    p.add_argument(
        "--daemon-prefix",
        default="",
        help="command prepended to the burst daemon's argv (e.g. a profiler)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.requests is None:
        args.requests = 2000 if args.kill else 5000
    if args.kill:
        args.warmup = 0  # a correctness run: nothing to warm up
        if args.fresh_data_dir and args.durability is None:
            args.durability = "postgres"  # a dyno's default (DYNO is set)
    if args.requests < 1 or args.concurrency < 1:
        raise SystemExit("-n and -c must be at least 1")
    if args.warmup is None:
        args.warmup = args.concurrency
    import hypercorn
    import trio

    secret = secrets.token_hex(16)
    tag = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="eyetok-bench-"))
    factory = RequestFactory(secret, HOST, tag)
    requests = factory.batch("b", args.requests, BURST_FIXTURES, 1)
    sizes = [len(r.body) for r in requests]
    client_desc = (
        "raw HTTP/1.1 keep-alive, one epoll loop in one process (pre-signed requests)"
        if args.client == "raw"
        else "httpx.AsyncClient on trio, one process"
    )
    if args.kill:
        client_desc = (
            "raw HTTP/1.1 keep-alive, one epoll loop in one process (pre-signed requests), "
            "re-sending on connection failure or 503 until 202"
        )
    report: dict[str, Any] = {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "hypercorn": _version("hypercorn", hypercorn),
            "trio": trio.__version__,
            "requests": args.requests,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "client": args.client,
            "client_desc": client_desc,
            "sink": args.sink,
            "fixtures": list(BURST_FIXTURES),
            "body_bytes_mean": sum(sizes) / len(sizes),
            "body_bytes_min": min(sizes),
            "body_bytes_max": max(sizes),
            "workdir_kept": str(workdir) if args.keep else None,
        },
        "figures": {},
        "verdicts": {},
    }
    procs: list[Proc] = []
    watch: SlackWatch | None = None
    hook: WebhookPeers | None = None
    stack = contextlib.ExitStack()  # the Postgres database of the durability runs
    try:
        if args.kill:
            slack, slack_url = start_fake_slack(workdir)
            procs.append(slack)
            watch = SlackWatch(slack_url)
            if args.fresh_data_dir or args.durability == "postgres":
                dsn = stack.enter_context(durability.postgres_database(args))
            else:
                dsn = None
            report["kill"] = phase_kill(args, factory, workdir, slack_url, watch, dsn)
            report["kill"]["e2e_limit_s"] = args.e2e_timeout
        if not args.kill and not args.skip_ceiling:
            report["ceiling"] = phase_ceiling(args, factory, requests, workdir)
        if not args.kill and (not args.skip_burst or args.trickle):
            slack, slack_url = start_fake_slack(workdir)
            procs.append(slack)
            watch = SlackWatch(slack_url)
            if not args.skip_burst:
                if args.sink == "webhook":
                    hook = start_webhook_peers()
                report["eyetok"] = phase_burst(
                    args, factory, requests, workdir, slack, slack_url, watch, hook
                )
                if not args.skip_durability:
                    # The same burst again, a 202 waiting for Postgres too (same N, C).
                    again = factory.batch("p", args.requests, BURST_FIXTURES, 1)
                    dsn = stack.enter_context(durability.postgres_database(args))
                    log("eyetok: the same burst in postgres durability")
                    report["eyetok_postgres"] = durability.phase_postgres_burst(
                        args,
                        dsn,
                        lambda a: phase_burst(
                            a, factory, again, workdir / "pg", slack, slack_url, watch, hook
                        ),
                    )
            if args.trickle:
                report["trickle"] = phase_trickle(args, factory, workdir, slack_url, watch)
    finally:
        if watch is not None:
            watch.close()
        if hook is not None:
            hook.stop()
        for proc in reversed(procs):
            proc.stop(5.0)
        stack.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    _judge(report)
    text = text_report(report)
    if args.json:
        sys.stderr.write(text + "\n")
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(text + "\n")
    if args.kill:
        v = report["verdicts"]
        return 0 if v["kill_lost"] and v["kill_journal"] and v["kill_complete"] else 1
    return 0


def _version(name: str, module: Any) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return str(getattr(module, "__version__", "?"))


def _judge(report: dict[str, Any]) -> None:
    ceil, eye = report.get("ceiling"), report.get("eyetok")
    figures, verdicts = report["figures"], report["verdicts"]
    if ceil and eye and ceil.get("accepted_per_s"):
        figures["accepted_ratio"] = round(eye["accepted_per_s"] / ceil["accepted_per_s"], 3)
        verdicts["throughput"] = figures["accepted_ratio"] >= TARGET_RATIO
    if eye:
        verdicts["rss"] = eye["peak_rss_mb"] <= TARGET_RSS_MB
        p99 = (eye.get("e2e") or {}).get("p99_ms")
        complete = (eye.get("e2e") or {}).get("missing") == 0
        verdicts["e2e_p99"] = p99 is not None and complete and p99 <= TARGET_E2E_P99_MS
        figures["eyetok_accepted_per_s"] = eye["accepted_per_s"]
        figures["e2e_p99_ms"] = p99
        figures["e2e_sink"] = eye.get("sink", "slack")
        if eye.get("slack_during_burst") is not None:
            figures["slack_posts_naming_burst_incidents"] = eye["slack_during_burst"][
                "naming_a_burst_incident"
            ]
        figures["peak_rss_mb"] = eye["peak_rss_mb"]
    if ceil:
        figures["ceiling_accepted_per_s"] = ceil["accepted_per_s"]
    kill = report.get("kill")
    if kill:
        verdicts["kill_lost"] = kill["lost"] == 0
        verdicts["kill_journal"] = kill.get("accepted_without_journal") == 0
        verdicts["kill_complete"] = (
            kill["killed"] and kill["restarted"] and kill["accepted"] == kill["requests"]
        )
        figures["kill_lost"] = kill["lost"]
        figures["kill_duplicates"] = kill["duplicates"]
        figures["kill_to_ready_s"] = kill.get("kill_to_ready_s")
        figures["kill_accepted_without_journal"] = kill.get("accepted_without_journal")
    pg = report.get("eyetok_postgres")
    if eye and pg:
        figures["durability"] = durability.compare(eye, pg)
        verdicts["durability_cost"] = figures["durability"].get("cost_ok")
    trickle = report.get("trickle")
    if trickle:
        figures["trickle_e2e_p50_ms"] = trickle["e2e"]["p50_ms"]
        figures["trickle_e2e_p99_ms"] = trickle["e2e"]["p99_ms"]


if __name__ == "__main__":
    sys.exit(main())
