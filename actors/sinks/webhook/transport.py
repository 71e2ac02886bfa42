"""How webhook POSTs travel: over connections to the sink's one origin kept alive between
deliveries (plain TCP through non-blocking socket calls, :class:`_PlainTCP`; TLS through
trio's streams); answers parsed by httptools (llhttp, the parser of Node.js and uvicorn),
requests written here.

The choice: the sink used to send through ``httpx.AsyncClient``; on the ingest bench
(every alert one webhook) httpx, httpcore, h11 and anyio cost about 540 us of CPU more
per POST than h11 driven directly (660 us against 120 us on a local receiver, same body
and headers), most of it in layers this sink does not need: one origin, one method, no
redirects, no proxies, no cookies, no HTTP/2. ``http.client`` in worker threads (what
the Slack sink does) measured 260 us: the thread hop costs more than it saves here.
Of h11's 120 us most is its pure-Python state machine and header validation (125 us
against 4 us for the same request and answer through httptools, measured side by side),
so the answer is read with httptools, a C parser that handles what a receiver may send
(chunked bodies, HTTP/1.0, ``Connection: close``, 1xx). The request is the one thing
written by hand: one fixed method and target (non-ASCII percent-encoded, as httpx does),
and headers this module checks for CR, LF, NUL and non-ASCII (:class:`InvalidRequest`),
so no header can split the request.

What a POST does:

- it takes the newest idle connection younger than :data:`KEEPALIVE_S`, or opens one
  (TCP, then TLS for ``https``; both within the connect timeout);
- it sends the request and reads the answer's head within the timeout; the body is
  read (and dropped) up to :data:`MAX_DRAINED_BODY`: a larger one closes the connection,
  and a failure while reading the body leaves the status standing (it is the verdict);
- the connection goes back to the pool only when both sides finished the exchange and
  neither asked to close it; a cancelled or failed exchange closes it;
- a kept connection the server closed while idle (nothing of an answer came back:
  EOF, reset, broken pipe) is retried once on a new connection: a receiver that closed
  it did not read the request, and the ``webhook-id`` lets one that did drop the repeat.

Nothing is read from the environment (no proxy, no ``SSL_CERT_FILE``): TLS verifies
against certifi's CA bundle, as httpx did. Redirects are answers like any other.

Errors (each names what failed; the sink turns all of them into a retry)::

    TransportError            the exchange failed below HTTP
    ├── ConnectError          no connection: DNS, refused, unreachable, TLS handshake
    ├── TransportTimeout      no connection or no answer in time
    ├── RemoteProtocolError   the answer broke HTTP/1.1 or stopped half-way
    └── InvalidRequest        a header value HTTP/1.1 cannot carry (CR, LF, NUL, not ASCII)
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import httptools
import trio

from eyetok.tls import certifi_context

KEEPALIVE_S = 30.0  # an idle connection older than this is closed, not reused
MAX_IDLE = 8  # idle connections kept per sink (the delivery actor's lanes per destination)
MAX_DRAINED_BODY = 64 * 1024  # read at most this much of an answer (then drop the connection)
_RECEIVE_BYTES = 64 * 1024
_UNSAFE = re.compile(r"[\r\n\x00]")  # would end a header line (or confuse a parser)
_NO_SCOPE = contextlib.nullcontext()


class TransportError(Exception):
    """The exchange failed below HTTP."""


class ConnectError(TransportError):
    """No connection could be opened (DNS, refused, unreachable, TLS handshake)."""


class TransportTimeout(TransportError):
    """No connection, or no answer, within the timeout."""


class RemoteProtocolError(TransportError):
    """The answer broke HTTP/1.1, or the connection closed before it was complete."""


class InvalidRequest(TransportError):
    """A header of the request cannot be written as HTTP/1.1 (CR, LF or NUL)."""


class _StaleConnection(TransportError):
    """A kept connection failed before any byte of an answer came back."""


# what trio's SocketStream reads as "this socket was closed here" (else: broken)
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


class _PlainTCP:
    """A plain TCP connection driven by non-blocking socket calls, with trio's
    ``wait_writable``/``wait_readable`` only when the kernel says "not now" (EAGAIN).

    Why not ``trio.SocketStream``: each of its socket calls costs two scheduler round
    trips (a cancellation check and a schedule point) besides the system call, about
    half of a delivery's CPU on a local receiver. Here a POST costs one schedule point:
    the wait for its answer, which is also where a cancellation or timeout lands. Errors
    read as trio's streams read them (:class:`trio.BrokenResourceError`,
    :class:`trio.ClosedResourceError`), so callers cannot tell the two apart.
    """

    __slots__ = ("answer_due", "sock")

    def __init__(self, tcp: trio.SocketStream) -> None:
        self.sock = socket.socket(fileno=tcp.socket.detach())
        self.sock.setblocking(False)
        self.answer_due = False  # a request went out: wait for its answer before reading

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()  # a deadline already past sends nothing
        sock = self.sock
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(view):
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
        except OSError as exc:
            raise _stream_error(exc) from exc
        self.answer_due = True

    async def receive_some(self, max_bytes: int) -> bytes:
        sock = self.sock
        try:
            if self.answer_due:  # it cannot be there yet: no recv that says EAGAIN
                self.answer_due = False
                await trio.lowlevel.wait_readable(sock)
            while True:
                try:
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
        except OSError as exc:
            raise _stream_error(exc) from exc

    def close(self) -> None:
        if self.sock.fileno() != -1:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()


def _stream_error(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


@dataclass(frozen=True, slots=True)
class Answer:
    """The status line and headers of a webhook answer (names lower-cased)."""

    status: int
    headers: dict[str, str]


class _Connection:
    """One connection and the parser of its answers (httptools calls the ``on_*``
    methods from ``feed_data``)."""

    __slots__ = (
        "body_read",
        "complete",
        "extra",
        "head",
        "headers",
        "idle_since",
        "keep_alive",
        "parser",
        "status",
        "stream",
    )

    def __init__(self, stream: _PlainTCP | trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self.parser = httptools.HttpResponseParser(self)
        self.idle_since = 0.0
        self.expect()

    def expect(self) -> None:
        """Ready for the answer to the next request."""
        self.headers: list[tuple[bytes, bytes]] = []
        self.status = 0
        self.head = False  # the final answer's head is in
        self.complete = False  # ... and its whole body
        self.keep_alive = False
        self.body_read = 0
        self.extra = False  # bytes after the answer: the connection is not trusted again

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            raise RemoteProtocolError(f"the answer is not HTTP/1.1: {exc}") from exc

    # httptools' callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue and its kin: the real answer follows
            self.headers = []
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self.head = True

    def on_body(self, body: bytes) -> None:
        self.body_read += len(body)

    def on_message_complete(self) -> None:
        if self.head:
            self.complete = True


def default_ssl_context() -> ssl.SSLContext:
    """Verifies chain and host name against certifi's bundle; offers only HTTP/1.1. The
    process's one such context (eyetok/tls.py), made by the first https sink."""
    return certifi_context()


