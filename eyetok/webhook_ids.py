"""The Standard Webhooks ids a hook accepted recently: a replay is answered, not re-applied.

A signed message stays valid for the signature's tolerance (5 minutes either side of its
``webhook-timestamp``), so the same bytes sent again inside that window verify again.
The ``webhook-id`` is the sender's dedupe key (stable across its retries), so a hook
remembers each id it accepted, per tenant and per hook, until ``max(timestamp, now) +
tolerance``: past the timestamp's side of that the signature itself is stale, and the
``now`` side covers the sender's own retries of a message it thinks we missed. A
duplicate is answered 202 with the signal ids of the original, and nothing is applied.

- Only an *accepted* message is remembered. One answered 4xx or 503, or only partly
  accepted, is forgotten, so the sender's retry is processed in full.
- A duplicate that arrives while the original is still being applied waits for the
  original's outcome (bounded by the original's own path to its answer) rather than
  being applied twice concurrently.
- Memory is bounded: at most ``max_ids`` ids; expired ones go first, and when the map is
  full the oldest go even if unexpired (a replay of one of those would be re-applied,
  which for the batch hooks is an update of the same incident, dedup keys being stable).
- Across a restart the window holds without a write of its own: every signal carries its
  message's ``webhook-id`` and signal count into the journal, and the daemon, before it
  listens, :meth:`restore`s the ids of messages whose signals were all journalled in the
  last ``2 * tolerance`` (the timestamp may have been up to one tolerance ahead of the
  arrival). A partly accepted message is not restored, so its retry is applied. A fresh
  dyno (an empty data directory) starts with no ids: a replay inside the remaining
  window is applied again, as an update of the same incident.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import trio

from eyetok.clock import Clock

MAX_IDS = 100_000

# (tenant, hook source, webhook-id)
WebhookKey = tuple[str, str, str]


@dataclass
class _Entry:
    expires_at: datetime
    signal_ids: tuple[str, ...] | None = None  # None: the original is still being applied
    settled: trio.Event = field(default_factory=trio.Event)


class AcceptedWebhookIds:
    def __init__(self, clock: Clock, *, tolerance_s: int, max_ids: int = MAX_IDS) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be at least 1")
        self._clock = clock
        self._tolerance = timedelta(seconds=tolerance_s)
        self._max_ids = max_ids
        self._entries: OrderedDict[WebhookKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def admit(self, key: WebhookKey, signed_at: datetime) -> tuple[str, ...] | None:
        """``None``: ``key`` is new; the caller applies the message and must then call
        :meth:`accepted` or :meth:`forget`. A tuple: ``key`` was accepted already, with
        these signal ids; the caller answers without applying anything."""
        while True:
            self._expire()
            entry = self._entries.get(key)
            if entry is None:
                break
            if entry.signal_ids is not None:
                return entry.signal_ids
            await entry.settled.wait()
        while len(self._entries) >= self._max_ids:
            _, evicted = self._entries.popitem(last=False)
            evicted.settled.set()
        self._entries[key] = _Entry(expires_at=max(signed_at, self._clock.now()) + self._tolerance)
        return None

    def restore(self, key: WebhookKey, signal_ids: tuple[str, ...], received_at: datetime) -> bool:
        """Remember ``key``, accepted at ``received_at`` before a restart, until
        ``received_at + 2 * tolerance`` (its timestamp was at most one tolerance ahead).
        False when that is already past or the map is full."""
        expires_at = received_at + 2 * self._tolerance
        if expires_at <= self._clock.now() or len(self._entries) >= self._max_ids:
            return False
        entry = _Entry(expires_at=expires_at, signal_ids=signal_ids)
        entry.settled.set()
        self._entries[key] = entry
        return True

    def accepted(self, key: WebhookKey, signal_ids: tuple[str, ...]) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.signal_ids = signal_ids
            entry.settled.set()

    def forget(self, key: WebhookKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.settled.set()

    def _expire(self) -> None:
        now = self._clock.now()
        while self._entries:
            key, oldest = next(iter(self._entries.items()))
            if oldest.expires_at > now or oldest.signal_ids is None:
                return
            del self._entries[key]
