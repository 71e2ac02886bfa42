"""The scheduler: fires each enabled schedule entry at its next instant on the injected clock.

What a firing means is a message to another actor (``commands`` maps an entry to the
function that makes the message and the channel it goes to). Every firing is recorded in
the audit log (``schedule_ran``, with its slot) through the history actor, so the last
run survives a restart: a slot missed while EyeTok was down runs ONCE at start (the
latest one, however many passed), then the schedule goes on from now. A schedule seen for
the first time is recorded as ``schedule_registered`` and misses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.messages import AuditRecorded, FlushHistory, HistoryMessage, Reply
from schedules.table import ScheduleEntry, missed_slot, next_fire
from state.history.routines import last_schedule_runs
from state.history.store import HistoryStore


@dataclass(frozen=True)
class ScheduleCommand:
    entry: ScheduleEntry
    make: Callable[[datetime], Any]  # the message to send when it fires (given its slot)
    to: trio.MemorySendChannel[Any]


@dataclass(frozen=True)
class SchedulerDeps:
    commands: tuple[ScheduleCommand, ...]
    store: HistoryStore
    operator_tenant: str


async def run_scheduler(
    deps: SchedulerDeps,
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("scheduler")
    flushed: Reply[bool] = Reply()
    await to_history.send(FlushHistory(reply=flushed))
    await flushed.wait()
    last_runs = await deps.store.read(last_schedule_runs)
    started_at = clock.now()
    enabled = [c for c in deps.commands if c.entry.enabled]

    async def record(event: str, name: str, slot: datetime, *, late: bool = False) -> None:
        detail = json.dumps({"schedule": name, "slot": slot.isoformat(), "late": late})
        await to_history.send(
            AuditRecorded(at=clock.now(), tenant=deps.operator_tenant, event=event, detail=detail)
        )

    async def fire(command: ScheduleCommand, slot: datetime, *, late: bool) -> None:
        name = command.entry.name
        logger.info("schedule_fired", schedule=name, slot=slot.isoformat(), late=late)
        await command.to.send(command.make(slot))
        await record("schedule_ran", name, slot, late=late)

    async def run_one(command: ScheduleCommand) -> None:
        after = started_at
        while True:
            at = next_fire(command.entry, after)
            await clock.sleep_until(at)
            await fire(command, at, late=False)
            after = at

    late: list[tuple[ScheduleCommand, datetime]] = []
    for command in enabled:
        previous = last_runs.get(command.entry.name)
        if previous is None:
            await record("schedule_registered", command.entry.name, started_at)
            continue
        slot = missed_slot(command.entry, previous, started_at)
        if slot is not None:
            late.append((command, slot))
    for command in deps.commands:
        if not command.entry.enabled:
            logger.info("schedule_disabled", schedule=command.entry.name)

    async with trio.open_nursery() as nursery:
        task_status.started()
        for command, slot in late:
            logger.warning(
                "schedule_missed_while_down",
                schedule=command.entry.name,
                slot=slot.isoformat(),
                last_run=last_runs[command.entry.name].isoformat(),
                why="EyeTok was not running at the slot; running it once now",
            )
            await fire(command, slot, late=True)
        for command in enabled:
            nursery.start_soon(run_one, command)
