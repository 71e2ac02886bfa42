"""How webhook POSTs travel: h11 (the HTTP/1.1 state machine under httpcore and hypercorn)
on trio streams, over connections to the sink's one origin kept alive between deliveries.

The choice: the sink used to send through ``httpx.AsyncClient``; on the ingest bench
(every alert one webhook) httpx, httpcore and anyio cost about 540 us of CPU more per
POST than h11 driven directly (660 us against 120 us on a local receiver, same body and
headers), most of it in layers this sink does not need: one origin, one method, no
redirects, no proxies, no cookies, no HTTP/2. ``http.client`` in worker threads (what
the Slack sink does) measured 260 us: the thread hop costs more than it saves here.

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
    └── RemoteProtocolError   the answer broke HTTP/1.1 or stopped half-way
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import h11
import trio

KEEPALIVE_S = 30.0  # an idle connection older than this is closed, not reused
MAX_IDLE = 8  # idle connections kept per sink (the delivery actor's lanes per destination)
MAX_DRAINED_BODY = 64 * 1024  # read at most this much of an answer (then drop the connection)
_RECEIVE_BYTES = 64 * 1024


class TransportError(Exception):
    """The exchange failed below HTTP."""


class ConnectError(TransportError):
    """No connection could be opened (DNS, refused, unreachable, TLS handshake)."""


class TransportTimeout(TransportError):
    """No connection, or no answer, within the timeout."""


class RemoteProtocolError(TransportError):
    """The answer broke HTTP/1.1, or the connection closed before it was complete."""


class _StaleConnection(TransportError):
    """A kept connection failed before any byte of an answer came back."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The status line and headers of a webhook answer (names lower-cased)."""

    status: int
    headers: dict[str, str]


class _Connection:
    __slots__ = ("h11", "idle_since", "stream")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0


def default_ssl_context() -> ssl.SSLContext:
    """Verifies chain and host name against certifi's bundle; offers only HTTP/1.1."""
    context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


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
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc_host = f"[{self._host}]" if ":" in self._host else self._host
        default_port = (443 if self._https else 80) == self._port
        host_header = netloc_host if default_port else f"{netloc_host}:{self._port}"
        self._fixed_headers = [("host", host_header), ("user-agent", user_agent)]
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
        request = h11.Request(
            method="POST",
            target=self._target,
            headers=[
                *self._fixed_headers,
                *headers.items(),
                ("content-length", str(len(body))),
            ],
        )
        conn = self._take_idle()
        if conn is not None:
            try:
                return await self._exchange(conn, request, body, kept=True)
            except _StaleConnection:
                pass  # closed by the server while idle: once more on a new connection
        conn = await self._connect()
        return await self._exchange(conn, request, body, kept=False)

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
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        if isinstance(stream, trio.SocketStream):
            stream.socket.close()

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
            conn = _Connection(tcp)
            if self._ssl is not None:
                tls = trio.SSLStream(tcp, self._ssl, server_hostname=self._host)
                conn.stream = tls
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

    async def _exchange(
        self, conn: _Connection, request: h11.Request, body: bytes, *, kept: bool
    ) -> Answer:
        """One request and its answer on ``conn``; ``conn`` goes back to the pool or is
        closed, whatever happens (a cancellation included)."""
        answer: Answer | None = None
        reusable = False
        try:
            with trio.move_on_after(self._timeout_s):
                answer = await self._request(conn, request, body, kept=kept)
                reusable = await self._drain(conn)
        finally:
            if reusable:
                conn.h11.start_next_cycle()
                self._give_back(conn)
            else:
                self._discard(conn)
        if answer is None:
            raise TransportTimeout(f"no answer within {self._timeout_s:g} s")
        return answer  # a timeout while draining the body: the status line is the verdict

    async def _request(
        self, conn: _Connection, request: h11.Request, body: bytes, *, kept: bool
    ) -> Answer:
        """Send the request; read the answer's head."""
        try:
            data = conn.h11.send(request) or b""
            data += conn.h11.send(h11.Data(data=body)) or b""
            data += conn.h11.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:  # a header value no HTTP/1.1 can carry
            raise RemoteProtocolError(f"cannot send the request: {exc}") from exc
        received_any = False
        try:
            await conn.stream.send_all(data)
            while True:
                event = conn.h11.next_event()
                if event is h11.NEED_DATA:
                    chunk = bytes(await conn.stream.receive_some(_RECEIVE_BYTES))
                    received_any = received_any or bool(chunk)
                    conn.h11.receive_data(chunk)
                    continue
                if isinstance(event, h11.Response):
                    headers = {
                        name.decode("latin-1"): value.decode("latin-1")
                        for name, value in event.headers
                    }
                    return Answer(status=event.status_code, headers=headers)
                if isinstance(event, h11.InformationalResponse):
                    continue  # 100 Continue and its kin: the real answer follows
                raise RemoteProtocolError(f"unexpected {type(event).__name__} before the answer")
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError) as exc:
            if kept and not received_any:
                raise _StaleConnection(str(exc)) from exc
            if isinstance(exc, h11.RemoteProtocolError):
                raise RemoteProtocolError(f"{self._host}:{self._port}: {exc}") from exc
            raise RemoteProtocolError(
                f"{self._host}:{self._port} closed the connection: {exc}"
            ) from exc

    async def _drain(self, conn: _Connection) -> bool:
        """Read and drop the answer's body, at most :data:`MAX_DRAINED_BODY`; whether the
        connection can carry the next request."""
        read = 0
        try:
            while True:
                event = conn.h11.next_event()
                if event is h11.NEED_DATA:
                    conn.h11.receive_data(bytes(await conn.stream.receive_some(_RECEIVE_BYTES)))
                elif isinstance(event, h11.Data):
                    read += len(event.data)
                    if read > MAX_DRAINED_BODY:
                        return False
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    return False
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return False
        return conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE
