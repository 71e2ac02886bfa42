"""The Heroku log drain source: router and dyno error lines become signals.

``POST /hooks/heroku-logs/{tenant}`` takes a Heroku HTTPS drain body
(``application/logplex-1``, framed by :mod:`eyetok.sources.logplex`). Each message is an
RFC 5424 line as Logplex writes it, ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID MSG``; only
Heroku's own lines (APP ``heroku``) are read, so an application that prints ``code=H12``
in its own logs raises nothing. What is recognised (documented by Heroku at
https://devcenter.heroku.com/articles/error-codes):

=================================================  =========  ==================  ==========
line                                               code       rule                severity
=================================================  =========  ==================  ==========
router ``at=error code=H10 desc="App crashed"``    H10        ``heroku-h10``      critical
``Error R15 (Memory quota vastly exceeded)``       R15        ``heroku-r15``      critical
router ``at=error code=H12 desc="Request timeout"``  H12      ``heroku-h12``      high
``State changed from up to crashed``               crashed    ``heroku-crashed``  high
``Error R14 (Memory quota exceeded)``              R14        ``heroku-r14``      medium
router ``code=H13`` (connection closed without     H13        ``heroku-h13``      medium
response), ``code=H18`` (server request
interrupted)                                       H18        ``heroku-h18``      medium
router ``code=H27`` (client request interrupted),  H27, H28   ``heroku-h27``,     low
``code=H28`` (client connection idle): only when              ``heroku-h28``
the tenant's ``heroku_drain.codes`` names them
=================================================  =========  ==================  ==========

Another router code (H11, H14, H99...) named in ``heroku_drain.codes`` becomes a signal
too and falls to the ``default`` rule (medium). Every other line is skipped by one
substring search before anything is parsed: most drain lines are not errors.

Each recognised line is one ALERT :class:`~eyetok.messages.Signal`, ``dedup_key``
``heroku:{app}:{code}:{dyno type}`` (``web.1`` and ``web.2`` are both ``web``; a router
line without a dyno, as H10's, is ``web``, the only type the router serves), so a storm
of H12s on the web dynos of one app is one incident whose count rises. Heroku never says
an error stopped: the incidents actor resolves such an incident once no line has
updated it for the tenant's ``heroku_drain.quiet_s`` (:func:`quiet_resolve`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec

from eyetok.messages import Incident, Signal, SignalKind

__all__ = [
    "DEFAULT_CODES",
    "KEY_PREFIX",
    "MARKS",
    "SOURCE",
    "ErrorLine",
    "is_drain_key",
    "normalise",
    "quiet_resolve",
    "recognise",
]

SOURCE = "heroku-logs"
KEY_PREFIX = "heroku:"
DEFAULT_CODES = frozenset({"H10", "H12", "H13", "H18", "R14", "R15", "crashed"})
"""What a drain recognises unless the tenant's ``heroku_drain.codes`` says otherwise."""
MARKS = {
    "H10": "heroku_h10",
    "H12": "h12",  # the recogniser's mark: the canonical rule ``heroku-h12`` reads it
    "H13": "heroku_h13",
    "H18": "heroku_h18",
    "H27": "heroku_h27",
    "H28": "heroku_h28",
    "R14": "heroku_r14",
    "R15": "heroku_r15",
    "crashed": "heroku_crashed",
}
"""The mark each code puts on its signal; the severity table names a rule per mark."""
CODE_PATTERN = re.compile(r"H\d\d|R\d\d|crashed")
_DESCRIPTIONS = {"R14": "Memory quota exceeded", "R15": "Memory quota vastly exceeded"}

# one search per message decides whether it is worth parsing at all
_WORTH_READING = re.compile(rb"code=H\d\d|Error R\d\d|to crashed")
_ROUTER_FIELD = re.compile(r'(\w+)=("[^"]*"|\S*)')
_DYNO_ERROR = re.compile(r"Error (R\d\d) \(([^)]*)\)")
_CRASHED = re.compile(r"State changed from (\w+) to crashed")
_ROUTER_TAGS = ("method", "path", "host", "request_id", "dyno", "connect", "service", "status")


def is_drain_key(dedup_key: str) -> bool:
    """Whether an incident's key is a drain's (resolved by a quiet period)."""
    return dedup_key.startswith(KEY_PREFIX)


