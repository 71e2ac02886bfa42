"""The write-ahead journal: frames survive, a torn tail ends a segment, applied segments go."""

from __future__ import annotations

from pathlib import Path

from state.history.wal import Journal, Position, read_frames, read_span, segments


def test_frames_come_back_in_order_after_any_position(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    first = journal.append(b"one")
    second = journal.append(b"two")
    journal.append(b"three")
    journal.close()
    assert [p for _, p in read_frames(tmp_path, Position(0, 0))] == [b"one", b"two", b"three"]
    assert [p for _, p in read_frames(tmp_path, first)] == [b"two", b"three"]
    assert [p for _, p in read_frames(tmp_path, second)] == [b"three"]
    assert first < second


def test_a_torn_last_frame_is_where_the_segment_ends(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(b"kept")
    end = journal.append(b"also kept")
    journal.close()
    [segment] = segments(tmp_path)
    path = tmp_path / f"journal-{segment:08d}.wal"
    with path.open("ab") as f:
        f.write(b"\x00\x00\x00\x10\x00\x00")  # a crash halfway through a header
    frames = list(read_frames(tmp_path, Position(0, 0)))
    assert [p for _, p in frames] == [b"kept", b"also kept"]
    assert frames[-1][0] == end


def test_a_corrupt_frame_is_not_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(b"good")
    journal.append(b"flipped")
    journal.close()
    [segment] = segments(tmp_path)
    path = tmp_path / f"journal-{segment:08d}.wal"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [p for _, p in read_frames(tmp_path, Position(0, 0))] == [b"good"]


def test_a_restart_writes_a_new_segment_and_applied_segments_are_forgotten(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    journal.append(b"before the crash")
    journal.close()
    again = Journal(tmp_path)
    applied = again.append(b"after the restart")
    assert segments(tmp_path) == [1, 2]
    assert [p for _, p in read_frames(tmp_path, Position(0, 0))] == [
        b"before the crash",
        b"after the restart",
    ]
    again.forget_before(applied)
    assert segments(tmp_path) == [2]
    again.close()


def test_segments_rotate_at_their_size_limit(tmp_path: Path) -> None:
    journal = Journal(tmp_path, rotate_bytes=64)
    for n in range(10):
        journal.append(b"x" * 30 + str(n).encode())
    journal.close()
    assert len(segments(tmp_path)) > 1
    assert len(list(read_frames(tmp_path, Position(0, 0)))) == 10


def test_a_span_reads_frames_up_to_a_position_and_a_size_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path, rotate_bytes=64)  # a few frames a segment
    ends = [journal.append(f"frame {n:02d} ".encode() + b"x" * 20) for n in range(12)]
    journal.close()
    assert len(segments(tmp_path)) > 2
    start = Position(0, 0)
    # at most 70 bytes of payload: two frames of 29 each, never part of one
    payloads, reached = read_span(tmp_path, start, ends[-1], 70)
    assert [p[:8] for p in payloads] == [b"frame 00", b"frame 01"]
    assert ends[1] <= reached < ends[2]  # past frame 01 (maybe the next segment's start)
    # nothing past ``upto``, and then ``upto`` itself is where the next read starts
    payloads, reached = read_span(tmp_path, ends[1], ends[4], 10_000)
    assert [p[:8] for p in payloads] == [b"frame 02", b"frame 03", b"frame 04"]
    assert reached == ends[4]
    # one frame at least, even past the size; everything read back in turn
    got: list[bytes] = []
    while start < ends[-1]:
        payloads, start = read_span(tmp_path, start, ends[-1], 1)
        assert len(payloads) == 1
        got += payloads
    assert [p[:8] for p in got] == [f"frame {n:02d}".encode() for n in range(12)]
    assert read_span(tmp_path, ends[-1], ends[-1], 1) == ([], ends[-1])


def test_a_span_skips_a_torn_tail_and_goes_on_in_the_next_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(b"before the crash")
    journal.close()
    [segment] = segments(tmp_path)
    with (tmp_path / f"journal-{segment:08d}.wal").open("ab") as f:
        f.write(b"\x00\x00\x00\x10\x00\x00")  # a crash halfway through a header
    again = Journal(tmp_path)
    end = again.append(b"after the restart")
    again.close()
    payloads, reached = read_span(tmp_path, Position(0, 0), Position(end.segment + 1, 0), 10_000)
    assert payloads == [b"before the crash", b"after the restart"]
    assert reached == Position(end.segment + 1, 0)
