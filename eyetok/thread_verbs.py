"""The thread as a conversation, pure: what a human's reply in an incident's Slack thread
asks for, and the one-line answers EyeTok gives.

A reply (an Events API ``message`` whose ``thread_ts`` is the incident's first post, or an
``app_mention`` in that thread) is read for one verb, after any ``<@U…>`` mention:

- ``ack``: acknowledge the incident (the path of the Acknowledge button);
- ``resolve``: resolve it (the path of the operator API's resolve);
- ``why``: the routing decision of its first signal, judged again from the stored signal
  at its receipt time: the rule, the conditions that held, the louder rules that did not
  match and why, and whether it was business hours then;
- ``status``: where the incident stands;
- ``mute 1h`` (``30m``, ``2h``; at most :data:`MAX_MUTE`): silence the tenant's
  non-SEV1 deliveries until then (recorded as ``muted``, never silently lost);
- ``unmute``: end the tenant's mute now;
- anything else: :data:`HELP`, one line.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from eyetok.business_hours import BusinessWindow
from eyetok.messages import Incident, Reply
from eyetok.severity import Why
from eyetok.wording import ONCALL_ZONE, when

MAX_MUTE = timedelta(hours=24)
DEFAULT_MUTE = timedelta(hours=1)
HELP = (
    "I understand `ack`, `resolve`, `why`, `status`, `mute 1h` (30m to 24h) and `unmute` "
    "in an incident's thread."
)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
_SPAN = re.compile(r"^(\d{1,4})\s*(m|min|mins|minutes?|h|hr|hrs|hours?)$")


class Verb(enum.StrEnum):
    ACK = "ack"
    RESOLVE = "resolve"
    WHY = "why"
    STATUS = "status"
    MUTE = "mute"
    UNMUTE = "unmute"
    HELP = "help"


class Command(msgspec.Struct, frozen=True, kw_only=True):
    verb: Verb
    mute_for: timedelta | None = None  # ``mute``: how long
    problem: str | None = None  # why the words were not understood (a help reply says it)


class ThreadMessageSeen(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human wrote in a Slack thread EyeTok may own (verified, not a bot, not an edit).
    ``answered`` is set once it has been handled (tests and the HTTP route may wait)."""

    event_id: str
    team_id: str
    channel: str
    user: str
    text: str
    thread_ts: str
    ts: str
    at: datetime
    answered: Reply[str] | None = None  # what EyeTok did, in words


