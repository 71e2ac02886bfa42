"""Slack delivery: slack-sdk's ``WebClient`` in worker threads (its async client needs
asyncio), sending through a pool of kept-alive connections
(:mod:`actors.sinks.slack.transport`). Every Slack answer is classified here, in one
function.

A post whose answer never came (a timeout, a connection cut after the request went out)
may have landed. Every post carries its delivery id in the message ``metadata``
(``event_type`` ``eyetok_delivery``); before posting again after such an attempt, the
channel's recent history (or the thread's replies) is searched for it, from the first
attempt's time less a margin. Found: the delivery is done, with that ``ts``; a retry
never posts twice. A row planned before this process started (re-queued after a restart)
is looked for the same way before its first post here. Not found: post again. History
unreadable for good (a missing ``channels:history`` scope): post again, and say so in the
log.
"""

from __future__ import annotations

import re
import threading
import urllib.error
from collections import OrderedDict
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

import trio
from slack_sdk.errors import SlackApiError

from actors.sinks.base import Delivered, Outcome, Permanent, Retry
from actors.sinks.slack.config import WORKER_THREADS
from actors.sinks.slack.render import SlackMessage, SlackUpdate, render
from actors.sinks.slack.transport import PooledWebClient
from eyetok import log
from eyetok.clock import Clock, SystemClock
from eyetok.config import SlackOptions
from eyetok.messages import Deliver

# Slack errors that can succeed later; anything else is the configuration's fault.
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)
METADATA_EVENT = "eyetok_delivery"
# the history is searched from the first attempt's time less this (clock skew, queueing)
LOOKBACK_MARGIN_S = 120.0
_HISTORY_LIMIT = 200  # messages a page
_HISTORY_PAGES = 5  # pages looked through (the newest 1,000 messages since the attempt)
_REMEMBERED = 10_000  # deliveries whose attempts are remembered (oldest forgotten first)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_UNREACHABLE = (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException, OSError)


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


def _refused(exc: SlackApiError) -> Retry | Permanent:
    resp = exc.response
    error = resp.get("error") if isinstance(resp.data, dict) else None
    return classify(resp.status_code, error, resp.headers.get("Retry-After"))


