"""``eyetok tail``: EyeTok's JSON log lines from a stream, readable and filtered.

``heroku logs --tail | eyetok tail --tenant acme`` strips Heroku's prefix
(``2026-11-29T16:09:19.123+00:00 app[web.1]: ``), prints each EyeTok JSON line as one
line (time, level, actor, event, the fields an on-call looks for first, then the rest),
coloured by severity (or by level) when stdout is a terminal, and keeps only the lines
whose fields match the filters. Any other line (Heroku's router, a truncated or
non-JSON line) passes through dimmed, so nothing is hidden and nothing stops the tail.
With ``--json`` only matching EyeTok lines are written, as the JSON they were.

Pure apart from :func:`run`, which reads and writes the streams it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

# <timestamp> <source>[<dyno>]: <message>  (app[web.1], heroku[router], app[api] ...)
_HEROKU_PREFIX = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT\S+) (?P<source>[\w.-]+)\[(?P<dyno>[^\]]+)\]: "
)

FIRST_FIELDS = ("tenant", "incident_id", "severity", "sev_channel", "sink", "sink_id", "latency_ms")
_SHOWN = ("timestamp", "level", "actor", "event")

RESET = "\x1b[0m"
DIM = "\x1b[2m"
_COLOURS = {
    # canonical severity first (design section 2), then the log level
    "critical": "\x1b[1;97;41m",
    "high": "\x1b[1;31m",
    "medium": "\x1b[33m",
    "low": "\x1b[36m",
    "error": "\x1b[31m",
    "warning": "\x1b[33m",
    "debug": DIM,
}


@dataclass(frozen=True)
class Filters:
    severity: str | None = None  # matches severity, sev_channel or level
    tenant: str | None = None
    incident: str | None = None  # matches incident_id
    actor: str | None = None

    def match(self, record: Mapping[str, Any]) -> bool:
        """Whether the line's fields match; a batch's line (``decisions``: an entry per
        signal, as its own line would have been) matches when the line or an entry does
        for severity and incident."""
        entries = [record, *_decisions(record)]
        if self.severity is not None:
            wanted = self.severity.lower()
            values = (e.get(k) for e in entries for k in ("severity", "sev_channel", "level"))
            if not any(isinstance(v, str) and v.lower() == wanted for v in values):
                return False
        if self.tenant is not None and record.get("tenant") != self.tenant:
            return False
        if self.incident is not None and all(
            e.get("incident_id") != self.incident for e in entries
        ):
            return False
        return self.actor is None or record.get("actor") == self.actor

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.severity, self.tenant, self.incident, self.actor))


def _decisions(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-signal entries of a batch's line (``incidents_decided``), else none."""
    found = record.get("decisions")
    if not isinstance(found, list):
        return []
    return [entry for entry in found if isinstance(entry, Mapping)]


@dataclass(frozen=True)
class Line:
    """One input line: its Heroku prefix (if any), its message, and the JSON record in it."""

    prefix: str
    dyno: str | None
    message: str
    record: dict[str, Any] | None


def parse(raw: str) -> Line:
    text = raw.rstrip("\r\n")
    match = _HEROKU_PREFIX.match(text)
    prefix, dyno = ("", None) if match is None else (match.group(0), match["dyno"])
    message = text[len(prefix) :]
    record: dict[str, Any] | None = None
    stripped = message.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict) and "event" in value:
            record = value
    return Line(prefix=prefix, dyno=dyno, message=message, record=record)


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value) if (not value or any(c in value for c in ' "=\n')) else value
    return json.dumps(value, separators=(",", ":"), default=str)


def _time(record: Mapping[str, Any]) -> str:
    at = record.get("timestamp")
    if isinstance(at, str) and "T" in at:
        return at.split("T", 1)[1][:12]
    return "--:--:--.---"


def colour_of(record: Mapping[str, Any]) -> str:
    for key in ("severity", "level"):
        value = record.get(key)
        if isinstance(value, str) and value.lower() in _COLOURS:
            return _COLOURS[value.lower()]
    return ""


def pretty(record: Mapping[str, Any], *, colour: bool, dyno: str | None = None) -> str:
    level = str(record.get("level", "?")).upper()
    head = f"{_time(record)} {level:<7} {record.get('actor', '-')!s:<12} {record.get('event', '?')}"
    if dyno:
        head = f"{dyno} {head}"
    fields = [f"{k}={_value(record[k])}" for k in FIRST_FIELDS if k in record]
    rest = sorted(k for k in record if k not in FIRST_FIELDS and k not in _SHOWN)
    fields += [f"{k}={_value(record[k])}" for k in rest]
    text = " ".join([head, *fields])
    start = colour_of(record) if colour else ""
    return f"{start}{text}{RESET}" if start else text


def render(line: Line, filters: Filters, *, colour: bool, as_json: bool) -> str | None:
    """What to print for one input line (None: nothing)."""
    if line.record is None:
        if as_json or (not line.message.strip() and not line.prefix):
            return None
        text = line.prefix + line.message
        return f"{DIM}{text}{RESET}" if colour else text
    if not filters.match(line.record):
        return None
    if as_json:
        return line.message.strip()
    return pretty(line.record, colour=colour, dyno=line.dyno)


def run(
    lines: Iterable[str], out: IO[str], filters: Filters, *, colour: bool, as_json: bool
) -> int:
    """Tail ``lines`` to ``out``; the number of EyeTok records printed."""
    shown = 0
    for raw in lines:
        text = render(parse(raw), filters, colour=colour, as_json=as_json)
        if text is None:
            continue
        out.write(text + "\n")
        out.flush()
        shown += 1
    return shown
