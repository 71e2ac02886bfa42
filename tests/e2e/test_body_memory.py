"""Anonymous oversized bodies cannot balloon ``eyetok run`` (issue 11, item 6).

The adversarial run sent ten concurrent anonymous 15 MiB bodies to
``PUT /api/v1/tenants/acme/routes``; the daemon went from 218 MB to 1,146 MB RSS and its
loop stalled. Now the API admits the caller before it reads a body and caps every body
it reads (64 KiB), so a burst of them (declared and chunked, on several API routes)
leaves RSS within 20 MB of where it started and a valid hook is answered meanwhile.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.e2e.daemon import DaemonProcess

CONFIG = """
tenants:
  acme: {tier: team}
"""
ACME_HOOK = "acme-hook-token-memory"
BODY = b'{"routes": "' + b"x" * (15 * 1024 * 1024) + b'"}'
ROUTES = [
    ("PUT", "/api/v1/tenants/acme/routes"),
    ("PUT", "/api/v1/tenants/acme/sinks/acme.pager"),
    ("POST", "/api/v1/tenants/acme/tokens"),
    ("POST", "/api/v1/explain"),
    ("POST", "/api/v1/suppressions/cl_1/ack"),
]
SENDERS = 20
MIB = 1024 * 1024


def send_oversized(port: int, method: str, path: str, chunked: bool, statuses: list[str]) -> None:
    """One anonymous sender: the whole 15 MiB unless the daemon answers and closes first."""
    framing = "transfer-encoding: chunked" if chunked else f"content-length: {len(BODY)}"
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(head)
            for start in range(0, len(BODY), 256 * 1024):
                piece = BODY[start : start + 256 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # answered and closed before the body was all sent: what we want
        try:
            answer = sock.recv(256)
        except OSError:
            answer = b""
    statuses.append(answer.split(b" ")[1].decode() if answer.count(b" ") >= 2 else "closed")


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / MIB


def test_a_burst_of_anonymous_oversized_bodies_leaves_rss_where_it_was(tmp_path: Path) -> None:
    (tmp_path / "eyetok.yaml").write_text(CONFIG)
    env = {"EYETOK_CONFIG": str(tmp_path / "eyetok.yaml"), "EYETOK_HOOK_TOKEN_ACME": ACME_HOOK}
    daemon = DaemonProcess(tmp_path / "data", env).start(timeout=60)
    try:
        proc = psutil.Process(daemon.pid)
        hook = {"authorization": f"Bearer {ACME_HOOK}"}
        with httpx.Client(base_url=daemon.url, timeout=15.0) as client:
            for i in range(20):  # warm the paths a burst also takes
                alert = {"title": "warm-up", "dedup_key": f"w{i}"}
                assert client.post("/hooks/generic/acme", json=alert, headers=hook).is_success
                assert client.put("/api/v1/tenants/acme/routes", json={}).status_code == 401
            time.sleep(0.5)
            before = rss_mb(proc)
            peak = before
            statuses: list[str] = []
            senders = [
                threading.Thread(
                    target=send_oversized,
                    args=(daemon.port, *ROUTES[i % len(ROUTES)], i % 2 == 1, statuses),
                )
                for i in range(SENDERS)
            ]
            for sender in senders:
                sender.start()
            started = time.monotonic()
            alert = {"title": "checkout down", "dedup_key": "during-burst", "severity": "high"}
            during = client.post("/hooks/generic/acme", json=alert, headers=hook)
            hook_latency = time.monotonic() - started
            while any(s.is_alive() for s in senders):
                peak = max(peak, rss_mb(proc))
                time.sleep(0.02)
            for sender in senders:
                sender.join()
            time.sleep(0.5)
            after = rss_mb(proc)
            print(
                json.dumps(
                    {
                        "senders": SENDERS,
                        "body_mib": len(BODY) / MIB,
                        "rss_before_mb": round(before, 1),
                        "rss_peak_mb": round(peak, 1),
                        "rss_after_mb": round(after, 1),
                        "hook_during_burst_s": round(hook_latency, 3),
                        "statuses": sorted(statuses),
                    }
                )
            )
            assert during.status_code == 202, during.text
            assert hook_latency < 1.0
            assert sorted(set(statuses)) == ["401"], statuses
            assert peak - before < 20, (before, peak, after)
            assert after - before < 20, (before, peak, after)
            assert client.get("/readyz").status_code == 200
    finally:
        daemon.kill()