def _landed_unknown(exc: BaseException) -> bool:
    """Whether a post that failed with ``exc`` may still have reached Slack: not when the
    connection was never made."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return not isinstance(reason, ConnectionRefusedError)


@dataclass
class _Attempts:
    first_at: float  # epoch seconds of the first attempt
    maybe_landed: bool = False  # the last attempt's outcome is unknown


class SlackSink:
    sink_type = "slack"

    def __init__(
        self,
        *,
        sink_id: str,
        token: str,
        api_url: str,
        options: SlackOptions,
        rate: float,
        clock: Clock | None = None,
    ) -> None:
        self.sink_id = sink_id
        self.rate_per_target: float | None = rate if rate > 0 else None
        self._options = options
        self._clock: Clock = clock or SystemClock()
        self._started = self._clock.now().timestamp()  # rows planned earlier: look first
        # typed int by slack-sdk, used as is: fractions of a second work (tests use them)
        timeout: Any = options.request_timeout_s
        self._client = PooledWebClient(
            token=token, base_url=api_url, timeout=timeout, pool_size=WORKER_THREADS
        )
        self._limiter = trio.CapacityLimiter(WORKER_THREADS)
        self._lock = threading.Lock()  # the worker threads share the two maps below
        self._attempts: OrderedDict[str, _Attempts] = OrderedDict()
        self._channel_ids: dict[str, str] = {}  # channel name -> id
        self._log = log.get("delivery")

    def threads(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Close the kept-alive connections."""
        self._client.close()

    def render(self, deliver: Deliver, *, thread_ref: str | None) -> SlackMessage:
        return render(deliver, thread_ts=thread_ref, options=self._options)

    async def send(self, payload: object, *, idempotency_key: str) -> Outcome:
        assert isinstance(payload, SlackMessage)
        now = self._clock.now().timestamp()  # read here: a trio-anchored clock, not a thread
        return await trio.to_thread.run_sync(
            self._attempt, payload, idempotency_key, now, limiter=self._limiter
        )

    def _attempt(self, message: SlackMessage, key: str, now: float) -> Outcome:
        with self._lock:
            record = self._attempts.get(key)
            if record is None:
                record = self._attempts[key] = _Attempts(first_at=now)
                planned = message.planned_at.timestamp() if message.planned_at else now
                if planned < self._started:
                    # re-queued after a restart: the process before may have posted it
                    record.first_at, record.maybe_landed = planned, True
                while len(self._attempts) > _REMEMBERED:
                    self._attempts.popitem(last=False)
        if record.maybe_landed:
            found = self._find_landed(message, key, record.first_at)
            if isinstance(found, Retry):
                return found
            if found is not None:
                self._forget(key)
                self._log.info(
                    "slack_post_found",
                    delivery_id=key,
                    sink=self.sink_id,
                    channel=message.channel,
                    ts=found,
                    why="an attempt whose answer never came had posted it; not posted again",
                )
                return Delivered(external_ref=found)
        record.maybe_landed = True
        outcome, unknown = self._post(message, key)
        if isinstance(outcome, Retry):
            record.maybe_landed = unknown
        else:
            self._forget(key)
        return outcome

    def _forget(self, key: str) -> None:
        with self._lock:
            self._attempts.pop(key, None)

    def _post(self, message: SlackMessage, key: str) -> tuple[Outcome, bool]:
        """One ``chat.postMessage``; the outcome and whether it may have landed unseen.
        A message that rewrites the incident's first post (an acknowledgement) does that
        first: ``chat.update`` is idempotent, so a retry repeats it harmlessly."""
        if message.update is not None:
            self._update(message.update, key)
        try:
            response = self._client.chat_postMessage(
                channel=message.channel,
                text=message.text,
                blocks=list(message.blocks),
                thread_ts=message.thread_ts,
                unfurl_links=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"delivery_id": key}},
            )
        except SlackApiError as exc:
            return _refused(exc), False
        except _UNREACHABLE as exc:
            return Retry(reason=f"cannot reach Slack: {exc}"), _landed_unknown(exc)
        channel_id = response.get("channel")
        if isinstance(channel_id, str) and channel_id:
            with self._lock:
                self._channel_ids[message.channel.lstrip("#")] = channel_id
        return Delivered(external_ref=str(response.get("ts", ""))), False

    def _update(self, update: SlackUpdate, key: str) -> None:
        """``chat.update`` of the incident's first post; a failure is logged (the thread
        reply that follows says the same thing)."""
        try:
            self._client.chat_update(
                channel=self._channel_ref(update.channel) or update.channel,
                ts=update.ts,
                text=update.text,
                blocks=list(update.blocks),
            )
        except SlackApiError as exc:
            detail = _refused(exc).reason
            self._log.warning(
                "slack_update_failed", delivery_id=key, sink=self.sink_id, detail=detail
            )
        except _UNREACHABLE as exc:
            self._log.warning(
                "slack_update_failed", delivery_id=key, sink=self.sink_id, detail=str(exc)
            )

    def _find_landed(self, message: SlackMessage, key: str, first_at: float) -> str | Retry | None:
        """The ``ts`` of the post of delivery ``key`` if an earlier attempt landed it; None
        when it did not (or the history cannot be read: post again); Retry when Slack
        cannot be asked right now."""
        oldest = f"{first_at - LOOKBACK_MARGIN_S:.6f}"
        try:
            channel = self._channel_ref(message.channel)
            if channel is None:
                self._unreadable(message, key, "channel not found by conversations.list")
                return None
            cursor: str | None = None
            for _ in range(_HISTORY_PAGES):
                page = self._history_page(message, channel, oldest, cursor)
                for posted in page.get("messages") or []:
                    metadata = posted.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if (
                        metadata.get("event_type") == METADATA_EVENT
                        and payload.get("delivery_id") == key
                    ):
                        return str(posted.get("ts", ""))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if cursor is None:
                    break
        except SlackApiError as exc:
            verdict = _refused(exc)
            if isinstance(verdict, Permanent):
                self._unreadable(message, key, verdict.reason)
                return None
            return Retry(
                reason=f"a timed-out post may have landed, history unreadable: {verdict.reason}",
                after=verdict.after,
            )
        except _UNREACHABLE as exc:
            return Retry(reason=f"a timed-out post may have landed, cannot reach Slack: {exc}")
        return None

    def _history_page(
        self, message: SlackMessage, channel: str, oldest: str, cursor: str | None
    ) -> Any:
        """One page of the channel's history (or the thread's replies) since ``oldest``."""
        if message.thread_ts:
            return self._client.conversations_replies(
                channel=channel,
                ts=message.thread_ts,
                oldest=oldest,
                include_all_metadata=True,
                limit=_HISTORY_LIMIT,
                cursor=cursor,
            )
        return self._client.conversations_history(
            channel=channel,
            oldest=oldest,
            include_all_metadata=True,
            limit=_HISTORY_LIMIT,
            cursor=cursor,
        )

    def _unreadable(self, message: SlackMessage, key: str, why: str) -> None:
        self._log.warning(
            "slack_history_unreadable",
            delivery_id=key,
            sink=self.sink_id,
            channel=message.channel,
            why=f"{why}; posting again, a duplicate is possible "
            "(grant channels:history, groups:history and channels:read)",
        )

    def _channel_ref(self, channel: str) -> str | None:
        """A channel id for the history methods (they take no names)."""
        name = channel.lstrip("#")
        if _CHANNEL_ID.match(name):
            return name
        with self._lock:
            known = self._channel_ids.get(name)
        if known is not None:
            return known
        cursor: str | None = None
        for _ in range(50):  # at most 50 pages of 1,000 channels
            page = self._client.conversations_list(
                types="public_channel,private_channel", limit=1000, cursor=cursor
            )
            for found in page.get("channels") or []:
                if found.get("name") == name:
                    with self._lock:
                        self._channel_ids[name] = str(found["id"])
                    return str(found["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                break
        return None
