"""Random identifiers for the hot path (signal and incident ids), from the operating
system's CSPRNG like :func:`secrets.token_hex`, but read 4 KiB at a time.

``os.urandom`` releases the GIL for its system call; on the event loop thread, taking it
back waits for whichever worker thread holds it (up to a switch interval), and two ids
per webhook made that a measurable share of the loop's time. The bytes are the same
quality; each is handed out once (a lock guards the position; a forked child starts
from fresh bytes).
"""

from __future__ import annotations

import os
import threading

_CHUNK = 4096


class _RandomBytes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refill()

    def _refill(self) -> None:
        self._bytes = os.urandom(_CHUNK)
        self._at = 0

    def take(self, n: int) -> bytes:
        if n > _CHUNK:
            return os.urandom(n)
        with self._lock:
            if self._at + n > _CHUNK:
                self._refill()
            start, self._at = self._at, self._at + n
            return self._bytes[start : self._at]


_SOURCE = _RandomBytes()
os.register_at_fork(after_in_child=_SOURCE._refill)


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as hex (``secrets.token_hex(nbytes)``)."""
    return _SOURCE.take(nbytes).hex()
