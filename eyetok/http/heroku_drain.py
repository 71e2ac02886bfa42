"""``POST /hooks/heroku-logs/{tenant}``: a Heroku HTTPS log drain.

Heroku POSTs batches of syslog lines (``application/logplex-1``) with the headers
``Logplex-Msg-Count`` (frames in the body), ``Logplex-Frame-Id`` (the batch's id) and
``Logplex-Drain-Token`` (the drain's ``d.<uuid>``), and the basic-auth credentials of the
drain URL (``https://user:pass@host/hooks/heroku-logs/acme``). Heroku drops a drain that is
slow or failing, so the hook does little: it checks the credentials (401) and, when the
tenant's ``heroku_drain.apps`` is set, that the drain token is one of them (401); it splits
the frames by their length prefixes (:mod:`eyetok.sources.logplex`), skips every line that
is not a recognised error on one substring search (:mod:`eyetok.sources.heroku_logs`), and
waits for the journal only when some lines became signals. Lines that are not signals are
neither journalled nor logged.

Answers:

* 202 ``{"frames": n, "accepted": k, "signals": [...]}``: every frame read (``signals``
  as the other hooks give them, one per recognised line, in body order);
* 400 ``{"error", "bad_frames": [{"offset", "reason"}], "frames", "accepted",
  "signals"}`` when a frame is malformed (``error`` names the first bad frame's byte
  offset) or ``Logplex-Msg-Count`` disagrees with the body: the good frames of the same
  body WERE read and their signals accepted and journalled (they are in ``signals``), so a
  bad frame never costs its neighbours; only the bad frames are lost, and said to be;
* 503 with Retry-After when the pipeline is full part-way, as the batch hooks say it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING

from eyetok import log
from eyetok.clock import Clock
from eyetok.config import HerokuDrain, Tenant
from eyetok.errors import SignatureError, UnsupportedMediaTypeError
from eyetok.http.asgi import Scope, header
from eyetok.messages import Accepted
from eyetok.sources import heroku_logs, logplex

if TYPE_CHECKING:
    from eyetok.http.hooks import SubmitBatch

MEDIA_TYPE = "application/logplex-1"


def check_media_type(content_type: str | None) -> None:
    """Refuse (415) a body that says it is not ``application/logplex-1`` (none: read as it)."""
    if content_type is None or not content_type.strip():
        return
    media = content_type.partition(";")[0].strip().lower()
    if media != MEDIA_TYPE:
        raise UnsupportedMediaTypeError(
            f"heroku-logs hook: Content-Type {media!r} is not {MEDIA_TYPE}"
        )


class HerokuDrainHook:
    """Reads one drain POST for a known tenant; returns the status and the JSON answer."""

    def __init__(
        self,
        *,
        submit_batch: SubmitBatch,
        answer: Callable[[Accepted], object],
        clock: Clock,
        new_id: Callable[[], str],
    ) -> None:
        self._submit_batch = submit_batch
        self._answer = answer
        self._clock = clock
        self._new_id = new_id
        self._log = log.get("ingest")

    async def take(
        self, scope: Scope, body: bytes, tenant: Tenant
    ) -> tuple[int, dict[str, object], list[tuple[bytes, bytes]]]:
        drain = _authenticate(scope, tenant)
        token = (header(scope, b"logplex-drain-token") or "").strip()
        if drain.apps and token not in drain.apps:
            raise SignatureError(
                f"drain token {token!r} is not one of tenant {tenant.tenant_id!r}'s "
                "heroku_drain.apps (heroku drains -a APP shows a drain's token)"
            )
        framed = logplex.frames(body)
        problems = [f"byte offset {b.offset}: {b.reason}" for b in framed.bad]
        declared = header(scope, b"logplex-msg-count")
        total = len(framed.messages) + len(framed.bad)
        if declared is not None and declared.strip() != str(total):
            problems.append(f"Logplex-Msg-Count says {declared.strip()!r}, the body holds {total}")
        signals = heroku_logs.normalise(
            (message for _, message in framed.messages),
            tenant=tenant.tenant_id,
            app=drain.apps.get(token) or token or "heroku",
            codes=drain.codes,
            received_at=self._clock.now(),
            new_id=self._new_id,
        )
        accepted, refusal = await self._submit_batch(signals) if signals else ([], None)
        frame_id = header(scope, b"logplex-frame-id") or ""
        if refusal is not None:
            self._log.warning(
                "drain_batch_partly_refused",
                tenant=tenant.tenant_id,
                frame_id=frame_id,
                accepted=len(accepted),
                total=len(signals),
                reason=str(refusal),
            )
            answer: dict[str, object] = {
                "error": str(refusal),
                "accepted": len(accepted),
                "total": len(signals),
            }
            return 503, answer, [(b"retry-after", str(refusal.retry_after).encode())]
        answer = {
            "frames": len(framed.messages),
            "accepted": len(accepted),
            "signals": [self._answer(a) for a in accepted],
        }
        if not problems:
            return 202, answer, []
        self._log.warning(
            "drain_frames_refused",
            tenant=tenant.tenant_id,
            frame_id=frame_id,
            problems=problems,
            frames_read=len(framed.messages),
            accepted=len(accepted),
            why="malformed frames are lost; the good frames of the body were read",
        )
        error = f"malformed logplex body: {'; '.join(problems)}"
        bad = [{"offset": b.offset, "reason": b.reason} for b in framed.bad]
        return 400, {"error": error, "bad_frames": bad, **answer}, []


def _authenticate(scope: Scope, tenant: Tenant) -> HerokuDrain:
    """The tenant's drain when the request carries its basic-auth user and password."""
    drain = tenant.heroku_drain
    if drain is None:
        raise SignatureError(
            f"no Heroku drain is configured for tenant {tenant.tenant_id!r}: set "
            f"tenants.{tenant.tenant_id}.heroku_drain (user, password_env)"
        )
    password = tenant.heroku_drain_password
    if password is None:
        raise SignatureError(f"the Heroku drain password is not set: set {drain.password_env}")
    scheme, _, encoded = (header(scope, b"authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        raise SignatureError("missing credentials: send the drain URL's user:pass (Basic auth)")
    try:
        user, colon, sent = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("Authorization: Basic credentials are not base64") from exc
    same_user = hmac.compare_digest(user, drain.user.encode("utf-8"))
    same_password = hmac.compare_digest(sent, password.encode("utf-8"))
    if not (colon and same_user and same_password):
        raise SignatureError("wrong Heroku drain user or password")
    return drain
