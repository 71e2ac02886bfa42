"""The write-ahead journal in front of the DuckDB history.

A DuckDB commit costs milliseconds of CPU whatever its size, so it cannot be the
per-request durability point at hundreds of webhooks a second. Each group commit instead
appends one frame to a journal file and fsyncs it (microseconds of CPU; the wait is I/O,
outside the GIL); the 202 answers follow the fsync. The history actor materialises
frames into the DuckDB tables in larger batches and records, in the same DuckDB
transaction, how far it got (``wal_applied``). On start every frame past that point is
applied again, so a crash anywhere loses nothing that was answered.

Files: ``journal-<segment>.wal`` in the data directory. A frame is
``length (4 bytes, big-endian) | crc32 (4 bytes) | payload``; a torn last frame (a crash
mid-write) fails its length or CRC and is where the segment ends. A fully applied
segment is deleted when the next one starts.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_HEADER = struct.Struct(">II")
ROTATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, order=True)
class Position:
    """A place in the journal: segment number and byte offset within it."""

    segment: int
    offset: int


def _segment_path(directory: Path, segment: int) -> Path:
    return directory / f"journal-{segment:08d}.wal"


def segments(directory: Path) -> list[int]:
    found = []
    for path in directory.glob("journal-*.wal"):
        try:
            found.append(int(path.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(found)


def read_frames(directory: Path, after: Position) -> Iterator[tuple[Position, bytes]]:
    """Every intact frame past ``after``, with the position just after each."""
    for segment in segments(directory):
        if segment < after.segment:
            continue
        start = after.offset if segment == after.segment else 0
        data = _segment_path(directory, segment).read_bytes()
        offset = start
        while offset + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            payload = data[offset + _HEADER.size : end]
            if end > len(data) or zlib.crc32(payload) != crc:
                break  # a torn frame: the segment ends here
            offset = end
            yield Position(segment, offset), payload


def read_span(
    directory: Path, after: Position, upto: Position, max_bytes: int
) -> tuple[list[bytes], Position]:
    """The intact frames past ``after`` that end at or before ``upto``, oldest first, as
    many as fit in ``max_bytes`` of payload (at least one), and where the next read
    starts: just after the last frame read, or ``upto`` once none is left before it.
    Reads only those frames' bytes, not their whole segment (up to 64 MB), and nothing
    past ``upto``: the journal may be writing there meanwhile."""
    payloads: list[bytes] = []
    size = 0
    for segment in segments(directory):
        if segment < after.segment or segment > upto.segment:
            continue
        offset = after.offset if segment == after.segment else 0
        with _segment_path(directory, segment).open("rb") as f:
            f.seek(offset)
            while segment < upto.segment or offset < upto.offset:
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                length, crc = _HEADER.unpack(header)
                if payloads and size + length > max_bytes:
                    return payloads, Position(segment, offset)
                payload = f.read(length)
                if len(payload) < length or zlib.crc32(payload) != crc:
                    break  # a torn frame: the segment ends here
                payloads.append(payload)
                size += length
                offset += _HEADER.size + length
        if payloads and size >= max_bytes:
            return payloads, Position(segment, offset)
    return payloads, upto


class Journal:
    """The append side. Blocking; the history actor calls it from a worker thread."""

    def __init__(self, directory: Path, *, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        directory.mkdir(parents=True, exist_ok=True)
        existing = segments(directory)
        self._segment = (existing[-1] + 1) if existing else 1
        self._file = open(_segment_path(directory, self._segment), "ab")  # noqa: SIM115
        self._offset = 0
        _fsync_dir(directory)

    @property
    def position(self) -> Position:
        return Position(self._segment, self._offset)

    def append(self, payload: bytes) -> Position:
        """Write one frame and fsync it; the position just after it."""
        if self._offset >= self.rotate_bytes:
            self._rotate()
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self._file.write(frame)
        self._file.flush()
        os.fdatasync(self._file.fileno())
        self._offset += len(frame)
        return self.position

    def _rotate(self) -> None:
        self._file.close()
        self._segment += 1
        self._offset = 0
        self._file = open(_segment_path(self.directory, self._segment), "ab")  # noqa: SIM115
        _fsync_dir(self.directory)

    def forget_before(self, applied: Position) -> None:
        """Delete segments wholly applied to DuckDB (never the one being written)."""
        for segment in segments(self.directory):
            if segment < applied.segment and segment < self._segment:
                _segment_path(self.directory, segment).unlink(missing_ok=True)

    def close(self) -> None:
        self._file.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
