"""The webhook sink's kept-alive HTTP/1.1 transport against a raw local server in the same
trio loop (it reads each request itself, byte by byte, and answers what the test scripts):
connection reuse, a kept connection the server closed while idle retried once, answers
that end a connection, the drain limit, timeouts on trio's clock, TLS."""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.sinks.webhook.transport import (
    KEEPALIVE_S,
    MAX_DRAINED_BODY,
    ConnectError,
    InvalidRequest,
    RemoteProtocolError,
    TransportTimeout,
    WebhookConnections,
)
from tests.peers.smtp import self_signed_cert, unused_port

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
HEADERS = {"webhook-id": "msg_1", "content-type": "application/json"}


@dataclass
class Seen:
    """One request as the server read it."""

    connection: int  # which accepted connection carried it (0, 1, ...)
    head: bytes
    body: bytes


# script(request number, connection number) -> (bytes to answer, close the connection after)
# or None: never answer (the connection stays open, silent)
Script = Callable[[int, int], tuple[bytes, bool] | None]


@dataclass
class RawServer:
    script: Script
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed: int = 0  # connections the client closed (EOF seen by the server)
    port: int = 0

    async def serve(self, stream: trio.abc.Stream) -> None:
        number = self.connections
        self.connections += 1
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        self.closed += 1
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                body, buffer = buffer[:length], buffer[length:]
                self.requests.append(Seen(connection=number, head=head, body=body))
                answer = self.script(len(self.requests) - 1, number)
                if answer is None:
                    await trio.sleep_forever()
                    return
                data, close = answer
                await stream.send_all(data)
                if close:
                    await stream.aclose()
                    return
        except trio.BrokenResourceError:
            self.closed += 1


async def start(
    nursery: trio.Nursery, script: Script, *, tls: ssl.SSLContext | None = None
) -> RawServer:
    server = RawServer(script)

    async def handler(stream: trio.SocketStream) -> None:
        if tls is None:
            await server.serve(stream)
            return
        wrapped = trio.SSLStream(stream, tls, server_side=True)
        try:
            await wrapped.do_handshake()
        except trio.BrokenResourceError:
            return  # the client refused our certificate
        await server.serve(wrapped)

    serve = functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    server.port = listeners[0].socket.getsockname()[1]
    return server


def connections_to(
    server: RawServer, *, timeout_s: float = 10.0, scheme: str = "http", **kw: object
) -> WebhookConnections:
    return WebhookConnections(
        f"{scheme}://127.0.0.1:{server.port}/hooks/eyetok?tenant=acme",
        timeout_s=timeout_s,
        connect_timeout_s=min(5.0, timeout_s),
        user_agent="EyeTok-Webhooks/1",
        **kw,  # type: ignore[arg-type]
    )


def always(answer: bytes, *, close: bool = False) -> Script:
    return lambda _request, _connection: (answer, close)