class WebhookConnections:
    """POSTs to one URL over kept-alive connections; close with :meth:`aclose`."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        connect_timeout_s: float,
        user_agent: str,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._target = quote(target, safe="!#$%&'()*+,/:;=?@[]~")  # non-ASCII as %XX, as httpx
        ascii_host = self._host.encode("idna").decode("ascii")
        netloc_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
        default_port = (443 if self._https else 80) == self._port
        host_header = netloc_host if default_port else f"{netloc_host}:{self._port}"
        self._head = (
            f"POST {self._target} HTTP/1.1\r\nhost: {host_header}\r\nuser-agent: {user_agent}\r\n"
        )
        if _UNSAFE.search(f"{host_header}{user_agent}") or not user_agent.isascii():
            raise ValueError(f"the URL or user agent cannot be written as HTTP/1.1: {url!r}")
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._ssl = (
            ssl_context
            if ssl_context is not None
            else (default_ssl_context() if self._https else None)
        )
        self._idle: list[_Connection] = []
        self.opened = 0  # connections opened so far (for tests and benches)

    async def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Send one POST; its answer, or a :class:`TransportError`."""
        if _UNSAFE.search("".join(headers)) or _UNSAFE.search("".join(headers.values())):
            raise InvalidRequest(f"a header carries CR, LF or NUL: {sorted(headers)}")
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        try:
            head = f"{self._head}{lines}content-length: {len(body)}\r\n\r\n".encode("ascii")
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"a header is not ASCII: {sorted(headers)}") from exc
        request = head + body
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, request, kept=True)
            except _StaleConnection:
                pass  # closed by the server while idle: once more on a new connection
        conn = await self._connect()
        return await self._exchange(conn, request, kept=False)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)
        await trio.lowlevel.checkpoint()

    def _take_idle(self) -> _Connection | None:
        now = trio.current_time()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < KEEPALIVE_S:
                return conn
            self._discard(conn)
        return None

    def _discard(self, conn: _Connection) -> None:
        """Close a connection without waiting (no TLS close_notify)."""
        stream = conn.stream
        if isinstance(stream, _PlainTCP):
            stream.close()
        else:
            stream.transport_stream.socket.close()

    def _give_back(self, conn: _Connection) -> None:
        if len(self._idle) >= MAX_IDLE:
            self._discard(conn)
            return
        conn.idle_since = trio.current_time()
        self._idle.append(conn)

    async def _connect(self) -> _Connection:
        with trio.move_on_after(self._connect_timeout_s):
            try:
                tcp = await trio.open_tcp_stream(self._host, self._port)
            except OSError as exc:
                raise ConnectError(f"{self._host}:{self._port}: {exc}") from exc
            if self._ssl is None:
                self.opened += 1
                return _Connection(_PlainTCP(tcp))
            tls = trio.SSLStream(tcp, self._ssl, server_hostname=self._host)
            conn = _Connection(tls)
            shook = False
            try:
                await tls.do_handshake()
                shook = True
            except (trio.BrokenResourceError, ssl.SSLError) as exc:
                raise ConnectError(f"TLS with {self._host}:{self._port}: {exc}") from exc
            finally:
                if not shook:  # failed or cancelled half-way
                    self._discard(conn)
            self.opened += 1
            return conn
        raise TransportTimeout(
            f"no connection to {self._host}:{self._port} within {self._connect_timeout_s:g} s"
        )

    async def _exchange(self, conn: _Connection, request: bytes, *, kept: bool) -> Answer:
        """One request and its answer on ``conn``; ``conn`` goes back to the pool or is
        closed, whatever happens (a cancellation included)."""
        answer: Answer | None = None
        reusable = False
        deadline = trio.current_time() + self._timeout_s
        # A caller's deadline that comes first (the delivery actor's attempt deadline)
        # would end the exchange before this one, and the outermost cancelled scope is
        # the one that catches: a scope of our own would never fire, so none is entered.
        own = trio.current_effective_deadline() > deadline
        try:
            with trio.CancelScope(deadline=deadline) if own else _NO_SCOPE:
                answer = await self._request(conn, request, kept=kept)
                reusable = await self._drain(conn)
        finally:
            if reusable:
                conn.expect()
                self._give_back(conn)
            else:
                self._discard(conn)
        if answer is None:
            raise TransportTimeout(f"no answer within {self._timeout_s:g} s")
        return answer  # a timeout while draining the body: the status line is the verdict

    async def _request(self, conn: _Connection, request: bytes, *, kept: bool) -> Answer:
        """Send the request; read the answer's head."""
        received_any = False
        try:
            await conn.stream.send_all(request)
            while not conn.head:
                chunk = await conn.stream.receive_some(_RECEIVE_BYTES)
                if not chunk:
                    raise trio.BrokenResourceError("closed before an answer")
                received_any = True
                conn.feed(bytes(chunk))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if kept and not received_any:
                raise _StaleConnection(str(exc)) from exc
            raise RemoteProtocolError(
                f"{self._host}:{self._port} closed the connection: {exc}"
            ) from exc
        headers = {name.decode("latin-1").lower(): v.decode("latin-1") for name, v in conn.headers}
        return Answer(status=conn.status, headers=headers)

    async def _drain(self, conn: _Connection) -> bool:
        """Read and drop the answer's body, at most :data:`MAX_DRAINED_BODY`; whether the
        connection can carry the next request."""
        try:
            while not conn.complete and conn.body_read <= MAX_DRAINED_BODY:
                chunk = await conn.stream.receive_some(_RECEIVE_BYTES)
                if not chunk:
                    return False
                conn.feed(bytes(chunk))
        except (trio.BrokenResourceError, trio.ClosedResourceError, RemoteProtocolError):
            return False
        return (
            conn.complete
            and conn.keep_alive
            and not conn.extra
            and conn.body_read <= MAX_DRAINED_BODY
        )
