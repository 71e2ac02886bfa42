"""The incident list's filters, read from the URL's query so a view can be shared.

``severity`` (SEV1, SEV2, SEV2.5, SEV3; repeatable or comma-separated), ``status`` (open,
acknowledged, resolved), ``tenant``, ``since`` (``90m``, ``24h``, ``7d``: last seen within)
and ``until`` (an ISO-8601 instant with its offset: first seen before it); together, the
incidents active at some time in that range.
A value outside these is a :class:`FilterError` naming the field (a 400 page)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlencode

import msgspec

from eyetok.errors import MalformedPayloadError
from eyetok.explain import parse_instant
from eyetok.messages import SevChannel
from eyetok.review import parse_since

LABELS = tuple(c.value for c in SevChannel)
STATUSES = ("open", "acknowledged", "resolved")


class FilterError(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class IncidentFilter(msgspec.Struct, frozen=True, kw_only=True):
    channels: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    tenant: str | None = None
    since: datetime | None = None
    since_text: str = ""
    until: datetime | None = None

    def query(self) -> str:
        """The URL query that gives this filter back."""
        pairs = [("severity", c) for c in self.channels] + [("status", s) for s in self.statuses]
        if self.tenant:
            pairs.append(("tenant", self.tenant))
        if self.since_text:
            pairs.append(("since", self.since_text))
        if self.until is not None:
            pairs.append(("until", self.until.isoformat()))
        return urlencode(pairs)


def _values(raw: Iterable[str]) -> list[str]:
    return [v.strip() for item in raw for v in item.split(",") if v.strip()]


def parse_filter(
    args: dict[str, list[str]], *, now: datetime, tenant: str | None
) -> IncidentFilter:
    """The filter in ``args``; ``tenant`` (a tenant's session) overrides the query's."""
    channels = _values(args.get("severity", []))
    for label in channels:
        if label not in LABELS:
            raise FilterError("severity", f"{label!r} is not one of {', '.join(LABELS)}")
    statuses = _values(args.get("status", []))
    for status in statuses:
        if status not in STATUSES:
            raise FilterError("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    since_text = (args.get("since") or [""])[0].strip()
    since = None
    if since_text:
        try:
            since = now - parse_since(since_text)
        except ValueError as exc:
            raise FilterError("since", str(exc)) from exc
    until_text = (args.get("until") or [""])[0].strip()
    until = None
    if until_text:
        try:
            until = parse_instant(until_text)
        except MalformedPayloadError as exc:
            raise FilterError("until", str(exc).removeprefix("at ")) from exc
    named = (args.get("tenant") or [""])[0].strip() or None
    return IncidentFilter(
        channels=tuple(dict.fromkeys(channels)),
        statuses=tuple(dict.fromkeys(statuses)),
        tenant=tenant if tenant is not None else named,
        since=since,
        since_text=since_text,
        until=until,
    )
