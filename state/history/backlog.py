"""The journalled frames not yet in DuckDB: held in memory up to a bound, past it left in
the journal files and read back from there.

The history actor journals every group commit (fsynced before its 202) and materialises
the frames into DuckDB every quarter of a second, in a worker thread. A materialisation
of a large backlog takes seconds, and ingest keeps journalling meanwhile: under a
sustained burst of batched hooks DuckDB fell behind and the frames waiting for it grew
without bound in memory (``bench/batched.py --source alertmanager -r 2000``: 100,000 rows,
116 MB of frames journalled while the previous materialisation ran, 7 s for one
transaction of them, EyeTok's peak RSS 676 MB, on a 512 MB dyno).

Here at most ``limit_bytes`` of frames (their journal payload's size) are in memory, held
or being materialised. Past it a frame stays in the journal files only, where it is
already durable, and every later frame with it until DuckDB has caught up; the
materialisation reads them back, ``limit_bytes`` at a time, one DuckDB transaction each
(its rows and ``wal_applied`` together), in journal order. On start everything past
``wal_applied`` is read back the same way (the replay).

One task at a time materialises (the caller's lock); :meth:`Backlog.add` and the
bookkeeping run on the event loop, :meth:`Backlog.read_back` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from state.history.wal import Position, read_span

F = TypeVar("F")

LIMIT_BYTES = 8 * 2**20
"""The most frames held in memory, by journal payload size (decoded, a frame's rows take
about 1.5 times its payload; 8 MB is about 7,000 rows), and so the most one DuckDB
transaction of a materialisation inserts (or one frame, if larger).
``bench/batched.py --source alertmanager -r 600``, EyeTok's peak RSS and whole-life CPU
per alert (median of 3 runs alternating with the others; unbounded before: 358 MB,
140 us): 4 MB 234 MB, 161 us; 8 MB 262 MB, 134 us; 16 MB 274 MB, 155 us (CPU moves
by about 15 % between runs). Smaller transactions mean more DuckDB commits, milliseconds
of CPU each; larger ones hold more at once: their frames, their JSON text, DuckDB's copy
of their rows."""


@dataclass(frozen=True)
class Spill:
    """What a spill left in the journal files, once DuckDB caught up with it."""

    frames: int
    payload_bytes: int


class Backlog(Generic[F]):
    """Frames journalled and not yet in DuckDB, oldest first: first those held in memory,
    then (once ``limit_bytes`` was reached) those only in the journal files."""

    def __init__(
        self,
        directory: Path,
        applied: Position,
        *,
        limit_bytes: int = LIMIT_BYTES,
        decode: Callable[[bytes], F],
    ) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self._decode = decode
        self.applied = applied  # every frame before it is in DuckDB
        self._held: list[tuple[Position, int, F]] = []  # (end, payload size, frame)
        self.held_bytes = 0
        # Frames past what is held may be in the journal files only. True at start: the
        # journal may hold frames past ``applied`` (a crash or a stop before DuckDB).
        self.in_journal = True
        self._spilled_frames = 0
        self._spilled_bytes = 0

    def add(self, frame: F, size: int, end: Position) -> bool:
        """Frame ``frame`` (``size`` bytes of payload, ending at ``end``) was journalled:
        hold it, or leave it in the journal files if holding it would pass the limit, or
        if earlier frames were left there. True when this frame started leaving them."""
        if not self.in_journal and self.held_bytes + size <= self.limit_bytes:
            self._held.append((end, size, frame))
            self.held_bytes += size
            return False
        started = not self.in_journal
        self.in_journal = True
        self._spilled_frames += 1
        self._spilled_bytes += size
        return started

    def behind(self, position: Position) -> bool:
        """Whether DuckDB misses a frame journalled before ``position``."""
        return bool(self._held) or (self.in_journal and self.applied < position)

    def held(self) -> tuple[list[F], Position] | None:
        """The frames held, oldest first, and the position just after the last; they stay
        held (and counted) until :meth:`applied_to` says DuckDB has them."""
        if not self._held:
            return None
        return [frame for _, _, frame in self._held], self._held[-1][0]

    def read_back(self, upto: Position) -> tuple[list[F], Position]:
        """Blocking: the frames past :attr:`applied` that end at or before ``upto`` (where
        the journal had fsynced to), at most ``limit_bytes`` of them, decoded, and where
        they end. Only once nothing is held (the held frames come first)."""
        assert not self._held, "held frames precede the ones in the journal files"
        payloads, reached = read_span(self.directory, self.applied, upto, self.limit_bytes)
        payloads.reverse()
        frames: list[F] = []
        while payloads:  # each payload goes once decoded: not both copies of them all
            frames.append(self._decode(payloads.pop()))
        return frames, reached

    def applied_to(self, position: Position, journalled_to: Position) -> Spill | None:
        """DuckDB committed every frame up to ``position``; the journal has written up to
        ``journalled_to``. The spill that ended here, if DuckDB caught up with one: frames
        are held in memory again from the next one on."""
        self.applied = position
        done = 0
        while done < len(self._held) and self._held[done][0] <= position:
            self.held_bytes -= self._held[done][1]
            done += 1
        del self._held[:done]
        if not self.in_journal or self._held or position < journalled_to:
            return None
        self.in_journal = False
        spill = Spill(self._spilled_frames, self._spilled_bytes)
        self._spilled_frames = self._spilled_bytes = 0
        return spill if spill.frames else None
