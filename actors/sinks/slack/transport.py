"""How Slack posts travel: slack-sdk's ``WebClient`` builds every request (method URL,
JSON body, token, user agent) and reads every answer (``SlackResponse``, ``SlackApiError``
for ``ok: false``), but sends over kept-alive connections instead of opening a new one
(against real Slack, a new TCP and TLS handshake) per call as its ``urllib`` path does.

The choice: slack-sdk's ``AsyncWebClient`` needs aiohttp on asyncio, which EyeTok (trio)
does not run, and the sink's calls already run in worker threads; so the one method of
``WebClient`` that performs the HTTP exchange is replaced, and everything slack-sdk does
around it (request building, response parsing, its error types) stays. The exchange is
the standard library's ``http.client`` (what ``urllib`` uses underneath) on connections
kept in a small pool, one per worker thread at most. A pooled ``httpx.Client`` was
measured too: on the bench's local fake Slack it cost 100-200 us more CPU per post than
even urllib's connection per call (its HTTP/1.1 stack is pure Python); ``http.client``
on a kept connection costs less than both.

An idle connection is reused only while younger than :data:`KEEPALIVE_S` and not closed
by the server meanwhile (the socket would be readable: EOF); otherwise a new one is
opened. Failures are ``http.client``'s and the socket's own, the types the sink already
classifies: a connection refused did not land; a timeout, a reset or a broken answer may
have (the sink then looks for the post before posting again). An HTTP status outside 2xx
is ``urllib``'s ``HTTPError``, as slack-sdk expects it. Behind a proxy (``HTTPS_PROXY``),
or for a URL on another host than the API's, slack-sdk's own ``urllib`` path is used.
"""

from __future__ import annotations

import io
import select
import threading
import time
import urllib.error
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from ssl import SSLContext
from typing import Any
from urllib.parse import urlsplit
from urllib.request import Request

from slack_sdk import WebClient

from eyetok.tls import system_context

KEEPALIVE_S = 30.0  # an idle connection older than this is closed, not reused


class SlackConnections:
    """Idle kept-alive connections to one host, at most ``size`` kept. Thread-safe."""

    def __init__(self, base_url: str, *, timeout: float, ssl: SSLContext | None, size: int):
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}".lower()
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._timeout = timeout
        # the process's one system-store context (eyetok/tls.py), made by the first https
        # pool, not one per pool
        self._ssl = ssl if ssl is not None else (system_context() if self._https else None)
        self._size = size
        self._lock = threading.Lock()
        self._idle: list[tuple[HTTPConnection, float]] = []  # (connection, idle since)
        self.opened = 0  # connections opened so far (for tests and benches)

    def take(self) -> HTTPConnection:
        """An idle connection still good, or a new (not yet connected) one."""
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if now - since < KEEPALIVE_S and not _closed_by_peer(conn):
                return conn
            conn.close()
        with self._lock:
            self.opened += 1
        if self._https:
            return HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._ssl)
        return HTTPConnection(self._host, self._port, timeout=self._timeout)

    def give_back(self, conn: HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._size:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


def _closed_by_peer(conn: HTTPConnection) -> bool:
    """An idle connection whose socket is readable was closed (or spoken on) by the
    server: it must not carry the next request."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class PooledWebClient(WebClient):
    """A ``WebClient`` whose calls share ``pool_size`` kept-alive connections; close it
    with :meth:`close`."""

    def __init__(self, *, token: str, base_url: str, timeout: Any, pool_size: int) -> None:
        super().__init__(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        self.connections = SlackConnections(base_url, timeout=timeout, ssl=self.ssl, size=pool_size)

    def close(self) -> None:
        self.connections.close()

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        parts = urlsplit(url)
        if self.proxy or f"{parts.scheme}://{parts.netloc}".lower() != self.connections.origin:
            return super()._perform_urllib_http_request_internal(url, req)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {k: v for k, v in req.header_items() if k.lower() != "content-length"}
        body = req.data if isinstance(req.data, bytes) else None
        conn = self.connections.take()
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, HTTPException):
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self.connections.give_back(conn)
        if not 200 <= response.status < 300:
            raise urllib.error.HTTPError(
                url, response.status, response.reason, response.msg, io.BytesIO(data)
            )
        if response.msg.get_content_type() == "application/gzip":
            return {"status": response.status, "headers": response.msg, "body": data}
        charset = response.msg.get_content_charset() or "utf-8"
        return {"status": response.status, "headers": response.msg, "body": data.decode(charset)}
