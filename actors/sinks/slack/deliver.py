"""Slack delivery: slack-sdk's ``WebClient`` in worker threads (its async client needs
asyncio). Every Slack answer is classified here, in one function."""

from __future__ import annotations

import urllib.error
from http.client import HTTPException

import trio
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from actors.sinks.base import Delivered, Outcome, Permanent, Retry
from actors.sinks.slack.config import REQUEST_TIMEOUT_S, WORKER_THREADS
from actors.sinks.slack.render import SlackMessage, render
from eyetok.config import SlackOptions
from eyetok.messages import Deliver

# Slack errors that can succeed later; anything else is the configuration's fault.
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)


def classify(status: int, error: str | None, retry_after: str | None) -> Retry | Permanent:
    """The verdict on a failed Slack call (HTTP status, Slack's ``error``, Retry-After)."""
    after: float | None = None
    if retry_after:
        try:
            after = max(0.0, float(retry_after))
        except ValueError:
            after = None
    if status == 429 or error == "ratelimited":
        return Retry(reason=f"rate limited by Slack (HTTP {status})", after=after or 1.0)
    if status >= 500 or status == 408:
        return Retry(reason=f"Slack answered HTTP {status}", after=after)
    if error in _RETRYABLE_ERRORS:
        return Retry(reason=f"Slack error {error}", after=after)
    return Permanent(reason=f"Slack refused: {error or f'HTTP {status}'}")


class SlackSink:
    sink_type = "slack"

    def __init__(
        self, *, sink_id: str, token: str, api_url: str, options: SlackOptions, rate: float
    ) -> None:
        self.sink_id = sink_id
        self.rate_per_target: float | None = rate if rate > 0 else None
        self._options = options
        self._client = WebClient(
            token=token, base_url=api_url, timeout=REQUEST_TIMEOUT_S, retry_handlers=[]
        )
        self._limiter = trio.CapacityLimiter(WORKER_THREADS)

    def threads(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Nothing to release: every send opens and closes its own connection."""

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> SlackMessage:
        return render(deliver, thread_ts=thread_ref, options=self._options)

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        assert isinstance(payload, SlackMessage)
        return await trio.to_thread.run_sync(self._post, payload, limiter=self._limiter)

    def _post(self, message: SlackMessage) -> Outcome:
        try:
            response = self._client.chat_postMessage(
                channel=message.channel,
                text=message.text,
                blocks=list(message.blocks),
                thread_ts=message.thread_ts,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            resp = exc.response
            error = resp.get("error") if isinstance(resp.data, dict) else None
            return classify(resp.status_code, error, resp.headers.get("Retry-After"))
        except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as exc:
            return Retry(reason=f"cannot reach Slack: {exc}")
        return Delivered(external_ref=str(response.get("ts", "")))
