"""The ingest hot path: ``POST /hooks/sentry[/{tenant}]`` as a raw ASGI handler.

It does only what design section 9 allows: read the body (413 past 1 MiB), check the
tenant (404) and the signature (401), decode and normalise (400 naming the problem),
hand the signal over and wait until it is journalled (202), or say 503 with Retry-After
when the pipeline is full or draining. Nothing is dropped without an answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import Tenant
from eyetok.errors import (
    IngestError,
    MalformedPayloadError,
    OverloadedError,
    PayloadTooLargeError,
    SignatureError,
    UnknownTenantError,
)
from eyetok.http.asgi import Receive, Scope, Send, header, send_json
from eyetok.messages import Accepted, Signal
from eyetok.recognisers import Recognisers
from eyetok.sources import sentry

MAX_BODY = 1024 * 1024

Submit = Callable[[Signal], Awaitable[Accepted]]


class IngestGate:
    """Open while the daemon accepts signals; closed for the drain (HTTP 503)."""

    def __init__(self) -> None:
        self.open = True


def new_signal_id() -> str:
    return "sig_" + secrets.token_hex(10)


class Hooks:
    def __init__(
        self,
        *,
        tenants: Mapping[str, Tenant],
        operator_tenant: str,
        recognisers: Recognisers,
        submit: Submit,
        clock: Clock,
        gate: IngestGate,
    ) -> None:
        self._tenants = tenants
        self._operator = operator_tenant
        self._recognisers = recognisers
        self._submit = submit
        self._clock = clock
        self._gate = gate
        self._log = log.get("ingest")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        parts = path.split("/")  # ["", "hooks", source, tenant?]
        if len(parts) not in (3, 4) or parts[2] != "sentry":
            await send_json(send, 404, {"error": f"no hook at {path}"})
            return
        if scope["method"] != "POST":
            await send_json(send, 405, {"error": "hooks take POST"}, [(b"allow", b"POST")])
            return
        tenant_id = parts[3] if len(parts) == 4 else self._operator
        try:
            accepted = await self._ingest(scope, receive, tenant_id)
        except IngestError as exc:
            extra: list[tuple[bytes, bytes]] = []
            if isinstance(exc, OverloadedError):
                extra.append((b"retry-after", str(exc.retry_after).encode()))
            if exc.status != 404:
                self._log.warning(
                    "signal_refused", tenant=tenant_id, status=exc.status, reason=str(exc)
                )
            await send_json(send, exc.status, {"error": str(exc)}, extra)
            return
        await send_json(
            send,
            202,
            {
                "signal_id": accepted.signal_id,
                "incident_id": accepted.incident_id,
                "severity": accepted.severity.value,
                "sev_channel": accepted.sev_channel.value if accepted.sev_channel else None,
                "action": accepted.action.value,
                "rule": accepted.rule,
            },
        )

    async def _ingest(self, scope: Scope, receive: Receive, tenant_id: str) -> Accepted:
        if not self._gate.open:
            await _discard(receive)
            raise OverloadedError("EyeTok is draining for a restart; retry shortly", retry_after=5)
        body = await _read_body(scope, receive)
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise UnknownTenantError(f"unknown tenant {tenant_id!r}")
        if tenant.sentry_secret is None:
            raise SignatureError(f"no Sentry client secret is configured for tenant {tenant_id!r}")
        if not sentry.verify(body, header(scope, b"sentry-hook-signature"), tenant.sentry_secret):
            raise SignatureError("missing or wrong Sentry-Hook-Signature")
        signal = sentry.normalise(
            body,
            header(scope, b"sentry-hook-resource"),
            tenant=tenant_id,
            signal_id=new_signal_id(),
            received_at=self._clock.now(),
            recognisers=self._recognisers,
        )
        return await self._submit(signal)


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY:
                raise PayloadTooLargeError(f"body of {declared} bytes is over the 1 MiB limit")
        except ValueError as exc:
            raise MalformedPayloadError(f"Content-Length {declared!r} is not a number") from exc
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MalformedPayloadError("client disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLargeError("body is over the 1 MiB limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _discard(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
