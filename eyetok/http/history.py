"""``POST /api/v1/history/export``: the history of a window as Parquet files (root token).

The body is ``{"since": DATE, "until": DATE (optional, default now), "to": DIR}``; a
DATE is ``YYYY-MM-DD`` (midnight UTC) or an ISO-8601 instant with its offset. ``to`` is
an absolute directory on the daemon's machine. Answers ``{"files": [{table, path,
rows}, ...]}``; a bad window or a directory that cannot be written is a 400 naming it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from pathlib import PurePath
from typing import Protocol

import msgspec
from quart import Response
from quart_trio import QuartTrio

from eyetok.clock import Clock
from eyetok.errors import MalformedPayloadError, StateError
from eyetok.explain import parse_instant
from eyetok.http.bodies import json_body


class ExportedFile(Protocol):
    @property
    def table(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def rows(self) -> int: ...


class HistoryArchive(Protocol):
    """The history store's export, as the API reaches it."""

    async def export(self, since: datetime, until: datetime, to: str) -> Sequence[ExportedFile]: ...


class _ExportBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    since: str
    to: str
    until: str | None = None


def parse_day_or_instant(text: str, field: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO-8601 instant naming its offset."""
    try:
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    except ValueError:
        pass
    try:
        return parse_instant(text)
    except MalformedPayloadError as exc:
        raise MalformedPayloadError(f"{field}: {exc} (or YYYY-MM-DD)") from exc


def _json(body: object, status: int = 200) -> Response:
    response = Response(json.dumps(body), status=status)
    response.headers["content-type"] = "application/json"
    return response


def add_history_routes(
    app: QuartTrio,
    archive: HistoryArchive,
    operator_only: Callable[[], Response | None],
    clock: Clock,
) -> None:
    @app.post("/api/v1/history/export")
    async def export_history() -> Response:
        refused = operator_only()
        if refused is not None:
            return refused
        body = await json_body(_ExportBody, "an export is {since, until?, to}")
        try:
            since = parse_day_or_instant(body.since, "since")
            until = clock.now() if body.until is None else parse_day_or_instant(body.until, "until")
        except MalformedPayloadError as exc:
            return _json({"error": str(exc)}, 400)
        if since >= until:
            return _json({"error": f"since {body.since} is not before until {until}"}, 400)
        if not PurePath(body.to).is_absolute():
            return _json({"error": f"to {body.to!r} must be an absolute directory"}, 400)
        try:
            files = await archive.export(since, until, body.to)
        except StateError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(
            {
                "since": since.isoformat(),
                "until": until.isoformat(),
                "files": [{"table": f.table, "path": f.path, "rows": f.rows} for f in files],
            }
        )
