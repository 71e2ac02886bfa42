"""PagerDuty delivery: one JSON POST to the Events API v2 per event, over an
``httpx.AsyncClient`` (httpx runs on trio). Every answer is classified here, in one
function, :func:`classify`, following PagerDuty's own retry table:

==============  =====================================================
202 (any 2xx)   Delivered; ``external_ref`` is the dedup_key echoed back
429             Retry (after Retry-After when given)
408, 5xx        Retry (after Retry-After when given)
400, other 4xx  Permanent, with PagerDuty's message and errors
anything else   Permanent (PagerDuty never redirects the Events API)
network error   Retry (connection refused/reset, timeouts, protocol errors)
==============  =====================================================

The idempotency key of a delivery is the event's ``dedup_key`` itself: a re-sent trigger
folds into the open alert, a re-sent acknowledge or resolve is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import msgspec

from actors.sinks.base import Delivered, Outcome, Permanent, Retry
from actors.sinks.pagerduty.render import PagerDutyEvent, render
from eyetok.errors import ConfigError
from eyetok.guard import scrub
from eyetok.messages import Deliver
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.tls import OnDemandClient

__all__ = ["PagerDutySink", "classify", "retry_after_s"]

_MAX_REASON = 300
_JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class _Answer(msgspec.Struct, kw_only=True):
    """What the Events API says in its body (every field optional: bodies vary)."""

    status: str = ""
    message: str = ""
    dedup_key: str = ""
    errors: list[str] = msgspec.field(default_factory=list)


def _answer(body: bytes) -> _Answer | None:
    try:
        return msgspec.json.decode(body, type=_Answer)
    except msgspec.DecodeError:  # not JSON, or not the documented shape
        return None


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form; None otherwise
    (an HTTP-date would need the wall clock: the caller's backoff applies instead)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)


def _said(answer: _Answer | None, body: bytes) -> str:
    if answer is not None:
        text = answer.message or answer.status
        if answer.errors:
            text = f"{text}: {'; '.join(answer.errors)}" if text else "; ".join(answer.errors)
    else:
        text = body[:_MAX_REASON].decode("utf-8", "replace").strip()
    text = scrub(" ".join(text.split()))
    return text[:_MAX_REASON]


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, sent_dedup_key: str = ""
) -> Outcome:
    """The verdict on one Events API answer: HTTP status, headers, raw body.

    ``sent_dedup_key`` stands in for the echoed one if a 2xx body does not carry it.
    ``headers`` is looked up as given: pass httpx's case-insensitive ``Headers``, or a
    mapping with ``Retry-After`` spelled so.
    """
    answer = _answer(body)
    if 200 <= status < 300:
        echoed = answer.dedup_key if answer is not None else ""
        return Delivered(external_ref=echoed or sent_dedup_key)
    after = retry_after_s(headers.get("Retry-After"))
    said = _said(answer, body)
    suffix = f": {said}" if said else ""
    if status == 429:
        return Retry(reason=f"rate limited by PagerDuty (HTTP 429){suffix}", after=after)
    if status >= 500 or status == 408:
        return Retry(reason=f"PagerDuty answered HTTP {status}{suffix}", after=after)
    if 400 <= status < 500:
        return Permanent(reason=f"PagerDuty refused the event (HTTP {status}){suffix}")
    return Permanent(reason=f"unexpected answer from PagerDuty (HTTP {status}){suffix}")


class PagerDutySink:
    """A :class:`~actors.sinks.base.Sink` for one PagerDuty integration (routing key)."""

    sink_type = "pagerduty"

    def __init__(
        self,
        *,
        sink_id: str,
        routing_key: str,
        config: PagerDutySinkConfig,
        events_url: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not routing_key.strip():
            raise ConfigError(config.routing_key_env, "the PagerDuty routing key is empty")
        self.sink_id = sink_id
        self.rate_per_target: float | None = None  # PagerDuty throttles; 429 says when
        self.tenant = config.tenant
        self._routing_key = routing_key.strip()
        self._url = events_url or config.events_url
        self._timeout = httpx.Timeout(config.timeout_s)
        self._given = client
        # made at the first event, with the process's one TLS context (eyetok/tls.py)
        self._made = OnDemandClient(
            timeout=self._timeout, follow_redirects=False, headers={"User-Agent": "EyeTok"}
        )

    def _client(self) -> httpx.AsyncClient:
        return self._given if self._given is not None else self._made()

    def threads(self) -> bool:
        return False

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> PagerDutyEvent:
        return render(deliver, routing_key=self._routing_key)

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        assert isinstance(payload, PagerDutyEvent)
        body = msgspec.json.encode(payload)
        try:
            response = await self._client().post(
                self._url, content=body, headers=_JSON, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            return Retry(reason=f"no answer from PagerDuty in time ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Retry(reason=scrub(f"cannot reach PagerDuty: {type(exc).__name__}: {exc}"))
        return classify(
            response.status_code,
            response.headers,
            response.content,
            sent_dedup_key=payload.dedup_key,
        )

    async def aclose(self) -> None:
        """Close the HTTP client if this sink made it."""
        await self._made.aclose()
