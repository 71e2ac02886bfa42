"""The accepted-webhook-id memory under MockClock: expiry, bounds, concurrent duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from eyetok.clock import TrioWallClock
from eyetok.webhook_ids import AcceptedWebhookIds

ANCHOR = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
KEY = ("acme", "generic", "msg_1")


async def test_an_accepted_id_is_a_duplicate_until_the_signature_would_be_stale(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    assert await ids.admit(KEY, clock.now()) is None
    ids.accepted(KEY, ("sig_a", "sig_b"))
    await trio.sleep(299)
    assert await ids.admit(KEY, ANCHOR) == ("sig_a", "sig_b")
    await trio.sleep(2)  # 301 s after the timestamp: the replay would be refused as stale
    assert await ids.admit(KEY, ANCHOR) is None


async def test_a_future_timestamp_is_remembered_until_it_goes_stale(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    signed_at = clock.now() + timedelta(seconds=240)  # inside the tolerance, ahead of us
    assert await ids.admit(KEY, signed_at) is None
    ids.accepted(KEY, ("sig_a",))
    await trio.sleep(539)
    assert await ids.admit(KEY, signed_at) == ("sig_a",)
    await trio.sleep(2)
    assert await ids.admit(KEY, signed_at) is None


async def test_a_forgotten_id_is_processed_again(autojump_clock: trio.testing.MockClock) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    assert await ids.admit(KEY, clock.now()) is None
    ids.forget(KEY)  # answered 503: the sender's retry must be applied
    assert await ids.admit(KEY, clock.now()) is None


async def test_ids_are_per_tenant_and_per_hook(autojump_clock: trio.testing.MockClock) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    for key in (KEY, ("beta", "generic", "msg_1"), ("acme", "probe", "msg_1")):
        assert await ids.admit(key, clock.now()) is None
        ids.accepted(key, (f"sig_{key[0]}_{key[1]}",))
    assert await ids.admit(("beta", "generic", "msg_1"), clock.now()) == ("sig_beta_generic",)


@pytest.mark.parametrize(
    ("outcome", "second_gets"),
    [("accepted", ("sig_first",)), ("forgotten", None)],
)
async def test_a_duplicate_during_the_original_waits_for_its_outcome(
    autojump_clock: trio.testing.MockClock, outcome: str, second_gets: tuple[str, ...] | None
) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    assert await ids.admit(KEY, clock.now()) is None
    answers: list[tuple[str, ...] | None] = []

    async def duplicate() -> None:
        answers.append(await ids.admit(KEY, clock.now()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(duplicate)
        await trio.sleep(1)
        assert answers == []  # still waiting on the original
        if outcome == "accepted":
            ids.accepted(KEY, ("sig_first",))
        else:
            ids.forget(KEY)
    assert answers == [second_gets]


async def test_memory_is_bounded_expired_first_then_the_oldest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300, max_ids=3)
    for n in range(3):
        key = ("acme", "generic", f"msg_{n}")
        assert await ids.admit(key, clock.now()) is None
        ids.accepted(key, (f"sig_{n}",))
        await trio.sleep(100)
    # at t=300 msg_0 (t=0) has just expired and goes first
    assert await ids.admit(("acme", "generic", "msg_3"), clock.now()) is None
    ids.accepted(("acme", "generic", "msg_3"), ("sig_3",))
    assert len(ids) == 3
    # full of unexpired ids: the oldest (msg_1) makes room
    assert await ids.admit(("acme", "generic", "msg_4"), clock.now()) is None
    ids.accepted(("acme", "generic", "msg_4"), ("sig_4",))
    assert len(ids) == 3
    assert await ids.admit(("acme", "generic", "msg_2"), clock.now()) == ("sig_2",)
    assert await ids.admit(("acme", "generic", "msg_1"), clock.now()) is None


async def test_an_id_restored_after_a_restart_lasts_two_tolerances_from_its_arrival(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = TrioWallClock(ANCHOR)
    ids = AcceptedWebhookIds(clock, tolerance_s=300)
    arrived = ANCHOR - timedelta(seconds=200)  # accepted before the restart
    assert ids.restore(KEY, ("sig_a",), arrived)
    assert not ids.restore(("acme", "generic", "old"), ("sig_b",), ANCHOR - timedelta(seconds=600))
    assert await ids.admit(KEY, ANCHOR) == ("sig_a",)
    await trio.sleep(399)  # arrival + 599 s: its timestamp could still be inside the window
    assert await ids.admit(KEY, ANCHOR) == ("sig_a",)
    await trio.sleep(2)
    assert await ids.admit(KEY, ANCHOR) is None
