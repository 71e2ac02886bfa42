"""Handing a message on along a forward edge without a schedule point of its own.

``await channel.send(message)`` is a checkpoint even when the channel's buffer has room:
the sending actor goes to the back of trio's run queue before it may read its next
message, and that read (``await inbox.receive()``) is a checkpoint again. On the
pipeline's forward edges (router -> history, suppression -> mutes -> budgets ->
delivery) the first of the two bought nothing but one more pass of the scheduler per
message per hop. :func:`forward` puts the message in the buffer when it has room and
waits only when it is full, which is the backpressure that ends in a 503 at the front
door. An actor that forwards must checkpoint elsewhere in its loop (its inbox read does).
"""

from __future__ import annotations

from typing import TypeVar

import trio

M = TypeVar("M")


async def forward(channel: trio.MemorySendChannel[M], message: M) -> None:
    """Send ``message``: at once when the buffer has room, else wait for room."""
    try:
        channel.send_nowait(message)
    except trio.WouldBlock:
        await channel.send(message)