async def test_a_post_carries_its_body_and_headers_and_the_connection_is_kept(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, always(OK))
    pool = connections_to(server)
    for i in range(3):
        answer = await pool.post(b'{"n": %d}' % i, HEADERS)
        assert answer.status == 200
    assert pool.opened == 1
    assert server.connections == 1
    assert [r.body for r in server.requests] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    head = server.requests[0].head.decode().lower()
    assert head.startswith("post /hooks/eyetok?tenant=acme http/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}" in head
    assert "user-agent: eyetok-webhooks/1" in head
    assert "webhook-id: msg_1" in head
    assert "content-length: 8" in head
    await pool.aclose()


async def test_headers_come_back_lower_cased_and_redirects_are_not_followed(
    nursery: trio.Nursery,
) -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.example/\r\n"
    moved += b"Content-Length: 0\r\n\r\n"
    server = await start(nursery, always(moved))
    pool = connections_to(server)
    answer = await pool.post(b"{}", HEADERS)
    assert answer.status == 302
    assert answer.headers["location"] == "http://elsewhere.example/"
    assert len(server.requests) == 1  # nothing went to the Location
    await pool.aclose()


async def test_a_kept_connection_the_server_closed_while_idle_is_retried_once(
    nursery: trio.Nursery,
) -> None:
    # The server answers keep-alive, then closes the connection right after (as one
    # whose idle timeout is shorter than ours does): the next POST finds it dead.
    server = await start(nursery, always(OK, close=True))
    pool = connections_to(server)
    assert (await pool.post(b"1", HEADERS)).status == 200
    await trio.testing.wait_all_tasks_blocked()  # the server's close has happened
    assert (await pool.post(b"2", HEADERS)).status == 200
    assert pool.opened == 2
    assert [(r.connection, r.body) for r in server.requests] == [(0, b"1"), (1, b"2")]
    await pool.aclose()


async def test_a_new_connection_that_breaks_before_the_answer_is_not_retried(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, always(b"", close=True))  # reads, then hangs up
    pool = connections_to(server)
    with pytest.raises(RemoteProtocolError):
        await pool.post(b"1", HEADERS)
    assert len(server.requests) == 1
    await pool.aclose()


async def test_an_answer_that_closes_the_connection_ends_it(nursery: trio.Nursery) -> None:
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    server = await start(nursery, always(closing, close=True))
    pool = connections_to(server)
    assert (await pool.post(b"1", HEADERS)).status == 200
    assert (await pool.post(b"2", HEADERS)).status == 200
    assert pool.opened == 2  # the second went on a new connection, not retried
    assert len(server.requests) == 2
    await pool.aclose()


async def test_a_large_answer_is_read_up_to_the_limit_and_the_connection_dropped(
    nursery: trio.Nursery,
) -> None:
    size = MAX_DRAINED_BODY * 4
    big = b"HTTP/1.1 503 Busy\r\nRetry-After: 9\r\nContent-Length: %d\r\n\r\n" % size
    big += b"x" * size
    server = await start(nursery, always(big))
    pool = connections_to(server)
    answer = await pool.post(b"1", HEADERS)
    assert (answer.status, answer.headers["retry-after"]) == (503, "9")
    small = await pool.post(b"2", HEADERS)
    assert small.status == 503
    assert pool.opened == 2  # the first connection was not reused
    await pool.aclose()


async def test_a_small_answer_body_is_drained_and_the_connection_reused(
    nursery: trio.Nursery,
) -> None:
    body = b'{"ok": true}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    server = await start(nursery, always(answer))
    pool = connections_to(server)
    for _ in range(2):
        assert (await pool.post(b"1", HEADERS)).status == 200
    assert pool.opened == 1
    await pool.aclose()


@pytest.mark.parametrize(
    ("answer", "reused"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),  # 1.0: closes after
        (OK + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False),  # one answer too many
    ],
    ids=["chunked", "100-continue", "http-1.0", "extra-answer"],
)
async def test_how_an_answer_ends_decides_whether_its_connection_is_kept(
    nursery: trio.Nursery, answer: bytes, reused: bool
) -> None:
    server = await start(nursery, always(answer))
    pool = connections_to(server)
    for _ in range(2):
        assert (await pool.post(b"1", HEADERS)).status == 200
    assert pool.opened == (1 if reused else 2)
    assert len(server.requests) == 2
    await pool.aclose()


async def test_an_answer_that_is_not_http_is_a_protocol_error(nursery: trio.Nursery) -> None:
    server = await start(nursery, always(b"SSH-2.0-OpenSSH_9.6\r\n"))
    pool = connections_to(server)
    with pytest.raises(RemoteProtocolError, match=r"not HTTP/1\.1"):
        await pool.post(b"1", HEADERS)
    await pool.aclose()


async def test_a_header_that_would_split_the_request_is_never_sent(
    nursery: trio.Nursery,
) -> None:
    server = await start(nursery, always(OK))
    pool = connections_to(server)
    with pytest.raises(InvalidRequest):
        await pool.post(b"1", {**HEADERS, "webhook-id": "msg_1\r\nx-injected: 1"})
    assert pool.opened == 0
    assert server.requests == []
    with pytest.raises(InvalidRequest):
        await pool.post(b"1", {**HEADERS, "webhook-id": "msg_ü"})
    with pytest.raises(ValueError, match="cannot be written"):
        WebhookConnections(
            "http://127.0.0.1/", timeout_s=1.0, connect_timeout_s=1.0, user_agent="x\r\ny: 1"
        )


async def test_a_non_ascii_path_is_percent_encoded(nursery: trio.Nursery) -> None:
    server = await start(nursery, always(OK))
    pool = WebhookConnections(
        f"http://127.0.0.1:{server.port}/hooks/übung?q=ä",
        timeout_s=10.0,
        connect_timeout_s=5.0,
        user_agent="EyeTok-Webhooks/1",
    )
    assert (await pool.post(b"1", HEADERS)).status == 200
    assert server.requests[0].head.startswith(b"POST /hooks/%C3%BCbung?q=%C3%A4 HTTP/1.1\r\n")
    await pool.aclose()


