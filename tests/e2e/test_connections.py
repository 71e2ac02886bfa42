"""Connections against ``eyetok run``, from a raw socket: closed as HTTP requires, stalled
ones closed after the configured timeouts, and valid hooks answered meanwhile."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.daemon import DaemonProcess

HOOK_TOKEN = "connections-test-hook-token"
IDLE_TIMEOUT_S = 1
READ_TIMEOUT_S = 2
PROBE = json.dumps(
    {
        "server": "registry.npmjs.org",
        "verdict": "ok",
        "error_kind": "tls_handshake",
        "asn": 13335,
        "registry": "npm",
        "region": "us-east-1",
        "observed_at": "2026-11-23T16:05:41Z",
    }
).encode()


def _daemon(base: Path, http: str) -> DaemonProcess:
    config = base / "eyetok.yaml"
    config.write_text(f"http: {http}\n")
    env = {"EYETOK_CONFIG": str(config), "EYETOK_HOOK_TOKEN": HOOK_TOKEN}
    return DaemonProcess(base / "data", env)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """The default timeouts (75 s idle): a close seen within seconds follows the answer."""
    with _daemon(tmp_path_factory.mktemp("patient"), "{}") as running:
        yield running


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """Short timeouts, as a test can wait for them."""
    timeouts = f"{{idle_timeout_s: {IDLE_TIMEOUT_S}, read_timeout_s: {READ_TIMEOUT_S}}}"
    with _daemon(tmp_path_factory.mktemp("strict"), timeouts) as running:
        yield running


def _connect(daemon: DaemonProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", daemon.port), timeout=10)


def _read_until_closed(sock: socket.socket, *, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the socket (a reset is a close too),
    and how long that took; fails if the socket is still open after ``within`` seconds."""
    started = time.monotonic()
    received = b""
    sock.settimeout(within)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"still open after {within}s; received {received[:200]!r}")
    return received, time.monotonic() - started


def _hook_request(version: str = "1.1", connection: str | None = None) -> bytes:
    head = [
        f"POST /hooks/probe/operator HTTP/{version}",
        "Host: eyetok",
        f"Authorization: Bearer {HOOK_TOKEN}",
        "Content-Type: application/json",
        f"Content-Length: {len(PROBE)}",
    ]
    if connection:
        head.append(f"Connection: {connection}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + PROBE


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: eyetok\r\nConnection: close\r\n\r\n", b"200"),
        (b"GET /healthz HTTP/1.0\r\n\r\n", b"200"),
        (b"GET /no/such/path HTTP/1.1\r\nHost: eyetok\r\nConnection: close\r\n\r\n", b"404"),
        (b"DELETE /readyz HTTP/1.0\r\n\r\n", b"405"),
        (_hook_request(connection="close"), b"202"),
        (_hook_request(version="1.0"), b"202"),
    ],
    ids=["close-quart", "http10-quart", "close-404", "http10-405", "close-hook", "http10-hook"],
)
def test_the_server_closes_after_answering_connection_close_or_http10(
    daemon: DaemonProcess, request_bytes: bytes, status: bytes
) -> None:
    with _connect(daemon) as sock:
        sock.sendall(request_bytes)
        # far inside the 75 s idle timeout: the close follows the answer, not a timeout
        answer, _ = _read_until_closed(sock, within=10)
    assert answer.split(b" ", 2)[1] == status, answer
    assert b"\r\ncontent-type: application/json" in answer.lower(), answer


def test_keep_alive_serves_a_second_request_on_the_same_socket(daemon: DaemonProcess) -> None:
    with _connect(daemon) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: eyetok\r\n\r\n")
        first = b""
        while not first.endswith(b"}\n"):  # {"status":"alive"}, the whole first answer
            first += sock.recv(65536)
        sock.sendall(_hook_request(connection="close"))
        second, _ = _read_until_closed(sock, within=5)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert second.startswith(b"HTTP/1.1 202"), second


def test_half_a_header_is_closed_after_the_idle_timeout_even_when_trickled(
    strict: DaemonProcess,
) -> None:
    with _connect(strict) as stalled, _connect(strict) as trickling:
        stalled.sendall(b"POST /hooks/probe/operator HTTP/1.1\r\nHost: eyet")
        started = time.monotonic()
        trickling.settimeout(0.2)
        closed = False
        for byte in b"POST /hooks/probe/operator HTTP/1.1\r\nHost: eyetok\r\nX-Slow: abcdefghij":
            try:
                trickling.sendall(bytes([byte]))
                if trickling.recv(1) == b"":  # waits 0.2 s for the server to close
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # a reset: closed too
                closed = True
                break
        trickled_s = time.monotonic() - started
        received, _ = _read_until_closed(stalled, within=IDLE_TIMEOUT_S + 5)
        stalled_s = time.monotonic() - started
    assert closed, "a trickled header held its connection past every byte"
    assert trickled_s < IDLE_TIMEOUT_S + 5, trickled_s  # trickling all of it takes 14 s
    assert IDLE_TIMEOUT_S * 0.8 <= stalled_s < IDLE_TIMEOUT_S + 5, stalled_s
    assert received == b"", received


def test_a_stalled_body_is_closed_after_the_read_timeout(strict: DaemonProcess) -> None:
    with _connect(strict) as sock:
        head = _hook_request().split(b"\r\n\r\n")[0]
        sock.sendall(head + b"\r\n\r\n" + PROBE[:10])
        _, seconds = _read_until_closed(sock, within=READ_TIMEOUT_S + 6)
    assert READ_TIMEOUT_S * 0.8 <= seconds < READ_TIMEOUT_S + 6, seconds


def test_many_stalled_connections_do_not_stop_valid_hooks_and_are_all_closed(
    strict: DaemonProcess,
) -> None:
    stalled = [_connect(strict) for _ in range(300)]
    try:
        for i, sock in enumerate(stalled):
            sock.sendall(b"POST /hooks/probe/operator HTTP/1.1\r\nHost: e" if i % 2 else b"G")
        started = time.monotonic()
        answer = httpx.post(
            strict.url + "/hooks/probe/operator",
            content=PROBE,
            headers={"authorization": f"Bearer {HOOK_TOKEN}"},
            timeout=5,
        )
        answered_s = time.monotonic() - started
        assert answer.status_code == 202, answer.text
        assert answered_s < 3.0, answered_s  # 0.2 s unloaded; bench/slowloris.py measures
        deadline = time.monotonic() + READ_TIMEOUT_S + 6
        for sock in stalled:
            _read_until_closed(sock, within=max(0.1, deadline - time.monotonic()))
    finally:
        for sock in stalled:
            sock.close()
