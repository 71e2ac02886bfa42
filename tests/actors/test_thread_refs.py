"""The delivery actor's thread refs are forgotten once they were learned more than 30 days
(and at most an hour) ago, as a restart's look-back would forget them, so the map does
not grow with the process's age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.thread_refs import BUCKET, ThreadRefs

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOOK_BACK = timedelta(days=30)


def test_a_learned_ref_is_kept_for_the_look_back_then_forgotten() -> None:
    refs = ThreadRefs({}, now=START)
    refs.learn(("slack", "#sev1", "inc_a"), "111.1", at=START)
    refs.learn(("slack", "#sev1", "inc_b"), "222.2", at=START + LOOK_BACK)
    assert refs.get(("slack", "#sev1", "inc_a")) == "111.1"  # exactly 30 days: still known
    refs.learn(("slack", "#sev1", "inc_c"), "333.3", at=START + LOOK_BACK + BUCKET)
    assert refs.get(("slack", "#sev1", "inc_a")) == "111.1"  # within the hour's slack
    refs.learn(("slack", "#sev1", "inc_d"), "444.4", at=START + LOOK_BACK + 2 * BUCKET)
    assert refs.get(("slack", "#sev1", "inc_a")) is None
    assert refs.get(("slack", "#sev1", "inc_b")) == "222.2"
    assert len(refs) == 3


def test_refs_read_at_start_count_from_the_start() -> None:
    refs = ThreadRefs({("slack", "#sev2", "inc_old"): "100.0"}, now=START)
    refs.learn(("slack", "#sev2", "inc_new"), "200.0", at=START + timedelta(days=29))
    assert refs.get(("slack", "#sev2", "inc_old")) == "100.0"
    refs.learn(("slack", "#sev2", "inc_newer"), "300.0", at=START + timedelta(days=31))
    assert refs.get(("slack", "#sev2", "inc_old")) is None
    assert len(refs) == 2


def test_a_steady_stream_holds_only_the_look_back() -> None:
    refs = ThreadRefs({}, now=START)
    for day in range(120):  # 100 incidents a day for four months
        for n in range(100):
            at = START + timedelta(days=day, minutes=10 * n)
            refs.learn(("slack", "#sev3", f"inc_{day}_{n}"), f"{day}.{n}", at=at)
    assert len(refs) <= 31 * 100
    assert refs.get(("slack", "#sev3", "inc_0_0")) is None
    assert refs.get(("slack", "#sev3", "inc_119_99")) == "119.99"
