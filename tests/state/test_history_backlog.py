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
    # the fourth passed the bound: it and the three held are left in the journal; 4-6 are
    # held after them, the eighth passes it again (the same spill, longer), 8-9 are held
    assert started == [False, False, False, True, *[False] * 6]
    assert backlog.held() is None  # the journal's stretch comes first

    got: list[bytes] = []
    spills = []
    while backlog.behind(journal.position):
        held = backlog.held()
        if held is not None:
            frames, upto = held
        else:
            frames, upto = backlog.read_back(journal.position)
            assert 1 <= len(frames) <= 3  # a bound's worth at a time
        got += frames
        spills.append(backlog.applied_to(upto, journal.position))
    assert got == [_frame(n) for n in range(10)]
    assert [s for s in spills if s is not None] == [Spill(frames=8, payload_bytes=800)]
    assert backlog.held_bytes == 0

    # caught up: the next frame is held
    end = journal.append(_frame(10))
    assert backlog.add(_frame(10), 100, end) is False
    assert backlog.held() == ([_frame(10)], end)
    journal.close()


def test_a_steady_stream_is_held_again_right_after_a_spill(tmp_path: Path) -> None:
    """While DuckDB reads a spill back, the frames journalled meanwhile are held (they
    follow the spill in the journal), not left in the journal until it catches up with
    a journal that never stops growing."""
    journal = Journal(tmp_path)
    backlog = Backlog[bytes](tmp_path, Position(0, 0), limit_bytes=250, decode=bytes)
    backlog.applied_to(journal.position, journal.position)
    ends = [journal.append(_frame(n)) for n in range(3)]
    assert [backlog.add(_frame(n), 100, ends[n]) for n in range(3)] == [False, False, True]
    frames, upto = backlog.read_back(journal.position)
    assert frames == [_frame(0), _frame(1)]
    nxt = journal.append(_frame(3))  # journalled while that read-back is written
    assert backlog.add(_frame(3), 100, nxt) is False
    assert backlog.held_bytes == 100
    assert backlog.applied_to(upto, journal.position) is None  # the third is still there
    frames, upto = backlog.read_back(journal.position)
    assert frames == [_frame(2)]  # only the spill's stretch, not the held fourth
    assert backlog.applied_to(upto, journal.position) == Spill(frames=3, payload_bytes=300)
    assert backlog.held() == ([_frame(3)], nxt)
    journal.close()


def test_held_frames_stay_counted_until_duckdb_has_them(tmp_path: Path) -> None:
    """A materialisation under way keeps its frames counted: those journalled meanwhile
    are held only while the two together fit the bound; past it the ones held are left
    in the journal with the new one (the write under way goes on)."""
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
    assert backlog.held_bytes == 0  # the second and third are left in the journal
    assert backlog.applied_to(first, journal.position) is None
    assert backlog.held() is None
    frames, upto = backlog.read_back(journal.position)
    assert (frames, upto) == ([_frame(1), _frame(2)], third)
    # the spill counts what it left in the journal, not the first (its write was under way)
    assert backlog.applied_to(upto, journal.position) == Spill(frames=2, payload_bytes=200)
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


def test_a_materialisation_stops_at_the_frames_journalled_before_it_began(
    tmp_path: Path,
) -> None:
    """Frames journalled while a materialisation runs wait for the next one: taking them
    too ran one small transaction after another under a steady stream."""
    journal = Journal(tmp_path)
    backlog = Backlog[bytes](tmp_path, Position(0, 0), limit_bytes=1_000, decode=bytes)
    backlog.replayed()  # nothing to replay: no write ran
    first = journal.append(_frame(0))
    assert backlog.add(_frame(0), 100, first) is False
    target = journal.position  # where the materialisation began
    held = backlog.held()
    assert held == ([_frame(0)], first)
    second = journal.append(_frame(1))  # journalled while it writes
    assert backlog.add(_frame(1), 100, second) is False
    assert backlog.applied_to(first, journal.position) is None
    assert not backlog.behind(target)  # this materialisation is done
    assert backlog.behind(journal.position)  # the next one takes the second
    assert backlog.held() == ([_frame(1)], second)
    journal.close()


def test_a_materialisation_is_due_once_enough_is_held_or_the_journal_holds_frames_first(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    backlog = Backlog[bytes](tmp_path, Position(0, 0), limit_bytes=250, decode=bytes)
    assert backlog.due(1_000)  # the start's replay comes first, whatever is held
    backlog.replayed()
    assert not backlog.due(150)
    for n in range(2):
        end = journal.append(_frame(n))
        assert backlog.add(_frame(n), 100, end) is False
        assert backlog.due(150) is (n == 1)  # 100 bytes held, then 200
    end = journal.append(_frame(2))
    assert backlog.add(_frame(2), 100, end) is True  # past the bound: a spill
    assert backlog.held_bytes == 0
    assert backlog.due(150)  # the journal's stretch is read back at once
    spill = None
    while spill is None:
        _frames, upto = backlog.read_back(journal.position)
        spill = backlog.applied_to(upto, journal.position)  # a Spill once caught up
    assert not backlog.due(150)
    journal.close()
