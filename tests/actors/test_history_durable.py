"""Postgres durability in the history actor: a signal's 202 waits for both its journal
fsync and the mirror's Postgres commit, whichever finishes last, and answers keep commit
order. This test plays the mirror (it reads the history's changes and answers each
:class:`ConfirmDurable`), so it decides when Postgres "committed"; the journal is the
real one, its fsync held back where a test needs Postgres to finish first."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actors.history import HistoryDeps, run_history
from eyetok.clock import FixedClock
from eyetok.messages import (
    Accepted,
    ConfirmDurable,
    IncidentAction,
    JournalSignal,
    MirrorMessage,
    Reply,
    Routing,
    Severity,
    Signal,
    SignalKind,
)
from state.history.store import HistoryStore
from state.history.wal import Journal, Position
from tests.conftest import eventually

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class HeldJournal(Journal):
    """The real journal whose appends wait for ``release`` (set by the test) before
    they write and fsync; ``entered`` says an append is waiting."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, payload: bytes) -> Position:
        self.entered.set()
        self.release.wait(timeout=10)
        return super().append(payload)


class Answers(Reply[Accepted]):
    """A signal's return address that also records, synchronously, when it is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Accepted] = []

    def send(self, value: Accepted) -> None:
        self.sent.append(value)
        super().send(value)


def journal_signal(n: int) -> tuple[JournalSignal, Answers]:
    reply = Answers()
    signal = Signal(
        signal_id=f"sig_{n}",
        tenant="acme",
        source="alertmanager",
        resource="alertmanager",
        action="firing",
        kind=SignalKind.ALERT,
        dedup_key=f"am:{n}",
        title="t",
        received_at=NOW,
    )
    routing = Routing(severity=Severity.HIGH, rule="r", sev_channel=None, business_hours=True)
    message = JournalSignal(
        signal=signal,
        routing=routing,
        action=IncidentAction.AUDIT,
        incident=None,
        deliveries=(),
        reply=reply,
    )
    return message, reply


@dataclass
class Durable:
    """A running history actor in postgres durability, and the mirror's side of it."""

    inbox: trio.MemorySendChannel[Any]
    mirror: trio.MemoryReceiveChannel[MirrorMessage]
    journal: Journal

    async def confirmation(self) -> Reply[bool]:
        """The next :class:`ConfirmDurable` the history sent (its changes before it)."""
        with trio.fail_after(10):
            async for message in self.mirror:
                if isinstance(message, ConfirmDurable):
                    return message.reply
        raise AssertionError("the history stopped sending")


@pytest.fixture
async def durable_history(store: HistoryStore, tmp_path: Path) -> AsyncIterator[Durable]:
    history_tx, history_rx = trio.open_memory_channel[Any](16)
    delivery_tx, _delivery_rx = trio.open_memory_channel[Any](16)
    mirror_tx, mirror_rx = trio.open_memory_channel[MirrorMessage](64)
    journal = HeldJournal(tmp_path / "journal")
    journal.release.set()  # held only where a test clears it
    deps = HistoryDeps(store=store, journal=journal, mirrored=True, durable=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(run_history, clock=FixedClock(NOW)), deps, history_rx, delivery_tx, mirror_tx
        )
        yield Durable(history_tx, mirror_rx, journal)
        journal.release.set()
        nursery.cancel_scope.cancel()
    journal.close()


async def test_postgres_committing_after_the_fsync_answers_in_that_same_turn(
    durable_history: Durable,
) -> None:
    message, answers = journal_signal(1)
    await durable_history.inbox.send(message)
    committed = await durable_history.confirmation()
    journal = durable_history.journal

    async def fsynced() -> bool:
        return journal.position.offset > 0

    await eventually(fsynced)
    await trio.testing.wait_all_tasks_blocked()
    assert answers.sent == []  # journalled, not yet in Postgres: no 202
    committed.send(True)
    # answered by the commit itself, not a turn of the event loop later
    assert [a.signal_id for a in answers.sent] == ["sig_1"]
    assert answers.sent[0].not_durable is None


async def test_postgres_committing_before_the_fsync_waits_for_the_fsync(
    durable_history: Durable,
) -> None:
    journal = durable_history.journal
    assert isinstance(journal, HeldJournal)
    journal.release.clear()
    message, answers = journal_signal(1)
    await durable_history.inbox.send(message)
    # the changes and the confirmation reach the mirror before the fsync starts
    committed = await durable_history.confirmation()
    await trio.to_thread.run_sync(journal.entered.wait, 10)
    committed.send(True)  # Postgres committed while the journal's fsync has not run
    await trio.testing.wait_all_tasks_blocked()
    assert answers.sent == []  # in Postgres, not yet on disk: no 202
    journal.release.set()
    with trio.fail_after(10):
        accepted = await answers.wait()
    assert accepted.not_durable is None
    assert journal.position.offset > 0


async def test_a_batch_postgres_did_not_commit_is_answered_503_and_the_next_after_it(
    durable_history: Durable,
) -> None:
    first, first_answers = journal_signal(1)
    await durable_history.inbox.send(first)
    first_committed = await durable_history.confirmation()
    second, second_answers = journal_signal(2)
    await durable_history.inbox.send(second)
    second_committed = await durable_history.confirmation()
    journal = durable_history.journal

    async def both_journalled() -> bool:
        return journal.position.offset > 0 and second_answers.sent == []

    await eventually(both_journalled)
    second_committed.send(True)  # out of order: the first still waits for Postgres
    await trio.testing.wait_all_tasks_blocked()
    assert first_answers.sent == []
    assert second_answers.sent == []
    first_committed.send(False)  # the first batch's transaction failed
    with trio.fail_after(10):
        refused = await first_answers.wait()
        accepted = await second_answers.wait()
    assert refused.not_durable == "postgres is unreachable"
    assert accepted.not_durable is None
