"""The lifecycle every local peer shares, written once.

A peer is a server on 127.0.0.1 in a daemon thread (``serve_forever``), driven from
plain pytest, from trio tests (through worker threads) and from the drill harness:

* :class:`Startable` — ``with peer:`` is ``peer.start()`` … ``peer.stop()``;
* :class:`LocalServer` — ``start()`` binds (the subclass's :meth:`LocalServer._bind`) and
  serves in a thread named after the peer and its port; ``stop()`` shuts the server down,
  cuts the connections its handlers are still holding open (idle keep-alive) and joins
  the thread; ``port``; one :class:`threading.Condition` (``_cond``) guarding the peer's
  records, which handler threads notify and :meth:`LocalServer._wait` waits on;
* :class:`HttpPeer` — a :class:`LocalServer` over :class:`PeerHTTPServer` with
  ``base_url``; its handlers derive from :class:`PeerHTTPHandler` (quiet, tracked,
  answers JSON);
* :func:`serve_until_signalled` — a peer run as its own process until SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType, TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "HttpPeer",
    "LocalServer",
    "PeerHTTPHandler",
    "PeerHTTPServer",
    "PeerServer",
    "Startable",
    "TrackedHandler",
    "serve_until_signalled",
]


class Startable:
    """``with peer:`` starts it and stops it, whatever happened inside."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalServer(Startable):
    """A peer's server in a daemon thread. Thread-safe.

    A subclass sets ``label`` (its name in errors: "FakeSlack already started") and
    ``thread_name`` (``{port}`` is filled in) and implements :meth:`_bind`.
    """

    label: ClassVar[str]
    thread_name: ClassVar[str]
    poll_interval: ClassVar[float] = 0.05  # how soon stop() is noticed

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port  # the one asked for; 0 = a free one
        self._cond = threading.Condition()
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    def _bind(self) -> socketserver.TCPServer:
        """A bound, listening server on ``(self._host, self._port)``."""
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self.label} already started")
        server = self._bind()
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=self.thread_name.format(port=server.server_address[1]),
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._cond:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:  # unblock handler threads idling on keep-alive
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.label} is not started")
        return int(self._server.server_address[1])

    # -- for handler threads and waiters --------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._cond:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block (real time: a worker thread, never the event loop) until ``predicate``
        holds under the lock, at most ``timeout`` seconds; whether it held."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout=timeout)

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """:meth:`_until`, and an ``AssertionError`` naming ``what`` was expected and
        what the peer saw (:meth:`_seen`) if it did not come in time."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout=timeout):
                raise AssertionError(
                    f"{self.label}: expected {what} within {timeout}s; {self._seen()}"
                )

    def _seen(self) -> str:
        """What arrived, for a timed-out :meth:`_wait` (called under the lock)."""
        return ""


class PeerServer(socketserver.ThreadingTCPServer):
    """A thread per connection; knows the peer it serves (``peer``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        peer: LocalServer,
        address: tuple[str, int],
        handler: type[socketserver.BaseRequestHandler],
        *,
        backlog: int = 5,
    ) -> None:
        self.peer = peer
        self.request_queue_size = backlog
        super().__init__(address, handler)


class PeerHTTPServer(PeerServer, HTTPServer):
    """:class:`PeerServer` binding as :class:`http.server.ThreadingHTTPServer` does."""


class TrackedHandler(socketserver.StreamRequestHandler):
    """A connection its peer can cut at ``stop()``."""

    @property
    def peer(self) -> LocalServer:
        server = self.server
        assert isinstance(server, PeerServer)
        return server.peer

    def setup(self) -> None:
        super().setup()
        self.peer._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.peer._track(self.connection, add=False)


class PeerHTTPHandler(TrackedHandler, BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no per-request logging, JSON answers."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    json_type: ClassVar[str] = "application/json"
    say_close: ClassVar[bool] = False  # "Connection: close" when dropping the connection

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", self.json_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            if self.say_close and self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # client went away (timed out, peer stopped, ...)
            self.close_connection = True


class HttpPeer(LocalServer):
    """A :class:`LocalServer` speaking HTTP through ``handler``."""

    handler: ClassVar[type[PeerHTTPHandler]]
    backlog: ClassVar[int] = 5

    def _bind(self) -> socketserver.TCPServer:
        return PeerHTTPServer(self, (self._host, self._port), self.handler, backlog=self.backlog)

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"


def serve_until_signalled(peer: LocalServer, announce: Callable[[], Mapping[str, Any]]) -> int:
    """Serve ``peer`` until SIGTERM/SIGINT; once started, ``announce()`` goes to stdout
    as one JSON line (where the parent process finds it)."""
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with peer:
        sys.stdout.write(json.dumps(announce()) + "\n")
        sys.stdout.flush()
        while not stopping.wait(0.5):
            pass
    return 0
