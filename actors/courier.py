"""A courier carries an actor's messages up a back edge (to history) without making the
actor wait: the actor hands them over at once, a task of its own delivers them in order.

History sends forward into the suppression and budget actors; if those actors awaited
history's inbox while history awaited theirs, the two would deadlock. With a courier the
actor's inbox loop never blocks on history, so the cycle always drains.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

M = TypeVar("M")


class Courier(Generic[M]):
    def __init__(self, to: trio.MemorySendChannel[M]) -> None:
        self._to = to
        self._queue: deque[M] = deque()
        self._wake = trio.Event()

    def post(self, message: M) -> None:
        self._queue.append(message)
        self._wake.set()

    def waiting(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Deliver posted messages until cancelled; on cancellation, deliver what is left
        (shielded, bounded) so a drain loses nothing handed over."""
        try:
            while True:
                while self._queue:
                    await self._to.send(self._queue[0])
                    self._queue.popleft()
                self._wake = trio.Event()
                await self._wake.wait()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                while self._queue:
                    try:
                        await self._to.send(self._queue.popleft())
                    except (trio.ClosedResourceError, trio.BrokenResourceError):
                        break