class ErrorLine(msgspec.Struct, frozen=True, kw_only=True):
    """A recognised Heroku error line, before it is a signal."""

    code: str  # H12, R15, crashed...
    description: str
    dyno: str  # web.1 (may be empty on a router line)
    line: str  # the syslog MSG
    logged_at: str  # the syslog TIMESTAMP, as sent
    culprit: str  # "METHOD path" for a router line, the dyno for a dyno line
    tags: tuple[tuple[str, str], ...]


def normalise(
    messages: Iterable[bytes],
    *,
    tenant: str,
    app: str,
    codes: frozenset[str],
    received_at: datetime,
    new_id: Callable[[], str],
) -> list[Signal]:
    """The signals among a drain's syslog messages, in order (most give none)."""
    signals: list[Signal] = []
    for message in messages:
        if _WORTH_READING.search(message) is None:
            continue
        found = recognise(message, codes)
        if found is not None:
            signals.append(_signal(found, tenant, app, received_at, new_id))
    return signals


def recognise(raw: bytes, codes: frozenset[str]) -> ErrorLine | None:
    """The error one syslog message reports, when it is one of ``codes``."""
    fields = raw.decode("utf-8", "replace").split(" ", 6)
    if len(fields) < 7 or fields[3] != "heroku":
        return None
    logged_at, process, line = fields[1], fields[4], fields[6].strip()
    if process == "router":
        return _router(line, logged_at, codes)
    if (found := _DYNO_ERROR.search(line)) is not None:
        code, description = found[1], found[2]
    elif (crashed := _CRASHED.search(line)) is not None:
        code, description = "crashed", f"dyno crashed (was {crashed[1]})"
    else:
        return None
    if code not in codes:
        return None
    return ErrorLine(
        code=code,
        description=description,
        dyno=process,
        line=line,
        logged_at=logged_at,
        culprit=process,
        tags=(("dyno", process),),
    )


def _router(line: str, logged_at: str, codes: frozenset[str]) -> ErrorLine | None:
    fields = {key: value.strip('"') for key, value in _ROUTER_FIELD.findall(line)}
    code = fields.get("code", "")
    if fields.get("at") != "error" or code not in codes:
        return None
    return ErrorLine(
        code=code,
        description=fields.get("desc", ""),
        dyno=fields.get("dyno", ""),
        line=line,
        logged_at=logged_at,
        culprit=f"{fields.get('method', '')} {fields.get('path', '')}".strip(),
        tags=tuple((key, fields[key]) for key in _ROUTER_TAGS if fields.get(key)),
    )


def _signal(
    found: ErrorLine,
    tenant: str,
    app: str,
    received_at: datetime,
    new_id: Callable[[], str],
) -> Signal:
    code = found.code
    dyno_type = found.dyno.partition(".")[0] or "web"
    description = found.description or _DESCRIPTIONS.get(code, "")
    mark = MARKS.get(code)
    return Signal(
        signal_id=new_id(),
        tenant=tenant,
        source=SOURCE,
        resource="router" if code.startswith("H") else "dyno",
        action=code.lower(),
        kind=SignalKind.ALERT,
        dedup_key=f"{KEY_PREFIX}{app}:{code}:{dyno_type}",
        title=f"{app} {dyno_type}: {code} {description}".rstrip(),
        received_at=received_at,
        level="error",
        message=found.line,
        culprit=found.culprit,
        project=app,
        tags=(
            ("heroku.error_code", code),
            ("heroku.app", app),
            ("heroku.dyno_type", dyno_type),
            ("heroku.logged_at", found.logged_at),
            *found.tags,
        ),
        marks=frozenset({mark}) if mark else frozenset(),
    )


def quiet_resolve(
    incident: Incident, *, now: datetime, quiet_s: float, new_id: Callable[[], str]
) -> Signal:
    """The resolve of a drain incident no line has updated for ``quiet_s`` seconds."""
    quiet_for = round((now - incident.last_seen_at).total_seconds())
    return Signal(
        signal_id=new_id(),
        tenant=incident.tenant,
        source=SOURCE,
        resource="quiet-period",
        action="quiet",
        kind=SignalKind.RESOLVE,
        dedup_key=incident.dedup_key,
        title=incident.title,
        received_at=now,
        level="info",
        message=(
            f"no matching Heroku log line for {quiet_for}s (quiet period {quiet_s:.0f}s) "
            f"after {incident.event_count} line(s)"
        ),
        culprit=incident.culprit,
        project=incident.project,
    )
