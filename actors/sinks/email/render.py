"""Email messages, pure: one delivery (one event) -> one message spec.

Every upstream-derived string goes through :func:`eyetok.guard.scrub` (IP literals become
``[ip]``); every string in the HTML body goes through :func:`html.escape`. The subject is
one line (CR/LF from upstream would otherwise be a header injection). The Message-ID is
derived from the delivery id, so a retried delivery carries the same Message-ID and a
mailbox that deduplicates on it shows one message.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import assert_never
from urllib.parse import urlsplit

import msgspec

from actors.sinks.email.config import MESSAGE_ID_DOMAIN
from eyetok.guard import scrub
from eyetok.messages import Deliver, Incident, IncidentAction, SevChannel
from eyetok.wording import duration, plural, when

__all__ = ["EmailMessageSpec", "message_id", "one_line", "render"]

SUBJECT_MAX = 200
_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

_POSTURE: dict[SevChannel, str] = {
    SevChannel.SEV1: "Waiting for a human ack; no autonomous action.",
    SevChannel.SEV2: "Needs a human: no remediation is proposed automatically yet.",
    SevChannel.SEV2_5: "Needs a human: no remediation is proposed automatically yet.",
    SevChannel.SEV3: "Posted for the record; no automatic triage ran.",
}
_FOOTER = "Sent by EyeTok: one message per event."


class EmailMessageSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one email says, before it becomes MIME. ``date`` None: no Date header
    (the submission server adds one)."""

    to: str
    subject: str
    text: str  # the text/plain part
    html: str  # the text/html alternative; every interpolated value is escaped
    message_id: str  # "<...@eyetok>"
    date: datetime | None = None


def message_id(key: str) -> str:
    """``<{key}@eyetok>``, with anything outside ``[A-Za-z0-9._-]`` folded to ``-``."""
    local = _MSGID_UNSAFE.sub("-", key).strip(".") or "eyetok"
    return f"<{local}@{MESSAGE_ID_DOMAIN}>"


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """Whitespace (CR/LF included) collapsed to single spaces, cut at ``limit``."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def _when(at: datetime) -> str:
    return when(at)


def _http_url(url: str) -> str:
    """``url`` (scrubbed) if it is an http(s) link, else ""."""
    scrubbed = scrub(url.strip())
    try:
        scheme = urlsplit(scrubbed).scheme.lower()
    except ValueError:
        return ""
    return scrubbed if scheme in ("http", "https") else ""


def _facts(incident: Incident, rule: str) -> list[tuple[str, str]]:
    channel = incident.sev_channel.value if incident.sev_channel else "audit"
    facts = [
        ("Severity", f"{incident.severity.value} ({channel})"),
        ("Rule", scrub(rule)),
        ("Incident", scrub(incident.incident_id)),
    ]
    if incident.environment:
        facts.append(("Environment", scrub(incident.environment)))
    if incident.project:
        facts.append(("Project", scrub(incident.project)))
    if incident.culprit:
        facts.append(("Culprit", scrub(incident.culprit)))
    facts.append(
        (
            "Events",
            f"{incident.event_count} (opened {_when(incident.opened_at)}; "
            f"last seen {_when(incident.last_seen_at)})",
        )
    )
    return facts


def _notice(deliver: Deliver, notice: str, to: str) -> EmailMessageSpec:
    body = scrub(notice) + (f"\n\n({deliver.late})" if deliver.late else "")
    first = next((line for line in body.splitlines() if line.strip()), "notice")
    return EmailMessageSpec(
        to=to,
        subject=one_line(f"[EyeTok] {first}"),
        text=f"{body}\n\n-- \n{_FOOTER}\n",
        html=(
            '<html><body><div style="white-space: pre-wrap">'
            f"{html.escape(body)}</div>"
            f"<p><small>{html.escape(_FOOTER)}</small></p></body></html>"
        ),
        message_id=message_id(deliver.delivery_id),
        date=deliver.planned_at,
    )


def render(deliver: Deliver, *, to: str | None = None) -> EmailMessageSpec:
    """The email for one delivery, to ``to`` (default: the destination's target)."""
    recipient = to if to is not None else deliver.destination.target
    if deliver.notice is not None:
        return _notice(deliver, deliver.notice, recipient)
    incident = deliver.incident
    title = scrub(incident.title)
    channel = incident.sev_channel.value if incident.sev_channel else "audit"
    facts = _facts(incident, deliver.rule)
    notes: list[str] = []
    match deliver.action:
        case IncidentAction.OPEN:
            subject = f"[{channel}] {title}"
            headline = f"{channel}: new incident: {title}"
            if incident.sev_channel is not None:
                notes.append(_POSTURE[incident.sev_channel])
            if deliver.step == "escalated" and incident.escalated_at is not None:
                subject = f"[{channel}, escalated] {title}"
                waited = duration(incident.escalated_at - incident.opened_at)
                notes.append(f"Escalated to you: nobody acknowledged this SEV1 within {waited}.")
        case IncidentAction.UPDATE:
            subject = f"[{channel}] {title} (seen again: {plural(incident.event_count, 'event')})"
            headline = f"{channel}: seen again: {title}"
            if incident.escalation_recommended is not None:
                notes.append(
                    f"escalation_recommended: {incident.escalation_recommended.value} "
                    "(a human must acknowledge)"
                )
        case IncidentAction.RESOLVE:
            at = incident.resolved_at or incident.last_seen_at
            subject = f"[resolved] {title}"
            headline = f"Resolved: {title}"
            facts.append(("Resolved", _when(at)))
        case IncidentAction.AUDIT:
            subject = f"[audit] {title}"
            headline = f"audit: {title}"
        case _:
            assert_never(deliver.action)
    if deliver.late:  # held for the sink's verification
        facts.append(("Late", deliver.late))
    url = _http_url(incident.url)
    if url:
        facts.append(("Link", url))

    width = max(len(name) for name, _ in facts)
    text_lines = [one_line(headline, 998), ""]
    text_lines += [f"{name + ':':<{width + 1}} {value}" for name, value in facts]
    if notes:
        text_lines += ["", *notes]
    text_lines += ["", "-- ", _FOOTER, ""]

    rows = "".join(
        f'<tr><th align="left" style="padding-right: 1em">{html.escape(name)}</th>'
        + (
            f'<td><a href="{html.escape(value)}">{html.escape(value)}</a></td></tr>'
            if name == "Link"
            else f"<td>{html.escape(value)}</td></tr>"
        )
        for name, value in facts
    )
    notes_html = "".join(f"<p>{html.escape(note)}</p>" for note in notes)
    body_html = (
        f"<html><body><h2>{html.escape(one_line(headline, 998))}</h2>"
        f"<table>{rows}</table>{notes_html}"
        f"<p><small>{html.escape(_FOOTER)}</small></p></body></html>"
    )
    return EmailMessageSpec(
        to=recipient,
        subject=one_line(subject),
        text="\n".join(text_lines),
        html=body_html,
        message_id=message_id(deliver.delivery_id),
        date=deliver.planned_at,
    )
