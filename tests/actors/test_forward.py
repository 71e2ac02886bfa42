"""An actor's inbox read without a schedule point per message (``actors/forward.py``):
the messages come out in order, another task still runs at least every ``TURN`` of them,
a cancelled actor takes none (it stays for the next incarnation), and the read ends
when every sender has closed. A forward waits only when the next inbox is full."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from actors.forward import TURN, Inbox, forward


async def test_waiting_messages_come_out_in_order_and_the_read_ends_with_the_senders() -> None:
    send, receive = trio.open_memory_channel[int](200)
    for n in range(150):
        send.send_nowait(n)
    send.close()

    read = [message async for message in Inbox(receive)]

    assert read == list(range(150))


async def test_another_task_runs_between_turns_of_waiting_messages() -> None:
    send, receive = trio.open_memory_channel[int](3 * TURN)
    for n in range(3 * TURN):
        send.send_nowait(n)
    send.close()
    # what the other task saw of the actor's progress each time it ran
    seen_at: list[int] = []
    read: list[int] = []

    async def other_task() -> None:
        while len(read) < 3 * TURN:
            seen_at.append(len(read))
            await trio.lowlevel.cancel_shielded_checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other_task)
        async for message in Inbox(receive):
            read.append(message)

    assert read == list(range(3 * TURN))
    # the actor gave way every TURN + 1 messages (a turn, then the read that waits); trio
    # runs the tasks of each pass in random order, so the other task may see two turns
    # go by between its own, never more...
    progress = [0, *sorted(set(seen_at)), 3 * TURN]
    assert max(b - a for a, b in itertools.pairwise(progress)) <= 2 * (TURN + 1)
    # ...and not once per message: a turn's waiting messages go without a schedule point
    assert len(set(seen_at)) <= 3


async def test_waiting_gives_way_after_a_turn_and_receive_starts_the_next() -> None:
    send, receive = trio.open_memory_channel[int](2 * TURN)
    for n in range(TURN + 1):
        send.send_nowait(n)
    inbox = Inbox(receive)

    taken = [await inbox.waiting() for _ in range(TURN)]
    assert taken == list(range(TURN))
    assert await inbox.waiting() is None  # the turn is used up: a message still waits
    assert await inbox.receive() == TURN
    assert await inbox.waiting() is None  # nothing waits now


async def test_a_cancelled_actor_takes_no_message_that_waits() -> None:
    send, receive = trio.open_memory_channel[str](4)
    send.send_nowait("page the on-call")
    inbox = Inbox(receive)

    with trio.CancelScope() as scope:
        scope.cancel()
        await inbox.waiting()
    assert scope.cancelled_caught
    assert receive.receive_nowait() == "page the on-call"  # left for the next incarnation


async def test_a_closed_inbox_ends_waiting_and_receive_as_the_channel_does() -> None:
    send, receive = trio.open_memory_channel[int](1)
    send.close()
    inbox = Inbox(receive)

    with pytest.raises(trio.EndOfChannel):
        await inbox.waiting()
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()


async def test_forward_waits_for_room_only_when_the_next_inbox_is_full() -> None:
    send, receive = trio.open_memory_channel[int](1)
    await forward(send, 1)  # room: no wait
    forwarded = trio.Event()

    async def second() -> None:
        await forward(send, 2)
        forwarded.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        assert not forwarded.is_set()  # full: the sender waits (the backpressure)
        assert receive.receive_nowait() == 1
        await forwarded.wait()
    assert receive.receive_nowait() == 2
