from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.due_times import DueTimes

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_due_keys_earliest_first_and_the_next_due_time() -> None:
    due: DueTimes[str] = DueTimes()
    due.set("b", at(20))
    due.set("a", at(10))
    due.set("c", at(30))
    assert due.next_due() == at(10)
    assert due.due_at(at(5)) == []
    assert due.due_at(at(25)) == ["a", "b"]
    # due until the caller moves or discards them
    assert due.due_at(at(25)) == ["a", "b"]
    assert due.next_due() == at(10)
    due.discard("a")
    due.set("b", at(40))
    assert due.due_at(at(25)) == []
    assert due.next_due() == at(30)
    assert due.due_at(at(45)) == ["c", "b"]


def test_a_moved_or_discarded_key_leaves_no_trace() -> None:
    due: DueTimes[str] = DueTimes()
    due.set("a", at(10))
    due.set("a", at(50))
    due.set("a", at(10))  # back to a time it had: still one key, due once
    assert due.due_at(at(60)) == ["a"]
    due.discard("a")
    assert due.next_due() is None
    assert due.due_at(at(60)) == []
    assert len(due) == 0
    assert "a" not in due


def test_equal_due_times_never_compare_the_keys() -> None:
    due: DueTimes[tuple[str, object]] = DueTimes()
    due.set(("t", object()), at(10))
    due.set(("t", object()), at(10))
    assert len(due.due_at(at(10))) == 2


def test_the_heap_stays_within_twice_the_keys_however_often_they_move() -> None:
    due: DueTimes[int] = DueTimes()
    for key in range(100):
        due.set(key, at(key))
    for step in range(1, 50):
        for key in range(100):
            due.set(key, at(key + step))
        assert len(due._heap) <= 2 * len(due) + 64
    assert due.next_due() == at(49)
    assert due.get(99) == at(99 + 49)
