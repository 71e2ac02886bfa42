"""The frames waiting for DuckDB: held in memory up to their bound, past it left in the
journal files and read back from there in order, a bound's worth at a time."""

from __future__ import annotations

from pathlib import Path

from state.history.backlog import Backlog, Spill
from state.history.wal import Journal, Position


def _frame(n: int) -> bytes:
    return f"frame {n:03d} ".encode() + b"x" * 90  # 100 bytes of payload


def test_frames_past_the_bound_stay_in_the_journal_and_come_back_in_order(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    backlog = Backlog[bytes](tmp_path, Position(0, 0), limit_bytes=350, decode=bytes)
    assert backlog.applied_to(journal.position, journal.position) is None  # nothing to replay
    started = []
    for n in range(10):
        payload = _frame(n)
        end = journal.append(payload)
        started.append(backlog.add(payload, len(payload), end))
        assert backlog.held_bytes <= 350
    assert started == [False, False, False, True, *[False] * 6]  # the fourth passed the bound

    held = backlog.held()
    assert held is not None
    frames, upto = held
    assert frames == [_frame(0), _frame(1), _frame(2)]
    assert backlog.applied_to(upto, journal.position) is None  # seven still in the journal
    assert backlog.held() is None
    assert backlog.held_bytes == 0

    got: list[bytes] = []
    while backlog.behind(journal.position):
        frames, upto = backlog.read_back(journal.position)
        assert 1 <= len(frames) <= 3  # a bound's worth at a time
        got += frames
        spill = backlog.applied_to(upto, journal.position)
    assert got == [_frame(n) for n in range(3, 10)]
    assert spill == Spill(frames=7, payload_bytes=700)

    # caught up: the next frame is held again
    end = journal.append(_frame(10))
    assert backlog.add(_frame(10), 100, end) is False
    assert backlog.held() == ([_frame(10)], end)
    journal.close()


def test_held_frames_stay_counted_until_duckdb_has_them(tmp_path: Path) -> None:
    """A materialisation under way keeps its frames counted: those journalled meanwhile
    are held only while the two together fit the bound."""
    journal = Journal(tmp_path)
    backlog = Backlog[bytes](tmp_path, Position(0, 0), limit_bytes=250, decode=bytes)
    backlog.applied_to(journal.position, journal.position)
    first = journal.append(_frame(0))
    backlog.add(_frame(0), 100, first)
    held = backlog.held()
    assert held == ([_frame(0)], first)  # being materialised
    second = journal.append(_frame(1))
    assert backlog.add(_frame(1), 100, second) is False
    third = journal.append(_frame(2))
    assert backlog.add(_frame(2), 100, third) is True  # 300 bytes would be held
    assert backlog.applied_to(first, journal.position) is None
    assert backlog.held() == ([_frame(1)], second)
    assert backlog.held_bytes == 100
    journal.close()


def test_at_start_the_journal_past_the_applied_position_is_read_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    applied = journal.append(_frame(0))
    for n in range(1, 6):
        journal.append(_frame(n))
    journal.close()
    again = Journal(tmp_path)  # a restart: a new segment
    backlog = Backlog[bytes](tmp_path, applied, limit_bytes=200, decode=bytes)
    got: list[bytes] = []
    while backlog.behind(again.position):
        frames, upto = backlog.read_back(again.position)
        got += frames
        assert backlog.applied_to(upto, again.position) is None  # a replay, not a spill
    assert got == [_frame(n) for n in range(1, 6)]
    assert backlog.applied == again.position
    end = again.append(_frame(6))
    assert backlog.add(_frame(6), 100, end) is False
    again.close()
