"""The ceiling for ingest: a bare ASGI app on hypercorn's trio worker.

It does what EyeTok's hot path does minus the journal: read the body (413 past 1 MiB),
check the credentials (401), msgspec-decode the JSON body (400), answer 202 with a JSON
object the size of EyeTok's. No framework, no queue, no journal. ``bench/ingest.py`` and
``bench/batched.py`` start it in a subprocess and measure it with the same load generator
and the same requests they then send to EyeTok, so the two figures come from one run on
one machine.

* ``POST /hooks/sentry`` (any other path not below): the Sentry HMAC signature
  (``Sentry-Hook-Signature``, keyed with ``--secret``), one signal answered.
* ``POST /hooks/probe/{tenant}`` and ``POST /hooks/alertmanager/{tenant}`` (the batch
  hooks, ``bench/batched.py``): ``Authorization: Bearer <--token>`` compared in constant
  time, the body decoded (a JSON array of probe verdicts, or an Alertmanager payload whose
  ``alerts`` are counted), and one answer entry per alert, as EyeTok's
  ``{"accepted": n, "signals": [...]}``.

    python bench/ceiling_app.py --host 127.0.0.1 --port 0 --secret S [--token T]

prints one JSON line ``{"port": N, "binds": [...]}`` once it listens, then serves until
it is killed (SIGTERM/SIGINT). hypercorn is configured as the daemon configures it
(``actors/daemon.py``): no access or error log, keep-alive 75 s.
"""

from __future__ import annotations

import argparse
import hmac
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


def _signal_answer(issue_id: object) -> dict[str, object]:
    return {
        "signal_id": "sig_" + secrets.token_hex(10),
        "incident_id": f"inc_{issue_id}",
        "severity": "high",
        "sev_channel": "SEV2",
        "action": "open",
        "rule": "ceiling",
    }


async def _batch(scope: Any, body: bytes, send: Any, token: str | None) -> None:
    """The batch hooks: bearer token, decode, one answer entry per alert."""
    authorization = _header(scope, b"authorization") or ""
    scheme, _, credentials = authorization.strip().partition(" ")
    if (
        token is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(credentials.strip().encode("latin-1"), token.encode("utf-8"))
    ):
        await _send_json(send, 401, {"error": "missing or wrong bearer token"})
        return
    try:
        payload = _decode(body)
    except msgspec.DecodeError as exc:
        await _send_json(send, 400, {"error": str(exc)})
        return
    # Alertmanager: one group and its alerts; a probe: an array of verdicts (or just one)
    alerts = payload.get("alerts", [payload]) if isinstance(payload, dict) else payload
    if not isinstance(alerts, list):
        await _send_json(send, 400, {"error": "expected an array of alerts"})
        return
    signals = [_signal_answer(secrets.token_hex(8)) for _ in alerts]
    await _send_json(send, 202, {"accepted": len(signals), "signals": signals})


def make_app(secret: str, token: str | None = None) -> Any:
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
        if scope["path"].startswith(("/hooks/probe/", "/hooks/alertmanager/")):
            await _batch(scope, body, send, token)
            return
        if not verify(body, _header(scope, b"sentry-hook-signature"), secret):
            await _send_json(send, 401, {"error": "missing or wrong Sentry-Hook-Signature"})
            return
        try:
            payload = _decode(body)
        except msgspec.DecodeError as exc:
            await _send_json(send, 400, {"error": str(exc)})
            return
        issue_id = payload.get("data", {}).get("event", {}).get("issue_id")
        await _send_json(send, 202, _signal_answer(issue_id))

    return app


async def _main(host: str, port: int, secret: str, token: str | None) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(serve, make_app(secret, token), config)
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
    parser.add_argument("--token", default=None, help="bearer token of the batch hooks")
    args = parser.parse_args(argv)
    trio.run(_main, args.host, args.port, args.secret, args.token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
