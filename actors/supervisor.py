"""The supervisor: starts children in order, restarts a crashed child one-for-one, stops
them in reverse order, and gives up (cancels the tree, exits non-zero) on a crash loop.

Restart intensity is counted on trio's clock, so a MockClock test can drive it. A child
is an async callable ``run(task_status)`` that builds its own channel clones each time it
is started; the supervisor never shares state with it.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
import trio.lowlevel

from eyetok import log


class Restart(enum.Enum):
    PERMANENT = "permanent"  # always restarted, even after a normal return
    TRANSIENT = "transient"  # restarted only after a crash
    TEMPORARY = "temporary"  # never restarted


@dataclass(frozen=True)
class ChildSpec:
    name: str
    run: Callable[..., Awaitable[None]]  # run(*, task_status) -> None
    restart: Restart = Restart.PERMANENT


class CrashLoopError(Exception):
    """More than ``max_restarts`` crashes within ``window_s``: the supervisor gave up."""


class _Status:
    """Forwards ``started()`` once, whichever incarnation of the child reaches it."""

    def __init__(self, outer: trio.TaskStatus[None]) -> None:
        self._outer = outer
        self.started_once = False

    def started(self, value: Any = None) -> None:
        if not self.started_once:
            self.started_once = True
            self._outer.started()


class Supervisor:
    def __init__(self, *, max_restarts: int = 5, window_s: float = 60.0) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.restarts: dict[str, int] = {}
        self._crashes: deque[float] = deque()
        self._scopes: list[tuple[str, trio.CancelScope, trio.Event]] = []
        self._started: list[str] = []
        self._log = log.get("supervisor")

    @property
    def started(self) -> tuple[str, ...]:
        return tuple(self._started)

    async def start(self, nursery: trio.Nursery, children: list[ChildSpec]) -> None:
        """Start ``children`` in order; each is running (``started()``) before the next."""
        for spec in children:
            await nursery.start(self._supervise, spec)
            self._started.append(spec.name)
            self._log.info("actor_started", child=spec.name)

    async def stop(self, *, grace_s: float = 2.0) -> None:
        """Cancel children in reverse start order, each given ``grace_s`` to finish."""
        for name, scope, done in reversed(self._scopes):
            scope.cancel()
            self._log.info("actor_stopping", child=name)
            with trio.move_on_after(grace_s):
                await done.wait()

    def _record_crash(self, name: str) -> None:
        now = trio.current_time()
        self._crashes.append(now)
        while self._crashes and self._crashes[0] < now - self.window_s:
            self._crashes.popleft()
        self.restarts[name] = self.restarts.get(name, 0) + 1
        if len(self._crashes) > self.max_restarts:
            raise CrashLoopError(
                f"{len(self._crashes)} crashes within {self.window_s:.0f}s "
                f"(last: {name}); giving up"
            )

    async def _supervise(
        self, spec: ChildSpec, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        status = _Status(task_status)
        scope = trio.CancelScope()
        done = trio.Event()
        self._scopes.append((spec.name, scope, done))
        try:
            with scope:
                while True:
                    try:
                        await spec.run(task_status=status)
                    except Exception as exc:  # the one place that catches everything
                        self._log.error(
                            "actor_crashed",
                            child=spec.name,
                            error=f"{type(exc).__name__}: {exc}",
                            exc_info=exc,
                        )
                        if spec.restart is Restart.TEMPORARY:
                            return
                        self._record_crash(spec.name)
                        self._log.warning(
                            "actor_restarting", child=spec.name, restarts=self.restarts[spec.name]
                        )
                        await trio.lowlevel.checkpoint()
                        continue
                    if spec.restart is not Restart.PERMANENT:
                        self._log.info("actor_finished", child=spec.name)
                        return
                    self._log.warning("actor_returned_restarting", child=spec.name)
                    await trio.lowlevel.checkpoint()
        finally:
            if spec.name in self._started:
                self._started.remove(spec.name)
            done.set()
