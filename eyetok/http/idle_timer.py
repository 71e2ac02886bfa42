"""hypercorn's keep-alive idle timer, without a task handshake per request.

hypercorn's trio server gives each connection a ``TrioSingleTask`` for its idle timeout:
when an answer has gone out it ``restart``\\ s the timer (the connection is idle), when the
next request's headers are in it ``stop``\\ s it. Each restart takes a ``trio.Lock`` and
``nursery.start``\\ s a task (a temporary nursery and a ``started()`` handshake), each stop
takes the lock again: about 75 us of the event loop per keep-alive request here, an eighth
of what the whole bare hypercorn-trio floor spends on a request (bench/ingest.py).

:class:`IdleTimer` keeps the contract: ``restart(task_group, action)`` cancels the action
if it runs and runs it afresh in the connection's task group, ``stop()`` cancels it; the
action (hypercorn's ``TCPServer._idle_timeout``: wait ``keep_alive_timeout``, then close)
is hypercorn's own and unchanged. It drops the lock (neither method awaits anything, so
trio runs each to its end uninterrupted) and starts the task with ``start_soon`` under a
cancel scope made beforehand, so a stop that comes before the task first runs still
cancels it. :func:`install` puts it where hypercorn's ``TCPServer`` looks the class up;
hypercorn offers no setting for it (``WorkerContext.single_task_class`` is read only by
its QUIC server).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from hypercorn.trio import tcp_server
from hypercorn.trio.task_group import TaskGroup


async def _run_within(scope: trio.CancelScope, action: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await action()


class IdleTimer:
    """One connection's idle timer (hypercorn's ``SingleTask``)."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None

    async def restart(self, task_group: TaskGroup, action: Callable[[], Awaitable[None]]) -> None:
        if self._scope is not None:
            self._scope.cancel()
        self._scope = trio.CancelScope()
        nursery = task_group._nursery
        assert nursery is not None, "hypercorn restarts the timer inside its task group"
        nursery.start_soon(_run_within, self._scope, action)

    async def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


def install() -> None:
    """Make hypercorn's trio ``TCPServer`` build :class:`IdleTimer`\\ s (idempotent)."""
    if not hasattr(tcp_server, "TrioSingleTask"):
        raise RuntimeError(
            "hypercorn.trio.tcp_server no longer names TrioSingleTask: the idle timer "
            "cannot be installed; see eyetok/http/idle_timer.py"
        )
    tcp_server.TrioSingleTask = IdleTimer
