"""The ceiling for single-webhook ingest: a bare ASGI app on hypercorn's trio worker.

It does what EyeTok's hot path does minus the journal: read the body (413 past 1 MiB),
check the Sentry HMAC signature (401), msgspec-decode the JSON body (400), answer 202
with a small JSON object. No framework, no queue, no journal. ``bench/ingest.py`` starts
it in a subprocess and measures it with the same load generator and the same requests
it then sends to EyeTok, so the two figures come from one run on one machine.

    python bench/ceiling_app.py --host 127.0.0.1 --port 0 --secret S

prints one JSON line ``{"port": N, "binds": [...]}`` once it listens, then serves until
it is killed (SIGTERM/SIGINT). hypercorn is configured as the daemon configures it
(``actors/daemon.py``): no access or error log, keep-alive 75 s.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sys
from typing import Any

import msgspec
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from eyetok.sources.sentry import verify

MAX_BODY = 1024 * 1024

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


async def _send_json(send: Any, status: int, body: object) -> None:
    payload = _encode(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def make_app(secret: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            await _send_json(send, 413, {"error": "body is over the 1 MiB limit"})
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                await _send_json(send, 413, {"error": "body is over the 1 MiB limit"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if not verify(body, _header(scope, b"sentry-hook-signature"), secret):
            await _send_json(send, 401, {"error": "missing or wrong Sentry-Hook-Signature"})
            return
        try:
            payload = _decode(body)
        except msgspec.DecodeError as exc:
            await _send_json(send, 400, {"error": str(exc)})
            return
        issue_id = payload.get("data", {}).get("event", {}).get("issue_id")
        await _send_json(
            send,
            202,
            {
                "signal_id": "sig_" + secrets.token_hex(10),
                "incident_id": f"inc_{issue_id}",
                "severity": "high",
                "sev_channel": "SEV2",
                "action": "open",
                "rule": "ceiling",
            },
        )

    return app


async def _main(host: str, port: int, secret: str) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, make_app(secret), config)
        bound = int(binds[0].rsplit(":", 1)[1])
        sys.stdout.write(json.dumps({"port": bound, "binds": binds}) + "\n")
        sys.stdout.flush()
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    trio.run(_main, args.host, args.port, args.secret)
    return 0


if __name__ == "__main__":
    sys.exit(main())
