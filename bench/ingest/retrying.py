"""The load generator of the kill run: re-sends a request whose connection failed or
that got a 503 until it is answered 202 (a sender retrying against a restarting dyno)."""

from __future__ import annotations

import collections
import contextlib
import heapq
import selectors
import socket
import time
from dataclasses import dataclass
from typing import Any

from bench.ingest import HOST
from bench.ingest.bodies import Request
from bench.ingest.load import Conn, RunResult, receive_answer


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
    idle: list[Conn] = []
    live: set[Conn] = set()
    sel = selectors.DefaultSelector()
    perf, wall = time.perf_counter, time.time
    cpu0 = time.process_time()
    t_start = perf()
    deadline = t_start + time_limit_s

    def retry(i: int, delay: float) -> None:
        counts["retries"] += 1
        heapq.heappush(later, (perf() + delay, i))

    def drop(conn: Conn) -> None:
        """Close ``conn``; its slot reconnects at once."""
        live.discard(conn)
        if conn in idle:
            idle.remove(conn)
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn.sock)
        conn.sock.close()
        heapq.heappush(reconnect, (perf(), 0))

    def fail(conn: Conn) -> None:
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
        conn = Conn(sock)
        sel.register(sock, selectors.EVENT_READ, conn)
        live.add(conn)
        start(conn)

    def work_due(now: float) -> bool:
        return bool(fresh) or (bool(later) and later[0][0] <= now)

    def flush(conn: Conn) -> None:
        with contextlib.suppress(BlockingIOError):
            conn.off += conn.sock.send(conn.out[conn.off :])
        pending = conn.off < len(conn.out)
        if pending != conn.writing:
            conn.writing = pending
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
            sel.modify(conn.sock, events, conn)

    def start(conn: Conn) -> None:
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

    def on_readable(conn: Conn) -> None:
        try:
            body = receive_answer(conn, result.status)
        except ConnectionError:
            fail(conn)
            return
        if body is None:
            return
        i, conn.idx = conn.idx, -1
        status = result.status[i]
        answers[str(status)] = answers.get(str(status), 0) + 1
        result.bodies[i] = body
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
