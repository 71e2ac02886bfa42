"""The threads the delivery actor's first messages opened, bounded by age.

A sink that threads (Slack) posts an incident's later messages as replies to its first
one: ``(sink_id, target, incident_id) -> thread ref``. A start reads the refs of the last
:func:`state.history.queries.thread_lookback` (30 days) from the history; while the
daemon runs, each ref is forgotten the same 30 days after it was learned (the refs read
at start count from the start), so the map holds at most 30 days of opened incidents and
never forgets a thread a restart would still know.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime

from state.history.queries import thread_lookback

ThreadKey = tuple[str, str, str]  # (sink_id, target, incident_id)


class ThreadRefs:
    def __init__(self, known: Mapping[ThreadKey, str], *, now: datetime) -> None:
        self._refs: dict[ThreadKey, str] = dict(known)
        self._learned: deque[tuple[datetime, ThreadKey]] = deque((now, k) for k in self._refs)

    def get(self, key: ThreadKey) -> str | None:
        return self._refs.get(key)

    def learn(self, key: ThreadKey, ref: str, *, at: datetime) -> None:
        """Remember ``ref`` for ``key`` and forget the refs learned before the look-back."""
        self._refs[key] = ref
        self._learned.append((at, key))
        horizon = thread_lookback(at)
        while self._learned and self._learned[0][0] < horizon:
            _, old = self._learned.popleft()
            self._refs.pop(old, None)

    def __len__(self) -> int:
        return len(self._refs)
