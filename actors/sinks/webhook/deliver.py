"""Webhook delivery: one signed JSON POST per attempt over the sink's kept-alive
connections (:mod:`actors.sinks.webhook.transport`). Every HTTP answer other than 2xx is
judged in one function, :func:`classify`.

Headers of an attempt (Standard Webhooks):

- ``webhook-id``: the idempotency key (the outbox row id), the same on every retry, so
  the receiver can drop duplicates;
- ``webhook-timestamp``: Unix seconds of this attempt, read from the injected clock;
- ``webhook-signature``: ``v1,…`` per active secret (two during a rotation's 30 days);
- ``content-type: application/json``.

Redirects are not followed (the spec: update the URL instead) and the environment's
proxy/netrc settings are not read: what is sent, and where, is only what is configured.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import msgspec

from actors.sinks.base import Delivered, Outcome, Permanent, Retry
from actors.sinks.webhook.config import CONNECT_TIMEOUT_S, USER_AGENT
from actors.sinks.webhook.render import WebhookPayload, render
from actors.sinks.webhook.transport import TransportError, TransportTimeout, WebhookConnections
from eyetok.clock import Clock
from eyetok.errors import ConfigError
from eyetok.messages import Deliver
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.standard_webhooks import active_secrets, decode_secret, webhook_headers_by_keys

_RETRYABLE_4XX = frozenset({408, 425, 429})  # timeout, too early, rate limited


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def retry_after_s(value: str | None, *, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` asks for: delta-seconds or an HTTP-date (relative to
    ``now``). None when absent or unreadable; never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is GMT; "-0000" parses as naive
        return None
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def classify(status: int, headers: Mapping[str, str], *, now: datetime) -> Retry | Permanent:
    """The verdict on a webhook answer that is not 2xx.

    408, 425, 429 and every 5xx may succeed later (honouring ``Retry-After``); 410 Gone
    means the receiver wants no more webhooks; 3xx is refused (redirects are not
    followed: the URL must be updated); every other status will not change by retrying.
    """
    after = retry_after_s(_header(headers, "retry-after"), now=now)
    if status == 429:
        return Retry(reason="rate limited by the receiver (HTTP 429)", after=after)
    if status in _RETRYABLE_4XX or 500 <= status <= 599:
        return Retry(reason=f"receiver answered HTTP {status}", after=after)
    if status == 410:
        return Permanent(reason="receiver answered HTTP 410 Gone: it wants no more webhooks")
    if 300 <= status <= 399:
        return Permanent(reason=f"receiver redirects (HTTP {status}); update the sink's URL")
    return Permanent(reason=f"receiver refused with HTTP {status}")


def _usable_msg_id(key: str) -> bool:
    # a key with no whitespace (str.isspace) splits into itself alone; "" into nothing
    return key.isascii() and "." not in key and key.split() == [key]


class WebhookSink:
    """A generic webhook endpoint. ``secret``/``previous_secret`` are ``whsec_`` secrets."""

    sink_type = "webhook"

    def __init__(
        self,
        *,
        sink_id: str,
        config: WebhookSinkConfig,
        secret: str,
        previous_secret: str | None = None,
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._keys = {secret: decode_secret(secret)}  # decoded once, not per attempt
        if previous_secret is not None:
            self._keys[previous_secret] = decode_secret(previous_secret)
            if config.rotation_started is None:
                raise ValueError("a previous secret needs the config's rotated_at")
        self.sink_id = sink_id
        self.rate_per_target: float | None = config.rate_per_second
        self.url = config.url
        self._config = config
        self._secret = secret
        self._previous = previous_secret
        self._clock = clock
        self._connections = WebhookConnections(
            config.url,
            timeout_s=config.timeout_s,
            connect_timeout_s=min(CONNECT_TIMEOUT_S, config.timeout_s),
            user_agent=USER_AGENT,
            ssl_context=ssl_context,
        )

    @classmethod
    def from_config(
        cls,
        sink_id: str,
        config: WebhookSinkConfig,
        environ: Mapping[str, str],
        *,
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebhookSink:
        """The sink with its secrets read from ``environ``; :class:`ConfigError` names the
        environment variable that is missing or malformed."""
        for field in (config.secret_env, config.previous_secret_env):
            if field is None:
                continue
            value = environ.get(field)
            if not value:
                raise ConfigError(field, f"sink {sink_id!r} needs its webhook secret here")
            try:
                decode_secret(value)
            except ValueError as exc:
                raise ConfigError(field, str(exc)) from exc
        previous = (
            None if config.previous_secret_env is None else environ[config.previous_secret_env]
        )
        return cls(
            sink_id=sink_id,
            config=config,
            secret=environ[config.secret_env],
            previous_secret=previous,
            clock=clock,
            ssl_context=ssl_context,
        )

    def threads(self) -> bool:
        return False

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> WebhookPayload:
        return render(deliver)

    def active_secrets(self, now: datetime) -> list[str]:
        return active_secrets(self._secret, self._previous, self._config.rotation_started, now)

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        if not isinstance(payload, WebhookPayload):
            raise TypeError(f"WebhookSink sends WebhookPayload, not {type(payload).__name__}")
        if not _usable_msg_id(idempotency_key):
            return Permanent(reason=f"unusable webhook-id {idempotency_key!r}")
        body = msgspec.json.encode(payload)
        now = self._clock.now()
        timestamp = math.floor(now.timestamp())
        keys = [self._keys[secret] for secret in self.active_secrets(now)]
        headers = webhook_headers_by_keys(keys, idempotency_key, timestamp, body)
        headers["content-type"] = "application/json"
        try:
            answer = await self._connections.post(body, headers)
        except TransportTimeout as exc:
            return Retry(reason=f"webhook timed out: {exc}")
        except TransportError as exc:
            return Retry(reason=f"cannot reach the webhook: {type(exc).__name__}: {exc}")
        if 200 <= answer.status <= 299:
            return Delivered(external_ref=idempotency_key)
        return classify(answer.status, answer.headers, now=self._clock.now())

    async def aclose(self) -> None:
        await self._connections.aclose()
