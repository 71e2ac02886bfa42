"""``eyetok run`` answers every request in JSON and writes nothing but JSON lines."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from tests.e2e.daemon import DaemonProcess


def test_unknown_paths_wrong_methods_and_oversized_bodies_are_json_and_so_is_every_line(
    tmp_path: Path,
) -> None:
    with DaemonProcess(tmp_path / "data", {}) as daemon:
        unknown = httpx.get(daemon.url + "/wp-login.php", timeout=5)
        wrong_method = httpx.put(daemon.url + "/healthz", timeout=5)
        hook_method = httpx.get(daemon.url + "/hooks/probe/operator", timeout=5)
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as sock:
            # declared far past any limit; the answer must not wait for the body
            sock.sendall(
                b"POST /slack/events HTTP/1.1\r\nHost: eyetok\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n{"
            )
            oversized = b""
            while chunk := sock.recv(65536):
                oversized += chunk
        code, _ = daemon.terminate()
    assert code == 0
    for answer, status in ((unknown, 404), (wrong_method, 405), (hook_method, 405)):
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json()["error"]
    head, _, body = oversized.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), oversized
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]
    assert daemon.raw, "the daemon wrote nothing"
    not_json = [line for line in daemon.raw if not _is_json_object(line)]
    assert not_json == []
    assert daemon.events("eyetok_stopped")


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
