"""Random identifiers for the hot path (signal and incident ids), from the operating
system's CSPRNG like :func:`secrets.token_hex`, but read 4 KiB at a time and turned
into hex once per read.

``os.urandom`` releases the GIL for its system call; on the event loop thread, taking it
back waits for whichever worker thread holds it (up to a switch interval), and two ids
per webhook made that a measurable share of the loop's time. The bytes are the same
quality; each is handed out once, without a lock (a lock's acquire and release were the
costliest line of an id): a read is cut into 16-byte slots, and every id takes the next
slot number from one counter (``itertools.count``, atomic under the GIL) and reads that
slot of the read it sees, so no two ids read the same slot of the same read. An id whose
slot is past that read makes a new one starting at its slot (two threads doing so at
once make two reads, each used from its own first slot on: still no slot twice); a
forked child starts a fresh read.
"""

from __future__ import annotations

import itertools
import os

_CHUNK = 4096
_SLOT = 16  # bytes an id may take from a read; a longer one comes straight from the OS
_SLOTS = _CHUNK // _SLOT


class _RandomHex:
    def __init__(self) -> None:
        self._slots = itertools.count()
        self._refill()

    def _refill(self) -> None:
        self._read = (next(self._slots), os.urandom(_CHUNK).hex())

    def take(self, nbytes: int) -> str:
        if nbytes > _SLOT:
            return os.urandom(nbytes).hex()
        slot = next(self._slots)
        first, digits = self._read  # one tuple, replaced whole
        at = slot - first
        if not 0 <= at < _SLOTS:
            digits = os.urandom(_CHUNK).hex()
            self._read = (slot, digits)
            at = 0
        start = 2 * _SLOT * at
        return digits[start : start + 2 * nbytes]


_SOURCE = _RandomHex()
os.register_at_fork(after_in_child=_SOURCE._refill)


def random_hex(nbytes: int) -> str:
    """``nbytes`` random bytes as hex (``secrets.token_hex(nbytes)``)."""
    return _SOURCE.take(nbytes)
