"""Random identifiers for the hot path (signal and incident ids), from the operating
system's CSPRNG like :func:`secrets.token_hex`, but read 4 KiB at a time and turned
into hex once per read.

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


class _RandomHex:
    """4 KiB of the OS's random bytes, as hex, handed out a slice at a time (one
    ``hex()`` per read, not one per id)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refill()

    def _refill(self) -> None:
        self._hex = os.urandom(_CHUNK).hex()
        self._at = 0

    def take(self, nbytes: int) -> str:
        if nbytes > _CHUNK:
            return os.urandom(nbytes).hex()
        digits = 2 * nbytes
        with self._lock:
            start = self._at
            end = start + digits
            if end > 2 * _CHUNK:
                self._refill()
                start, end = 0, digits
            self._at = end
            return self._hex[start:end]


_SOURCE = _RandomHex()
os.register_at_fork(after_in_child=_SOURCE._refill)


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as hex (``secrets.token_hex(nbytes)``)."""
    return _SOURCE.take(nbytes)
