"""Stalled connections against ``eyetok run``: valid hooks still answered, stalled ones closed.

    uv run python bench/slowloris.py                       # 4,000 stalled, idle 5 s, read 10 s
    uv run python bench/slowloris.py -n 1000 --idle 3 --read 6

Opens N connections to a fresh daemon (127.0.0.1 only), each stalled part way: half of
them in the middle of a request's headers, half with complete headers and part of the
body. Then sends ``--hooks`` valid bearer-token hooks one at a time and reports their
latency, and waits for the server to close the stalled connections: headers-stalled ones
after ``http.idle_timeout_s``, body-stalled ones after ``http.read_timeout_s``. Prints
one JSON object. Bounded: N connections, the hooks, and ``read + 10`` seconds of waiting.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.daemon import DaemonProcess

TOKEN = "slowloris-bench-token"
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
HEADER_STALL = b"POST /hooks/probe/operator HTTP/1.1\r\nHost: eyetok\r\nX-Slow: "
BODY_STALL = (
    b"POST /hooks/probe/operator HTTP/1.1\r\nHost: eyetok\r\n"
    b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 4096\r\n\r\n{"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4000, help="stalled connections")
    parser.add_argument("--idle", type=int, default=5, help="http.idle_timeout_s")
    parser.add_argument("--read", type=int, default=10, help="http.read_timeout_s")
    parser.add_argument("--hooks", type=int, default=20, help="valid hooks sent meanwhile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "eyetok.yaml"
        config.write_text(f"http: {{idle_timeout_s: {args.idle}, read_timeout_s: {args.read}}}\n")
        env = {"EYETOK_CONFIG": str(config), "EYETOK_HOOK_TOKEN": TOKEN}
        with DaemonProcess(Path(tmp) / "data", env) as daemon:
            print(json.dumps(run(daemon, args.n, args.hooks, args.read)))


def run(daemon: DaemonProcess, n: int, hooks: int, read_s: int) -> dict[str, object]:
    selector = selectors.DefaultSelector()
    opened: dict[socket.socket, tuple[str, float]] = {}
    try:
        for i in range(n):
            sock = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            kind = "header" if i % 2 == 0 else "body"
            sock.sendall(HEADER_STALL if kind == "header" else BODY_STALL)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            opened[sock] = (kind, time.monotonic())
        latencies = []
        statuses: dict[int, int] = {}
        with httpx.Client(base_url=daemon.url, timeout=10) as client:
            for _ in range(hooks):
                started = time.monotonic()
                answer = client.post(
                    "/hooks/probe/operator",
                    content=PROBE,
                    headers={"authorization": f"Bearer {TOKEN}"},
                )
                latencies.append(time.monotonic() - started)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        closed_after: dict[str, list[float]] = {"header": [], "body": []}
        deadline = time.monotonic() + read_s + 10
        while opened and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    data = b""
                if data == b"":
                    kind, since = opened.pop(sock)
                    closed_after[kind].append(time.monotonic() - since)
                    selector.unregister(sock)
                    sock.close()
    finally:
        for sock in opened:
            sock.close()
        selector.close()
    return {
        "stalled": n,
        "hooks": statuses,
        "hook_latency_s": {
            "median": round(statistics.median(latencies), 4),
            "max": round(max(latencies), 4),
        },
        "closed": {kind: len(times) for kind, times in closed_after.items()},
        "closed_after_s": {
            kind: {"min": round(min(times), 2), "max": round(max(times), 2)}
            for kind, times in closed_after.items()
            if times
        },
        "still_open": len(opened),
    }


if __name__ == "__main__":
    main()
