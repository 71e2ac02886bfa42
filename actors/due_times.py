"""When each of an actor's keys falls due next, kept so that finding what is due does not
scan every key (owned by one actor, never shared).

The incidents actor keeps two of these: the SEV1s with a step of their human loop
pending and the drain incidents waiting to fall quiet. Under a burst thousands of
incidents are open; the actor asks "what is due now, and when is the next?" on every turn
of its loop, so both answers cost O(log n) here, not a pass over every open incident.

A min-heap of ``(due, key)`` beside a dict of each key's current due time. Setting or
removing a key leaves its old heap entry behind (an entry counts only while it matches
the dict); old entries are dropped as they reach the top, and the heap is rebuilt from
the dict once they outnumber the live ones, so its size stays within twice the keys.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from datetime import datetime
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_SLACK = 64  # stale heap entries tolerated beyond twice the live keys before a rebuild


class DueTimes(Generic[K]):
    """Each key's due time; the earliest one and the due ones without a scan."""

    def __init__(self) -> None:
        self._due: dict[K, tuple[datetime, int]] = {}  # key -> (due, its heap entry's stamp)
        self._heap: list[tuple[datetime, int, K]] = []
        self._stamp = 0  # orders equal due times; keys themselves are never compared

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def get(self, key: K) -> datetime | None:
        entry = self._due.get(key)
        return entry[0] if entry is not None else None

    def set(self, key: K, due: datetime) -> None:
        known = self._due.get(key)
        if known is not None and known[0] == due:
            return
        self._stamp += 1
        self._due[key] = (due, self._stamp)
        heapq.heappush(self._heap, (due, self._stamp, key))
        if len(self._heap) > 2 * len(self._due) + _SLACK:
            self._rebuild()

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def next_due(self) -> datetime | None:
        """The earliest due time (None: nothing is due, ever)."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due_at(self, now: datetime) -> list[K]:
        """The keys due at ``now``, earliest first. They stay due until they are set again
        or discarded."""
        self._drop_stale()
        due: list[tuple[datetime, int, K]] = []
        while self._heap and self._heap[0][0] <= now:
            entry = heapq.heappop(self._heap)
            if self._due.get(entry[2]) == entry[:2]:
                due.append(entry)
        for entry in due:
            heapq.heappush(self._heap, entry)
        return [key for _, _, key in due]

    def _drop_stale(self) -> None:
        heap, live = self._heap, self._due
        while heap and live.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)

    def _rebuild(self) -> None:
        self._heap = [(due, stamp, key) for key, (due, stamp) in self._due.items()]
        heapq.heapify(self._heap)
