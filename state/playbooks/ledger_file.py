"""The playbooks actor's ledger on disk: an append-only JSON-lines file it alone writes.

Every :class:`~eyetok.playbooks.ledger.PlaybookEvent` is appended, flushed and fsynced
before the actor acts on it (the intent to run a remediation is on disk before the HTTP
call). Events appended together are one line group written by one ``write``; a kill -9
can tear only the tail, which :meth:`LedgerFile.load` cuts off (and says so).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import msgspec
import trio

from eyetok import log
from eyetok.errors import StateError
from eyetok.playbooks.ledger import PlaybookEvent

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(PlaybookEvent).decode


class LedgerFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._limiter = trio.CapacityLimiter(1)

    def _load(self) -> list[PlaybookEvent]:
        try:
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                # a kill -9 mid-write: the torn tail was never acted on; cut it off so the
                # next append starts on a line of its own
                kept = data.rfind(b"\n") + 1
                with self.path.open("r+b") as file:
                    file.truncate(kept)
                log.get("playbooks").warning(
                    "playbook_ledger_torn_tail",
                    path=str(self.path),
                    bytes_dropped=len(data) - kept,
                    why="the process was killed mid-write; that event was never acted on",
                )
                data = data[:kept]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"cannot read the playbook ledger {self.path}: {exc}") from exc
        events: list[PlaybookEvent] = []
        for number, line in enumerate(data.splitlines(), 1):
            try:
                events.append(_decode(line))
            except msgspec.DecodeError as exc:
                raise StateError(
                    f"playbook ledger {self.path} line {number} is unreadable: {exc}"
                ) from exc
        return events

    def _append(self, events: Sequence[PlaybookEvent]) -> None:
        data = b"".join(_encode(e) + b"\n" for e in events)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            raise StateError(f"cannot write the playbook ledger {self.path}: {exc}") from exc

    async def load(self) -> list[PlaybookEvent]:
        return await trio.to_thread.run_sync(self._load, limiter=self._limiter)

    async def append(self, events: Sequence[PlaybookEvent]) -> None:
        """Durably append ``events`` (returns once they are fsynced)."""
        await trio.to_thread.run_sync(self._append, events, limiter=self._limiter)
