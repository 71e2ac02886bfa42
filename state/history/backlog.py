"""The journalled frames not yet in DuckDB: held in memory up to a bound, past it left in
the journal files and read back from there.

The history actor journals every group commit (fsynced before its 202) and materialises
the frames into DuckDB in a worker thread, once enough of them wait (:meth:`Backlog.due`)
or half a second after the last time (``actors/history.py``). A materialisation
of a large backlog takes seconds, and ingest keeps journalling meanwhile: under a
sustained burst of batched hooks DuckDB fell behind and the frames waiting for it grew
without bound in memory (``bench/batched.py --source alertmanager -r 2000``: 100,000 rows,
116 MB of frames journalled while the previous materialisation ran, 7 s for one
transaction of them, EyeTok's peak RSS 676 MB, on a 512 MB dyno).

Here at most ``limit_bytes`` of frames (their journal payload's size) are held in memory
(twice that while a write of held frames is under way when a spill drops them). A frame
that would pass it is left in the journal files only, where it is already durable, with
every frame held (they are there too); the materialisation reads that stretch of the
journal back, ``limit_bytes`` at a time, one DuckDB transaction each (its rows and
``wal_applied`` together), in journal order, and the frames journalled meanwhile are held
again as long as they fit: they follow the stretch. A materialisation takes the frames
journalled before it began, not the ones journalled while it runs (a first version did,
one small transaction after another, a COMMIT's fixed cost each: +100 us of CPU per
webhook under a steady stream). On start everything past ``wal_applied`` is read back
the same way (the replay).

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
    """Frames journalled and not yet in DuckDB, oldest first: first those only in the
    journal files (past :attr:`applied`, up to the spill's end), then those held in
    memory, which follow them in the journal."""

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
        # The frames from ``applied`` up to here are in the journal files only. None at
        # start: up to wherever the journal ends (a crash or a stop before DuckDB).
        self._spill_to: Position | None = None
        self._spilling = False  # a spill (not the start's replay) is being read back
        self._spilled_frames = 0
        self._spilled_bytes = 0
        self._taken_to = applied  # the end of the frames the last held() handed out

    def add(self, frame: F, size: int, end: Position) -> bool:
        """Frame ``frame`` (``size`` bytes of payload, ending at ``end``) was journalled:
        hold it, or, if holding it would pass the limit, leave it in the journal files
        with every frame held (they are there too: read back in order, after the ones
        already left there). True when this frame started a spill."""
        if self._spill_to is not None and self.held_bytes + size <= self.limit_bytes:
            self._held.append((end, size, frame))
            self.held_bytes += size
            return False
        started = self._spill_to is not None and not self._spilling
        if self._spill_to is not None:  # at start the replay reads up to the journal's end
            self._spilling = True
            self._spill_to = end
        # counted as left in the journal: the new frame and the held ones no write of
        # :meth:`held` has taken (a write under way still applies those)
        left = [held for at, held, _ in self._held if at > self._taken_to]
        self._spilled_frames += len(left) + 1
        self._spilled_bytes += sum(left) + size
        self._held.clear()
        self.held_bytes = 0
        return started

    def replayed(self) -> None:
        """The start's replay is done (DuckDB has the journal up to :attr:`applied`, or it
        had it already): frames journalled from now on are held."""
        if self._spill_to is None:
            self._spill_to = self.applied
            self._spilled_frames = self._spilled_bytes = 0

    def _journal_first(self, position: Position) -> bool:
        """Whether frames only in the journal files come next (up to ``position`` at
        start)."""
        spill_to = position if self._spill_to is None else self._spill_to
        return self.applied < spill_to

    def due(self, min_bytes: int) -> bool:
        """Whether a materialisation should not wait: ``min_bytes`` of frames are held, or
        frames only the journal files hold (a spill, the start's replay) are to be read
        back."""
        return (
            self.held_bytes >= min_bytes
            or self._spill_to is None
            or (self.applied < self._spill_to)
        )

    def behind(self, position: Position) -> bool:
        """Whether DuckDB misses a frame journalled before ``position`` (not one journalled
        since: a materialisation that took those too ran one small transaction after
        another, a COMMIT's fixed cost each, while webhooks kept coming)."""
        held_before = bool(self._held) and self._held[0][0] <= position
        return held_before or self._journal_first(position)

    def held(self) -> tuple[list[F], Position] | None:
        """The frames held, oldest first, and the position just after the last, once no
        frame before them is left in the journal files; they stay held (and counted)
        until :meth:`applied_to` says DuckDB has them or a spill drops them (a write of
        them under way goes on: at most twice the limit is in memory then)."""
        if not self._held or self._spill_to is None or self.applied < self._spill_to:
            return None
        self._taken_to = self._held[-1][0]
        return [frame for _, _, frame in self._held], self._taken_to

    def read_back(self, upto: Position) -> tuple[list[F], Position]:
        """Blocking: the frames past :attr:`applied` that only the journal files hold and
        that end at or before ``upto`` (where the journal had fsynced to), at most
        ``limit_bytes`` of them, decoded, and where they end."""
        if self._spill_to is not None:
            upto = min(upto, self._spill_to)
        payloads, reached = read_span(self.directory, self.applied, upto, self.limit_bytes)
        payloads.reverse()
        frames: list[F] = []
        while payloads:  # each payload goes once decoded: not both copies of them all
            frames.append(self._decode(payloads.pop()))
        return frames, reached

    def applied_to(self, position: Position, journalled_to: Position) -> Spill | None:
        """DuckDB committed every frame up to ``position``; the journal has written up to
        ``journalled_to``. The spill that ended here, if DuckDB caught up with one."""
        self.applied = position
        done = 0
        while done < len(self._held) and self._held[done][0] <= position:
            self.held_bytes -= self._held[done][1]
            done += 1
        del self._held[:done]
        if self._spill_to is None:  # the start's replay: done once it reached the end
            if position >= journalled_to:
                self.replayed()
            return None
        if not self._spilling or position < self._spill_to:
            return None
        self._spilling = False
        spill = Spill(self._spilled_frames, self._spilled_bytes)
        self._spilled_frames = self._spilled_bytes = 0
        return spill
