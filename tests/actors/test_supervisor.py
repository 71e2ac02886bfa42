"""The supervisor: one-for-one restarts on the same channels, crash-loop give-up, order."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.supervisor import ChildSpec, CrashLoopError, Restart, Supervisor
from actors.topology import _child
from eyetok.clock import TrioWallClock


async def test_a_crashed_actor_is_restarted_on_the_same_inbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A poison message crashes the actor; its next incarnation reads the rest of the inbox."""
    inbox_tx, inbox_rx = trio.open_memory_channel[str](10)
    seen_tx, seen_rx = trio.open_memory_channel[str](10)
    incarnations: list[int] = []

    async def echo(
        deps: None,
        inbox: trio.MemoryReceiveChannel[str],
        out: trio.MemorySendChannel[str],
        *,
        clock: object,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        incarnations.append(len(incarnations))
        task_status.started()
        async for item in inbox:
            if item == "poison":
                raise RuntimeError("poison message")
            await out.send(item)

    supervisor = Supervisor()
    spec = _child("echo", echo, None, inbox_rx, seen_tx, clock=None)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, [spec])
        for item in ("a", "poison", "b", "c"):
            await inbox_tx.send(item)
        got = [await seen_rx.receive() for _ in range(3)]
        assert got == ["a", "b", "c"]
        assert supervisor.restarts == {"echo": 1}
        assert incarnations == [0, 1]
        assert supervisor.started == ("echo",)
        await supervisor.stop()
        assert supervisor.started == ()
        nursery.cancel_scope.cancel()


async def test_a_crash_loop_gives_up(autojump_clock: trio.testing.MockClock) -> None:
    """More than 5 crashes within 60 s (on trio's clock) cancels the tree with an error."""
    crashes: list[float] = []

    async def crashes_every_second(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep(1)
        crashes.append(trio.current_time())
        raise RuntimeError("still broken")

    supervisor = Supervisor(max_restarts=5, window_s=60)
    with pytest.RaisesGroup(CrashLoopError):
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, [ChildSpec("broken", crashes_every_second)])
    assert len(crashes) == 6
    assert crashes[-1] - crashes[0] == pytest.approx(5.0)


async def test_slow_crashes_are_forgiven(autojump_clock: trio.testing.MockClock) -> None:
    """Crashes spaced wider than the window never add up to a crash loop."""
    crashes = 0

    async def crashes_every_twenty_seconds(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal crashes
        task_status.started()
        await trio.sleep(20)
        crashes += 1
        raise RuntimeError("flaky")

    supervisor = Supervisor(max_restarts=5, window_s=60)
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, [ChildSpec("flaky", crashes_every_twenty_seconds)])
        await trio.sleep(20 * 30 + 1)
        nursery.cancel_scope.cancel()
    assert crashes == 30
    assert supervisor.restarts["flaky"] == 30


async def test_children_start_in_order_and_stop_in_reverse(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[str] = []

    def child(name: str) -> ChildSpec:
        async def run(*, task_status: trio.TaskStatus[None]) -> None:
            await trio.sleep(1)  # a slow start: the next child must wait for it
            events.append(f"start {name}")
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                events.append(f"stop {name}")

        return ChildSpec(name, run)

    supervisor = Supervisor()
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, [child("history"), child("delivery"), child("ingest")])
        await supervisor.stop()
        nursery.cancel_scope.cancel()
    assert events == [
        "start history",
        "start delivery",
        "start ingest",
        "stop ingest",
        "stop delivery",
        "stop history",
    ]


async def test_a_transient_child_that_returns_is_not_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    runs = 0

    async def once(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    supervisor = Supervisor()
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, [ChildSpec("once", once, Restart.TRANSIENT)])
        await trio.sleep(5)
    assert runs == 1


async def test_the_wall_clock_moves_with_trio_time(autojump_clock: trio.testing.MockClock) -> None:
    from datetime import UTC, datetime, timedelta

    anchor = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    clock = TrioWallClock(anchor)
    await clock.sleep_until(anchor + timedelta(hours=3))
    assert clock.now() == anchor + timedelta(hours=3)