async def test_no_answer_in_time_is_a_timeout_and_the_connection_is_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, lambda request, _c: None if request == 0 else (OK, False))
    pool = connections_to(server, timeout_s=2.0)
    before = trio.current_time()
    with pytest.raises(TransportTimeout, match="no answer within 2 s"):
        await pool.post(b"1", HEADERS)
    assert trio.current_time() - before == pytest.approx(2.0)
    assert (await pool.post(b"2", HEADERS)).status == 200
    assert pool.opened == 2  # the silent connection was not reused
    await pool.aclose()


async def test_a_connection_idle_past_the_keepalive_is_not_reused(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, always(OK))
    pool = connections_to(server)
    assert (await pool.post(b"1", HEADERS)).status == 200
    await trio.sleep(KEEPALIVE_S + 1)
    assert (await pool.post(b"2", HEADERS)).status == 200
    assert pool.opened == 2
    await trio.testing.wait_all_tasks_blocked()
    assert server.closed == 1  # the old one was closed, not left open
    await pool.aclose()


async def test_a_cancelled_post_closes_its_connection(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start(nursery, lambda request, _c: None if request == 0 else (OK, False))
    pool = connections_to(server)
    with trio.move_on_after(1.0):
        await pool.post(b"1", HEADERS)
    assert (await pool.post(b"2", HEADERS)).status == 200
    assert pool.opened == 2
    await pool.aclose()


async def test_a_body_larger_than_the_socket_buffers_goes_out_whole(
    nursery: trio.Nursery,
) -> None:
    # More than the kernel takes in one send: the rest waits until the receiver reads.
    body = bytes(range(256)) * (16 * 1024)  # 4 MiB
    server = await start(nursery, always(OK))
    pool = connections_to(server)
    assert (await pool.post(body, HEADERS)).status == 200
    assert (await pool.post(b"after", HEADERS)).status == 200
    assert [r.body for r in server.requests] == [body, b"after"]
    assert pool.opened == 1
    await pool.aclose()


async def test_a_receiver_that_stops_reading_mid_request_times_out_and_is_dropped(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    accepted: list[trio.SocketStream] = []

    async def never_reads(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        await trio.sleep_forever()

    serve = functools.partial(trio.serve_tcp, never_reads, 0, host="127.0.0.1")
    listeners = await nursery.start(serve)
    port = listeners[0].socket.getsockname()[1]
    pool = WebhookConnections(
        f"http://127.0.0.1:{port}/hooks",
        timeout_s=2.0,
        connect_timeout_s=2.0,
        user_agent="EyeTok-Webhooks/1",
    )
    with pytest.raises(TransportTimeout, match="no answer within 2 s"):
        await pool.post(b"x" * (64 * 1024 * 1024), HEADERS)
    assert len(accepted) == 1
    assert await accepted[0].receive_some(1) == b"P"  # the request had begun ...
    await pool.aclose()
    with trio.fail_after(5):  # ... and its connection was closed, not kept
        while await accepted[0].receive_some(1024 * 1024):
            pass


async def test_a_post_whose_deadline_has_passed_sends_nothing(nursery: trio.Nursery) -> None:
    server = await start(nursery, always(OK))
    pool = connections_to(server)
    assert (await pool.post(b"1", HEADERS)).status == 200
    with trio.CancelScope() as scope:
        scope.cancel()
        await pool.post(b"2", HEADERS)
    assert scope.cancelled_caught
    assert (await pool.post(b"3", HEADERS)).status == 200
    assert [r.body for r in server.requests] == [b"1", b"3"]
    await pool.aclose()


async def test_a_refused_connection_is_a_connect_error() -> None:
    pool = WebhookConnections(
        f"http://127.0.0.1:{unused_port()}/hooks",
        timeout_s=10.0,
        connect_timeout_s=5.0,
        user_agent="EyeTok-Webhooks/1",
    )
    with pytest.raises(ConnectError, match=r"127\.0\.0\.1"):
        await pool.post(b"1", HEADERS)
    assert pool.opened == 0


async def test_https_verifies_the_server_and_keeps_the_connection(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    files = self_signed_cert(tmp_path)
    if files is None:
        pytest.skip("neither cryptography nor openssl can make a certificate")
    server = await start(nursery, always(OK), tls=files.server_context())
    pool = connections_to(server, scheme="https", ssl_context=files.client_context())
    for _ in range(2):
        assert (await pool.post(b"{}", HEADERS)).status == 200
    assert pool.opened == 1
    assert [r.body for r in server.requests] == [b"{}", b"{}"]
    await pool.aclose()
    # The default context (certifi's CAs) refuses the self-signed certificate.
    untrusting = connections_to(server, scheme="https")
    with pytest.raises(ConnectError, match=r"TLS with 127\.0\.0\.1"):
        await untrusting.post(b"{}", HEADERS)
    assert len(server.requests) == 2
