"""Passing messages along the pipeline without a schedule point per message per hop.

``await channel.send(message)`` is a checkpoint even when the channel's buffer has room:
the sending actor goes to the back of trio's run queue before it may read its next
message, and that read (``await inbox.receive()``) is a checkpoint again, even when a
message is already waiting. On the pipeline's forward edges (incidents -> router ->
history, suppression -> mutes -> budgets -> delivery) both bought nothing but one more
pass of the scheduler per message per hop: an actor woken with eight messages waiting
took eight passes of the run queue to read them, and the actor after it eight more.

:func:`forward` puts a message in the buffer when it has room and waits only when it is
full, which is the backpressure that ends in a 503 at the front door. :class:`Inbox`
reads the messages already waiting without a schedule point, up to :data:`TURN` in a
row, and waits (a schedule point) only when none is waiting or the turn is used up, so
an actor that forwards still lets the others run at least every :data:`TURN` messages.
Both see a cancellation at once, as ``send`` and ``receive`` do. Messages keep their
order: one reader per inbox, first in, first out.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio
import trio.lowlevel

M = TypeVar("M")

# messages an actor may read from its inbox in a row without letting another task run
TURN = 64


async def forward(channel: trio.MemorySendChannel[M], message: M) -> None:
    """Send ``message``: at once when the buffer has room, else wait for room."""
    try:
        channel.send_nowait(message)
    except trio.WouldBlock:
        await channel.send(message)


class Inbox(Generic[M]):
    """An actor's inbox, read without a schedule point while messages wait (up to
    :data:`TURN` in a row). ``async for message in Inbox(channel)`` ends when every
    sender has closed; :meth:`waiting` and :meth:`receive` raise ``trio.EndOfChannel``
    then, like the channel's own."""

    __slots__ = ("_channel", "_in_a_row")

    def __init__(self, channel: trio.MemoryReceiveChannel[M]) -> None:
        self._channel = channel
        self._in_a_row = 0

    async def waiting(self) -> M | None:
        """The next message if one is waiting and this turn may take it, without a
        schedule point; None: wait for one with :meth:`receive`."""
        await trio.lowlevel.checkpoint_if_cancelled()  # no schedule point unless cancelled
        if self._in_a_row >= TURN:
            return None
        try:
            message = self._channel.receive_nowait()
        except trio.WouldBlock:
            return None
        self._in_a_row += 1
        return message

    async def receive(self) -> M:
        """The next message, after a schedule point (waiting for one if none is there)."""
        self._in_a_row = 0
        return await self._channel.receive()

    def __aiter__(self) -> Inbox[M]:
        return self

    async def __anext__(self) -> M:
        try:
            message = await self.waiting()
            return message if message is not None else await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
