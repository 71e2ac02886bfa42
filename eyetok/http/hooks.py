"""The ingest hot path: ``POST /hooks/*`` as a raw ASGI handler.

``/hooks/sentry[/{tenant}]`` takes one Sentry webhook; ``/hooks/probe/{tenant}``,
``/hooks/generic/{tenant}`` and ``/hooks/alertmanager/{tenant}`` take a payload that may
carry many alerts (a batch). ``/hooks/heroku-logs/{tenant}`` is a Heroku log drain
(``eyetok/http/heroku_drain.py``: logplex frames, basic auth, its own answers).
Every hook does only what design section 9 allows: read the body (415 if it says it is
not JSON, 413 past 1 MiB), check the tenant (404) and the credentials (401), decode
with the guarded decoder and normalise (400 naming the problem), hand the signals over
and wait until they are journalled (202), or say 503 with Retry-After when the pipeline
is full or draining. Nothing is dropped without an answer.

The batch hooks authenticate a request when EITHER its Standard Webhooks signature
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) verifies with the tenant's
``whsec_`` secret, within 5 minutes of the daemon's clock, OR its ``Authorization:
Bearer <token>`` equals the tenant's hook token (compared in constant time); Alertmanager
can only send the latter. Their 202 is ``{"accepted": n, "signals": [...]}``, one entry
per signal in payload order. A batch goes into the pipeline in chunks (one message,
one journal commit and one answer per chunk, not per signal), decided in payload order,
so a "down" then "ok" for one server opens and then resolves. If the ingest queue is
full part-way the answer is 503 with Retry-After and ``{"error", "accepted", "total"}``:
the chunks handed over are journalled, the rest are not submitted, and a retried batch
re-applies the accepted ones as updates (their dedup keys are stable).

A signed message whose ``webhook-id`` this hook accepted for this tenant within the
signature's tolerance is a replay (or the sender's retry): it is answered 202
``{"accepted": 0, "duplicate": true, "webhook_id", "original_signal_ids", "signals": []}``
and not applied again (``eyetok/webhook_ids.py``).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime

import msgspec

from eyetok import log, standard_webhooks
from eyetok.clock import Clock
from eyetok.config import Tenant
from eyetok.decoding import check_content_type
from eyetok.errors import (
    IngestError,
    MalformedPayloadError,
    OverloadedError,
    PayloadTooLargeError,
    SignatureError,
    UnknownTenantError,
)
from eyetok.http.asgi import Receive, Scope, Send, header, send_json
from eyetok.http.heroku_drain import HerokuDrainHook, check_media_type
from eyetok.ids import random_hex
from eyetok.incidents import NOTHING_OPEN
from eyetok.messages import Accepted, IncidentAction, SevChannel, Severity, Signal
from eyetok.metrics import signal_answered
from eyetok.recognisers import Recognisers
from eyetok.sources import alertmanager, generic, heroku_logs, probe, sentry
from eyetok.webhook_ids import AcceptedWebhookIds, WebhookKey

MAX_BODY = 1024 * 1024
BATCH_SOURCES = ("probe", "generic", "alertmanager")
DRAIN_SOURCES = (heroku_logs.SOURCE,)  # /hooks/heroku-logs/{tenant}: a Heroku log drain
_TENANT_NAMED = BATCH_SOURCES + DRAIN_SOURCES  # the hooks whose path must name a tenant

Submit = Callable[[Signal], Awaitable[Accepted]]
# a batch's signals -> the accepted ones in payload order, and why the rest was refused
SubmitBatch = Callable[[list[Signal]], Awaitable[tuple[list[Accepted], OverloadedError | None]]]
Normaliser = Callable[[bytes, str, datetime], list[Signal]]


class IngestGate:
    """Open while the daemon accepts signals; closed for the drain (HTTP 503)."""

    def __init__(self) -> None:
        self.open = True


def new_signal_id() -> str:
    return "sig_" + random_hex(10)


class Hooks:
    def __init__(
        self,
        *,
        tenants: Mapping[str, Tenant],
        operator_tenant: str,
        recognisers: Recognisers,
        submit: Submit,
        submit_batch: SubmitBatch,
        clock: Clock,
        gate: IngestGate,
    ) -> None:
        self._tenants = tenants
        self._operator = operator_tenant
        self._recognisers = recognisers
        self._submit = submit
        self._submit_batch = submit_batch
        self._clock = clock
        self._gate = gate
        self._log = log.get("ingest")
        self.webhook_ids = AcceptedWebhookIds(
            clock, tolerance_s=standard_webhooks.DEFAULT_TOLERANCE_S
        )
        self._drain = HerokuDrainHook(
            submit_batch=submit_batch, answer=_answer, clock=clock, new_id=new_signal_id
        )
        self._normalisers: dict[str, Normaliser] = {
            "probe": lambda body, tenant, at: probe.normalise(
                body, tenant=tenant, received_at=at, new_id=new_signal_id
            ),
            "generic": lambda body, tenant, at: generic.normalise(
                body, tenant=tenant, received_at=at, new_id=new_signal_id, recognisers=recognisers
            ),
            "alertmanager": lambda body, tenant, at: alertmanager.normalise(
                body, tenant=tenant, received_at=at, new_id=new_signal_id, recognisers=recognisers
            ),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        parts = path.split("/")  # ["", "hooks", source, tenant?]
        source = parts[2] if len(parts) in (3, 4) else ""
        if source in _TENANT_NAMED and len(parts) == 3:
            await send_json(
                send,
                404,
                {
                    "error": f"no hook at {path}: the {source} hook names its tenant, "
                    f"/hooks/{source}/{{tenant}}"
                },
            )
            return
        if source != "sentry" and source not in _TENANT_NAMED:
            await send_json(send, 404, {"error": f"no hook at {path}"})
            return
        if scope["method"] != "POST":
            await send_json(send, 405, {"error": "hooks take POST"}, [(b"allow", b"POST")])
            return
        tenant_id = parts[3] if len(parts) == 4 else self._operator
        if source in DRAIN_SOURCES:
            await self._heroku_drain(scope, receive, send, tenant_id)
            return
        if source != "sentry":
            await self._batch(scope, receive, send, source, tenant_id)
            return
        try:
            accepted = await self._ingest(scope, receive, tenant_id)
        except IngestError as exc:
            await self._refuse(send, exc, tenant_id, source)
            return
        signal_answered(source, "accepted")
        await send_json(send, 202, _answer(accepted))

    async def _refuse(self, send: Send, exc: IngestError, tenant_id: str, source: str) -> None:
        extra: list[tuple[bytes, bytes]] = []
        signal_answered(source, "overloaded" if isinstance(exc, OverloadedError) else "refused")
        if isinstance(exc, OverloadedError):
            extra.append((b"retry-after", str(exc.retry_after).encode()))
        if exc.status != 404:
            self._log.warning(
                "signal_refused",
                tenant=tenant_id,
                source=source,
                status=exc.status,
                reason=str(exc),
            )
        await send_json(send, exc.status, {"error": str(exc)}, extra)

    # --- the batch hooks (probe, generic, alertmanager) --------------------------------

    async def _batch(
        self, scope: Scope, receive: Receive, send: Send, source: str, tenant_id: str
    ) -> None:
        try:
            signals, signed = await self._normalise_batch(scope, receive, source, tenant_id)
        except IngestError as exc:
            await self._refuse(send, exc, tenant_id, source)
            return
        key: WebhookKey | None = None
        if signed is not None:
            key = (tenant_id, source, signed[0])
            original = await self.webhook_ids.admit(key, signed[1])
            if original is not None:
                await self._answer_duplicate(send, key, original)
                return
            signals = [
                msgspec.structs.replace(s, webhook_id=signed[0], webhook_signals=len(signals))
                for s in signals
            ]
        accepted: list[Accepted] = []
        refusal: OverloadedError | None = None
        try:
            accepted, refusal = await self._submit_batch(signals)
        finally:
            if key is not None:
                if refusal is None and len(accepted) == len(signals):
                    self.webhook_ids.accepted(key, tuple(a.signal_id for a in accepted))
                else:
                    self.webhook_ids.forget(key)
        signal_answered(source, "accepted", len(accepted))
        if refusal is None:
            await send_json(
                send, 202, {"accepted": len(accepted), "signals": [_answer(a) for a in accepted]}
            )
            return
        self._log.warning(
            "batch_partly_refused",
            tenant=tenant_id,
            source=source,
            accepted=len(accepted),
            total=len(signals),
            reason=str(refusal),
        )
        signal_answered(source, "overloaded", len(signals) - len(accepted))
        await send_json(
            send,
            503,
            {"error": str(refusal), "accepted": len(accepted), "total": len(signals)},
            [(b"retry-after", str(refusal.retry_after).encode())],
        )

    async def _answer_duplicate(
        self, send: Send, key: WebhookKey, signal_ids: tuple[str, ...]
    ) -> None:
        tenant_id, source, webhook_id = key
        signal_answered(source, "duplicate", len(signal_ids))
        self._log.info(
            "webhook_duplicate",
            tenant=tenant_id,
            source=source,
            webhook_id=webhook_id,
            signal_ids=list(signal_ids),
            why="this webhook-id was accepted within the signature's tolerance; not re-applied",
        )
        await send_json(
            send,
            202,
            {
                "accepted": 0,
                "duplicate": True,
                "webhook_id": webhook_id,
                "original_signal_ids": list(signal_ids),
                "signals": [],
            },
        )

    async def _open_body(
        self, scope: Scope, receive: Receive, tenant_id: str, check: Callable[[str | None], None]
    ) -> tuple[bytes, Tenant]:
        """The body (its Content-Type passed ``check``) and the tenant it is for, unless
        EyeTok is draining (503), the body is too large (413) or the tenant unknown (404)."""
        if not self._gate.open:
            await _discard(receive)
            raise OverloadedError("EyeTok is draining for a restart; retry shortly", retry_after=5)
        check(header(scope, b"content-type"))
        body = await _read_body(scope, receive)
        tenant = self._tenants.get(tenant_id)
        if tenant is None:
            raise UnknownTenantError(f"unknown tenant {tenant_id!r}")
        return body, tenant

    async def _heroku_drain(
        self, scope: Scope, receive: Receive, send: Send, tenant_id: str
    ) -> None:
        try:
            body, tenant = await self._open_body(scope, receive, tenant_id, check_media_type)
            status, answer, extra = await self._drain.take(scope, body, tenant)
        except IngestError as exc:
            await self._refuse(send, exc, tenant_id, heroku_logs.SOURCE)
            return
        await send_json(send, status, answer, extra)

    async def _normalise_batch(
        self, scope: Scope, receive: Receive, source: str, tenant_id: str
    ) -> tuple[list[Signal], tuple[str, datetime] | None]:
        """The signals, and the verified ``webhook-id`` and ``webhook-timestamp`` when a
        Standard Webhooks signature (not a bearer token) authenticated the request."""
        body, tenant = await self._open_body(
            scope, receive, tenant_id, lambda media: check_content_type(media, f"{source} hook")
        )
        signed = self._authenticate(scope, body, tenant)
        return self._normalisers[source](body, tenant_id, self._clock.now()), signed

    def _authenticate(
        self, scope: Scope, body: bytes, tenant: Tenant
    ) -> tuple[str, datetime] | None:
        """Return when the request carries a valid signature or bearer token, else raise
        :class:`SignatureError` saying what is missing or wrong. A valid signature returns
        its ``webhook-id`` and ``webhook-timestamp``; a bearer token returns None."""
        secret, token = tenant.hook_secret, tenant.hook_token
        if secret is None and token is None:
            raise SignatureError(
                f"no hook credentials are configured for tenant {tenant.tenant_id!r}: set "
                f"{tenant.hook_secret_env} (a whsec_ Standard Webhooks secret) or "
                f"{tenant.hook_token_env} (a bearer token)"
            )
        problems: list[str] = []
        authorization = header(scope, b"authorization")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                problems.append("Authorization is not 'Bearer <token>'")
            elif token is None:
                problems.append(f"no bearer token is configured (set {tenant.hook_token_env})")
            elif hmac.compare_digest(credentials.strip().encode("latin-1"), token.encode("utf-8")):
                return None
            else:
                problems.append("wrong bearer token")
        signed = {
            name: value
            for name in (
                standard_webhooks.HEADER_ID,
                standard_webhooks.HEADER_TIMESTAMP,
                standard_webhooks.HEADER_SIGNATURE,
            )
            if (value := header(scope, name.encode("ascii"))) is not None
        }
        if signed:
            if secret is None:
                problems.append(f"no webhook secret is configured (set {tenant.hook_secret_env})")
            else:
                try:
                    standard_webhooks.verify(
                        secret, signed, body, now=int(self._clock.now().timestamp())
                    )
                except standard_webhooks.WebhookVerificationError as exc:
                    problems.append(f"Standard Webhooks signature: {exc}")
                else:
                    signed_at = datetime.fromtimestamp(
                        int(signed[standard_webhooks.HEADER_TIMESTAMP].strip()), UTC
                    )
                    return signed[standard_webhooks.HEADER_ID], signed_at
        if not problems:
            ways = []
            if secret is not None:
                ways.append(
                    "a Standard Webhooks signature (webhook-id, webhook-timestamp, "
                    "webhook-signature)"
                )
            if token is not None:
                ways.append("Authorization: Bearer <token>")
            problems.append("missing credentials: send " + " or ".join(ways))
        raise SignatureError("; ".join(problems))

    async def _ingest(self, scope: Scope, receive: Receive, tenant_id: str) -> Accepted:
        body, tenant = await self._open_body(
            scope, receive, tenant_id, lambda media: check_content_type(media, "sentry hook")
        )
        if tenant.sentry_secret is None:
            raise SignatureError(
                f"no Sentry client secret is configured for tenant {tenant_id!r}: set "
                f"{tenant.sentry_secret_env or 'SENTRY_CLIENT_SECRET'} and restart EyeTok"
            )
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


class SignalAnswer(msgspec.Struct, frozen=True):
    """One accepted signal in a 202 (encoded as an object with these keys, in order;
    a struct, not a dict: a batch answers a hundred of them)."""

    signal_id: str
    incident_id: str | None
    severity: Severity
    sev_channel: SevChannel | None
    action: IncidentAction
    rule: str


class NothingOpenAnswer(SignalAnswer, frozen=True):
    """A resolve of nothing open: opened and sent nothing, and says so."""

    note: str = NOTHING_OPEN


def _answer(accepted: Accepted) -> SignalAnswer:
    a = accepted
    if a.action is IncidentAction.RESOLVE and a.incident_id is None:
        return NothingOpenAnswer(a.signal_id, None, a.severity, a.sev_channel, a.action, a.rule)
    return SignalAnswer(a.signal_id, a.incident_id, a.severity, a.sev_channel, a.action, a.rule)


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_BODY:
                raise PayloadTooLargeError(f"body of {declared} bytes is over the 1 MiB limit")
        except ValueError as exc:
            raise MalformedPayloadError(f"Content-Length {declared!r} is not a number") from exc
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body = bytes(message.get("body", b""))  # the usual webhook: all in one message
        if len(body) > MAX_BODY:
            raise PayloadTooLargeError("body is over the 1 MiB limit")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise MalformedPayloadError("client disconnected before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLargeError("body is over the 1 MiB limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def _discard(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
