"""The threads the delivery actor's first messages opened, bounded by age.

A sink that threads (Slack) posts an incident's later messages as replies to its first
one: ``(sink_id, target, incident_id) -> thread ref``. A start reads the refs of the last
:func:`state.history.queries.thread_lookback` (30 days) from the history; while the
daemon runs, each ref is forgotten once it was learned more than those 30 days ago (the
refs read at start count from the start), within the hour: refs are kept in hourly
buckets, so the bound costs one list slot per ref, not a timestamp. The map holds at most
30 days and an hour of opened incidents and never forgets a thread a restart would know.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime, timedelta

from state.history.queries import thread_lookback

ThreadKey = tuple[str, str, str]  # (sink_id, target, incident_id)

BUCKET = timedelta(hours=1)


class ThreadRefs:
    def __init__(self, known: Mapping[ThreadKey, str], *, now: datetime) -> None:
        self._refs: dict[ThreadKey, str] = dict(known)
        # (when the bucket's first ref was learned, the refs learned within BUCKET of it)
        self._buckets: deque[tuple[datetime, list[ThreadKey]]] = deque()
        if self._refs:
            self._buckets.append((now, list(self._refs)))

    def get(self, key: ThreadKey) -> str | None:
        return self._refs.get(key)

    def learn(self, key: ThreadKey, ref: str, *, at: datetime) -> None:
        """Remember ``ref`` for ``key`` and forget the buckets past the look-back."""
        self._refs[key] = ref
        if self._buckets and at - self._buckets[-1][0] < BUCKET:
            self._buckets[-1][1].append(key)
        else:
            self._buckets.append((at, [key]))
        horizon = thread_lookback(at)
        while self._buckets and self._buckets[0][0] + BUCKET < horizon:
            _, old = self._buckets.popleft()
            for k in old:
                self._refs.pop(k, None)

    def __len__(self) -> int:
        return len(self._refs)
