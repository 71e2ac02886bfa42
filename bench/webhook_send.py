"""CPU per webhook delivery on EyeTok's side, beside a floor measured in the same run.

    uv run python bench/webhook_send.py [-n 3000] [--rounds 3]

A Standard Webhooks receiver (``harness/peers/webhook_receiver.py``, signatures checked)
runs in its own process; this process delivers one rendered incident N times, one after
the other over kept-alive connections, and reads its own thread's CPU time (the
receiver's work is not counted). Three ways, each round in turn:

- ``floor``: the same signed request, built once, written with one ``sendall`` on a
  blocking socket and its answer read with ``recv``: the least any client can do;
- ``trio``: that request and answer through a ``trio.SocketStream`` (``send_all``,
  ``receive_some``): each socket call with its own schedule points;
- ``wait``: that request with one non-blocking ``send`` and its answer read after
  ``trio.lowlevel.wait_readable``: the least a client on EyeTok's event loop does (one
  schedule point), what the sink's plain-TCP path does below HTTP;
- ``sink``: what the delivery actor does per attempt: ``render``, the payload guard,
  signing, and ``WebhookSink.send`` (non-blocking socket calls, httptools);
- ``httpx``: the signed request through ``httpx.AsyncClient`` configured as the sink's
  transport was before (for comparison).
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import trio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.sinks.webhook.deliver import WebhookSink  # noqa: E402
from eyetok import guard  # noqa: E402
from eyetok.clock import SystemClock  # noqa: E402
from eyetok.sinks.webhook import WebhookSinkConfig  # noqa: E402
from eyetok.standard_webhooks import new_secret, webhook_headers  # noqa: E402
from tests.sinks.test_webhook import make_deliver  # noqa: E402

_RECEIVER = """
import json, sys
from harness.peers.base import serve_until_signalled
from harness.peers.webhook_receiver import WebhookReceiver
peer = WebhookReceiver({"bench": sys.argv[1]})
sys.exit(serve_until_signalled(peer, lambda: {"url": peer.url, "port": peer.port}))
"""
TENANTS = frozenset({"acme", "globex", "operator", *(f"tenant-{i}" for i in range(1000))})


def start_receiver(secret: str) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _RECEIVER, secret], cwd=ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    return proc, str(json.loads(proc.stdout.readline())["url"])


async def cpu_per_call(one: Callable[[], Awaitable[None]], n: int) -> float:
    """Microseconds of this thread's CPU per call (after n // 10 warm-up calls)."""
    for _ in range(max(1, n // 10)):
        await one()
    start = time.thread_time()
    for _ in range(n):
        await one()
    return (time.thread_time() - start) / n * 1e6


async def measure(url: str, secret: str, n: int, rounds: int) -> dict[str, list[float]]:
    import httpx  # only for the comparison

    clock = SystemClock()
    config = msgspec.convert(
        {"type": "webhook", "tenant": "acme", "url": url, "secret_env": "BENCH_SECRET"},
        WebhookSinkConfig,
    )
    sink = WebhookSink.from_config("bench", config, {"BENCH_SECRET": secret}, clock=clock)
    deliver = make_deliver(title="[bench-r1-00042] PaperGateError: gate refused order 1234")
    key = "dlv_0123456789abcdef01234567"
    body = msgspec.json.encode(sink.render(deliver, thread_ref=None))

    def signed() -> dict[str, str]:
        stamp = math.floor(clock.now().timestamp())
        headers = webhook_headers(sink.active_secrets(clock.now()), key, stamp, body)
        return {**headers, "content-type": "application/json", "user-agent": "EyeTok-Webhooks/1"}

    parts = urlsplit(url)
    raw = socket.create_connection((parts.hostname, parts.port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lines = [f"POST {parts.path} HTTP/1.1", f"host: {parts.netloc}"]
    lines += [f"{k}: {v}" for k, v in signed().items()] + [f"content-length: {len(body)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body  # signed once: 300 s valid

    async def floor() -> None:
        raw.sendall(request)
        if not raw.recv(65536).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("the receiver refused the floor's request")

    stream = await trio.open_tcp_stream(parts.hostname or "", parts.port or 80)

    async def trio_floor() -> None:
        await stream.send_all(request)
        if not (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("the receiver refused the trio floor's request")

    waiting = socket.create_connection((parts.hostname, parts.port))
    waiting.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    waiting.setblocking(False)

    async def wait_floor() -> None:
        if waiting.send(request) != len(request):
            raise RuntimeError("the kernel took part of the request: the floor does not wait")
        await trio.lowlevel.wait_readable(waiting)
        if not waiting.recv(65536).startswith(b"HTTP/1.1 200"):
            raise RuntimeError("the receiver refused the wait floor's request")

    async def through_sink() -> None:
        payload = sink.render(deliver, thread_ref=None)
        guard.check(
            msgspec.to_builtins(payload), tenant="acme", tenants=TENANTS, operator_tenant="operator"
        )
        outcome = await sink.send(payload, idempotency_key=key)
        if type(outcome).__name__ != "Delivered":
            raise RuntimeError(f"the sink's delivery failed: {outcome}")

    client = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False, trust_env=False
    )

    async def through_httpx() -> None:
        async with client.stream("POST", url, content=body, headers=signed()) as answer:
            async for _ in answer.aiter_raw():
                pass
        if answer.status_code != 200:
            raise RuntimeError(f"httpx: HTTP {answer.status_code}")

    figures: dict[str, list[float]] = {"floor": [], "trio": [], "wait": [], "sink": [], "httpx": []}
    for _ in range(rounds):
        figures["floor"].append(await cpu_per_call(floor, n))
        figures["trio"].append(await cpu_per_call(trio_floor, n))
        figures["wait"].append(await cpu_per_call(wait_floor, n))
        figures["sink"].append(await cpu_per_call(through_sink, n))
        figures["httpx"].append(await cpu_per_call(through_httpx, n))
    raw.close()
    trio.lowlevel.notify_closing(waiting)
    waiting.close()
    await stream.aclose()
    await client.aclose()
    await sink.aclose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--deliveries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    secret = new_secret()
    proc, url = start_receiver(secret)
    try:
        figures = trio.run(measure, url, secret, args.deliveries, args.rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    floor = min(figures["floor"])
    print(f"webhook delivery, CPU of EyeTok's thread per delivery (us), N={args.deliveries}")
    print(f"{'':8s}" + "".join(f"  round {i + 1}" for i in range(args.rounds)) + "   best  x floor")
    for name, values in figures.items():
        row = "".join(f"{v:9.1f}" for v in values)
        print(f"{name:8s}{row}{min(values):9.1f}{min(values) / floor:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