class MuteTenant(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Silence ``tenant``'s deliveries (SEV1 excepted) until ``until``, asked by ``by``."""

    tenant: str
    until: datetime
    by: str
    at: datetime
    incident_id: str = ""
    reply: Reply[datetime] | None = None  # the silence's end as recorded


class ActiveMute(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's mute that holds now: who asked, until when."""

    tenant: str
    by: str
    until: datetime


class UnmuteTenant(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """End ``tenant``'s mute now, asked by ``by``; the reply is the mute it ended (none:
    it was not muted)."""

    tenant: str
    by: str
    at: datetime
    incident_id: str = ""
    reply: Reply[tuple[ActiveMute, ...]] | None = None


class ShowMute(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``tenant``'s mute if one holds now (``status`` says so): one, or none."""

    tenant: str
    reply: Reply[tuple[ActiveMute, ...]]


def mute_line(mute: ActiveMute) -> str:
    """What ``status`` adds while the incident's tenant is muted."""
    until = when(mute.until)
    return f" Tenant `{mute.tenant}` is muted by {mute.by} until {until} (`unmute` ends it)."


class _Event(msgspec.Struct, kw_only=True):
    type: str = ""
    subtype: str | None = None
    bot_id: str | None = None
    channel: str = ""
    user: str = ""
    text: str = ""
    ts: str = ""
    thread_ts: str | None = None


class _Envelope(msgspec.Struct, kw_only=True):
    type: str = ""
    event_id: str = ""
    team_id: str = ""
    event: _Event | None = None


def thread_message_of(body: bytes, at: datetime) -> ThreadMessageSeen | None:
    """A verified Events API body as a human's reply in a thread, or None: not a thread
    reply (a top-level message, a DM), written by a bot (EyeTok's own posts), an edit or a
    deletion (any ``subtype``), or not an event callback."""
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
    except msgspec.DecodeError:
        return None
    event = envelope.event
    if (
        envelope.type != "event_callback"
        or event is None
        or event.type not in ("message", "app_mention")
        or event.subtype is not None
        or event.bot_id is not None
        or not event.user
        or not event.thread_ts
        or event.thread_ts == event.ts  # the thread's first message itself
        or not envelope.event_id
    ):
        return None
    return ThreadMessageSeen(
        event_id=envelope.event_id,
        team_id=envelope.team_id,
        channel=event.channel,
        user=event.user,
        text=event.text,
        thread_ts=event.thread_ts,
        ts=event.ts,
        at=at,
    )


def parse(text: str) -> Command:
    """The command in a thread reply (mentions stripped, case and punctuation ignored)."""
    words = _MENTION.sub(" ", text).strip().lower().rstrip(".!?").split()
    if not words:
        return Command(verb=Verb.HELP)
    head, rest = words[0], " ".join(words[1:])
    simple = {"ack": Verb.ACK, "acknowledge": Verb.ACK, "resolve": Verb.RESOLVE}
    simple |= {"why": Verb.WHY, "status": Verb.STATUS, "unmute": Verb.UNMUTE}
    if head in simple and not rest:
        return Command(verb=simple[head])
    if head == "mute":
        if not rest:
            return Command(verb=Verb.MUTE, mute_for=DEFAULT_MUTE)
        span = _SPAN.match(rest)
        if span is None:
            said = _plain(rest[:40])
            return Command(verb=Verb.HELP, problem=f"`mute {said}` is not a span like 1h or 30m")
        amount = int(span.group(1))
        mute_for = timedelta(hours=amount) if span.group(2)[0] == "h" else timedelta(minutes=amount)
        if not timedelta(minutes=1) <= mute_for <= MAX_MUTE:
            return Command(verb=Verb.HELP, problem="a mute lasts from 1 minute to 24 hours")
        return Command(verb=Verb.MUTE, mute_for=mute_for)
    return Command(verb=Verb.HELP)


def _plain(text: str) -> str:
    """Text from outside (a human's words, a payload's values) made inert in Slack mrkdwn:
    no mention, link or channel ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def help_line(command: Command) -> str:
    return f"{command.problem}. {HELP}" if command.problem else HELP


def status_line(incident: Incident) -> str:
    channel = incident.sev_channel.value if incident.sev_channel else "audit only"
    line = (
        f"`{incident.incident_id}` is *{incident.status}* ({channel}, "
        f"{incident.severity.value}, rule `{incident.rule}`): opened {when(incident.opened_at)}, "
        f"{incident.event_count} event(s), last {when(incident.last_seen_at)}"
    )
    if incident.acknowledged_at is not None:
        line += f"; acknowledged by {incident.acknowledged_by} {when(incident.acknowledged_at)}"
    if incident.resolved_at is not None:
        line += f"; resolved {when(incident.resolved_at)}"
        if incident.resolved_by:
            line += f" by {incident.resolved_by}"
    if incident.status == "open" and incident.escalated_at is not None:
        line += f"; escalated to the secondary {when(incident.escalated_at)}"
    return line + "."


def why_line(
    why: Why, *, received_at: datetime, window: BusinessWindow, channel: str | None, business: bool
) -> str:
    """The routing decision of a signal in words: rule, held, louder misses, the hours."""
    local = received_at.astimezone(ZoneInfo(window.zone))
    hours = (
        f"{'inside' if business else 'outside'} business hours ({window.zone}, "
        f"{'/'.join(window.days)} {window.start}-{window.end}"
        + (f"; it was {local:%a %H:%M %Z} there)" if window.zone != ONCALL_ZONE.key else ")")
    )
    held = _plain("; ".join(why.held)) or "no condition (the default rule)"
    misses = "; ".join(
        f"`{m.rule}` ({m.severity.value}): {_plain(m.failed)}" for m in why.louder_misses
    )
    return (
        f"Routed by rule `{why.rule}` ({why.severity.value} -> {channel or 'audit only'}) "
        f"when its first signal arrived {when(received_at)}, {hours}. Held: {held}. "
        + (f"Louder rules that did not match: {misses}." if misses else "No louder rule applies.")
    )
