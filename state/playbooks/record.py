"""Where the playbooks actor's facts are kept: the ledger file on this disk and, with
``DATABASE_URL``, the ``playbook_events`` table in Postgres (a fresh dyno starts from it).

:meth:`PlaybookRecord.load` is the union of both (by event id): events only Postgres has
(an empty data directory, or a write the disk lost) are added to the file; events only
the file has (Postgres was down) are pushed to Postgres.

:meth:`PlaybookRecord.commit` writes the file (fsynced) and Postgres. Postgres being down
does not stop a proposal, a triage or an acknowledgement: they wait in memory and go
with the next write. It does stop a run: an ``intent`` (the approval that starts a
remediation) must be committed in Postgres *before* the call, or a fresh dyno would not
know it was started and could run it again; :class:`IntentNotRecorded` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import trio

from eyetok import log
from eyetok.errors import StateError
from eyetok.playbooks.ledger import PlaybookEvent
from state.playbooks.ledger_file import LedgerFile
from state.playbooks.pg_ledger import PgLedger


class IntentNotRecorded(StateError):
    """The intent to run a remediation could not be committed in Postgres: not run."""


class PlaybookRecord:
    def __init__(self, path: Path, dsn: str | None, tenants: Iterable[str]) -> None:
        self.file = LedgerFile(path)
        self.pg = PgLedger(dsn) if dsn else None
        self.tenants = tuple(tenants)
        self.unmirrored: list[PlaybookEvent] = []
        self._limiter = trio.CapacityLimiter(1)
        self._log = log.get("playbooks")

    async def _pg(self, fn: object, *args: object) -> object:
        assert callable(fn)
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def load(self) -> list[PlaybookEvent]:
        events = await self.file.load()
        if self.pg is None:
            return events
        try:
            kept = await self._pg(self.pg.load, self.tenants)
        except StateError as exc:
            self._log.error(
                "playbooks_not_rehydrated",
                reason=str(exc),
                consequence="started from the ledger on this disk only",
            )
            self.unmirrored = list(events)
            return events
        assert isinstance(kept, list)
        local = {e.event_id for e in events}
        remote = {e.event_id for e in kept}
        missing = [e for e in kept if e.event_id not in local]
        if missing:
            await self.file.append(missing)
            events += missing
        self.unmirrored = [e for e in events if e.event_id not in remote]
        self._log.info(
            "playbooks_rehydrated",
            events=len(events),
            from_postgres=len(missing),
            to_postgres=len(self.unmirrored),
        )
        return events

    async def commit(self, events: Sequence[PlaybookEvent], *, intent: bool = False) -> None:
        """Durably record ``events``; with ``intent``, refuse (raise) unless Postgres (when
        configured) committed them too."""
        if self.pg is not None:
            batch = [*self.unmirrored, *events]
            try:
                await self._pg(self.pg.append, batch)
                self.unmirrored = []
            except StateError as exc:
                if intent:
                    raise IntentNotRecorded(str(exc)) from exc
                self.unmirrored += events
                self._log.warning(
                    "playbooks_mirror_behind",
                    reason=str(exc),
                    waiting=len(self.unmirrored),
                    consequence="kept on this disk; sent to Postgres with the next write",
                )
        await self.file.append(events)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.close()
