"""The scheduler: fires each schedule entry at its next instant on the injected clock.

It owns no state but the entries' next instants, recomputed from the clock on every
(re)start. What a firing means is a message to another actor (``commands`` maps an
entry's name to the function that makes the message and the channel it goes to).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from eyetok import log
from eyetok.clock import Clock
from schedules.table import ScheduleEntry, next_fire


@dataclass(frozen=True)
class ScheduleCommand:
    entry: ScheduleEntry
    make: Callable[[datetime], Any]  # the message to send when it fires
    to: trio.MemorySendChannel[Any]


@dataclass(frozen=True)
class SchedulerDeps:
    commands: tuple[ScheduleCommand, ...]


async def run_scheduler(
    deps: SchedulerDeps,
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("scheduler")

    async def run_one(command: ScheduleCommand) -> None:
        while True:
            at = next_fire(command.entry, clock.now())
            await clock.sleep_until(at)
            logger.info("schedule_fired", schedule=command.entry.name, at=at.isoformat())
            await command.to.send(command.make(at))

    async with trio.open_nursery() as nursery:
        for command in deps.commands:
            nursery.start_soon(run_one, command)
        task_status.started()
