"""The FreeScout ticket trail: its configuration, its labels and the request shapes of the
FreeScout API & Webhooks module.

FreeScout is the team's ticket system. For an incident of a configured SEV channel
(default SEV1, SEV2, SEV2.5) EyeTok opens one conversation (``POST /api/conversations``),
appends a note thread for each later event (``POST /api/conversations/{id}/threads``)
and closes it on resolve (``PUT /api/conversations/{id}``, status ``closed``). Every call
carries the ``X-FreeScout-API-Key`` header. The conversation's subject carries a marker
unique to the incident (``[EyeTok inc_…]``) so that a retry after a crash finds the
conversation it already opened (``GET /api/conversations?subject=…``) instead of
opening a second one.

The tags are the canonical labels and nothing else: severity (``critical|high|medium|
low``), SEV channel (``SEV1|SEV2|SEV2.5|SEV3``), tenant, rule. ``eyetok check`` holds
them against the canonical table (:func:`label_cases`).

The client that speaks the shapes is :mod:`eyetok.freescout_api`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from eyetok.errors import ConfigError
from eyetok.messages import Incident, SevChannel, Severity

SEVERITY_LABELS = frozenset({"critical", "high", "medium", "low"})
CHANNEL_LABELS = frozenset(c.value for c in SevChannel)
# the SEV channels each severity may be posted in (design section 3)
CHANNELS_OF: dict[Severity, frozenset[SevChannel]] = {
    Severity.CRITICAL: frozenset({SevChannel.SEV1}),
    Severity.HIGH: frozenset({SevChannel.SEV2, SevChannel.SEV2_5}),
    Severity.MEDIUM: frozenset({SevChannel.SEV3}),
    Severity.LOW: frozenset({SevChannel.SEV3}),
}


class FreeScoutOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``freescout:`` section. The URL, key and mailbox come from the environment
    (the vault injects them): the variables named here."""

    channels: tuple[SevChannel, ...] = (SevChannel.SEV1, SevChannel.SEV2, SevChannel.SEV2_5)
    url_env: str = "FREESCOUT_URL"
    api_key_env: str = "FREESCOUT_API_KEY"
    mailbox_env: str = "FREESCOUT_MAILBOX_ID"
    user_id: int = 1  # the FreeScout user notes and the closing are made as
    customer_email: str = "eyetok@localhost"  # the conversation's customer (FreeScout needs one)
    repeat_note_every_s: float = 60.0  # repeats of an incident: at most one note this often
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_age_s: float = 3600.0  # a call failing this long ends dead (audited, reported)
    request_timeout_s: float = 10.0


class FreeScoutLink(msgspec.Struct, frozen=True, kw_only=True):
    """Where and as whom EyeTok talks to FreeScout (resolved from the environment)."""

    url: str
    api_key: str
    mailbox_id: int

    def __repr__(self) -> str:  # the key never reaches a log line
        return f"FreeScoutLink(url={self.url!r}, mailbox_id={self.mailbox_id})"


def link_from(options: FreeScoutOptions, env: Mapping[str, str]) -> FreeScoutLink | None:
    """The link, or None when FreeScout is not configured (no URL in the environment)."""
    if not options.channels:
        raise ConfigError("freescout.channels", "name at least one SEV channel")
    for name in ("repeat_note_every_s", "base_backoff_s", "max_backoff_s", "max_age_s"):
        if not getattr(options, name) > 0:
            raise ConfigError(f"freescout.{name}", "must be a positive number of seconds")
    if not 0 < options.request_timeout_s <= 60:
        raise ConfigError("freescout.request_timeout_s", "must be above 0 and at most 60 s")
    url = env.get(options.url_env, "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigError(options.url_env, f"{url!r} is not an http(s) URL")
    key = env.get(options.api_key_env, "").strip()
    if not key:
        raise ConfigError(
            options.api_key_env, f"{options.url_env} is set but the FreeScout API key is not"
        )
    mailbox = env.get(options.mailbox_env, "").strip()
    if not mailbox.isdigit() or int(mailbox) < 1:
        raise ConfigError(
            options.mailbox_env, f"{mailbox!r} is not a FreeScout mailbox id (a positive number)"
        )
    return FreeScoutLink(url=url, api_key=key, mailbox_id=int(mailbox))


# --- labels ---------------------------------------------------------------------------


def tags_of(incident: Incident) -> tuple[str, ...]:
    """The canonical labels of an incident, as FreeScout tags: severity, SEV channel,
    tenant, rule (in this order)."""
    channel = incident.sev_channel.value if incident.sev_channel else ""
    return (incident.severity.value, channel, incident.tenant, incident.rule)


def label_problems(incident: Incident) -> list[str]:
    """How the tags EyeTok would send for ``incident`` differ from the canonical table
    (empty: they match exactly)."""
    tags = tags_of(incident)
    problems = []
    severity, channel, tenant, rule = tags
    if severity not in SEVERITY_LABELS:
        problems.append(f"severity tag {severity!r} is not one of {sorted(SEVERITY_LABELS)}")
    if channel not in CHANNEL_LABELS:
        problems.append(f"channel tag {channel!r} is not one of {sorted(CHANNEL_LABELS)}")
    allowed = CHANNELS_OF.get(incident.severity, frozenset())
    if incident.sev_channel not in allowed:
        problems.append(
            f"severity {severity!r} is never posted in {channel!r} "
            f"(canonical: {', '.join(sorted(c.value for c in allowed)) or 'no channel'})"
        )
    if (tenant, rule) != (incident.tenant, incident.rule):
        problems.append(f"tenant/rule tags {tenant!r}/{rule!r} are not the incident's")
    if len(set(tags)) != len(tags) or any(not t or t != t.strip() or "," in t for t in tags):
        problems.append(f"tags {list(tags)} are not four distinct, trimmed, comma-free labels")
    return problems


# a Wednesday 10:00 and a Tuesday 23:00 in New York: inside and outside business hours
_LABEL_INSTANTS = (
    datetime(2026, 12, 2, 15, 0, tzinfo=UTC),
    datetime(2026, 12, 2, 4, 0, tzinfo=UTC),
)


def label_cases(tenant: str) -> list[tuple[str, list[str]]]:
    """``eyetok check``'s label check: for every canonical rule and every SEV channel its
    severity is posted in, the tags EyeTok would send and how they differ from the
    canonical table (``freescout-labels/<rule>/<channel>``, problems; empty: exact)."""
    from eyetok.severity import CANONICAL_RULES, DEFAULT_RULE, sev_channel_for

    cases = []
    for rule in (*CANONICAL_RULES, DEFAULT_RULE):
        channels = {sev_channel_for(rule.severity, at)[0] for at in _LABEL_INSTANTS}
        for channel in sorted(c for c in channels if c is not None):
            incident = Incident(
                incident_id="inc_label_check",
                tenant=tenant,
                dedup_key="label-check",
                title="label check",
                severity=rule.severity,
                sev_channel=channel,
                rule=rule.name,
                status="open",
                opened_at=_LABEL_INSTANTS[0],
                last_seen_at=_LABEL_INSTANTS[0],
                event_count=1,
            )
            cases.append(
                (f"freescout-labels/{rule.name}/{channel.value}", label_problems(incident))
            )
    return cases


# --- request shapes -------------------------------------------------------------------


def marker_of(incident_id: str) -> str:
    """The unique marker in the subject that finds the conversation again."""
    return f"[EyeTok {incident_id}]"


def subject_of(incident: Incident) -> str:
    channel = incident.sev_channel.value if incident.sev_channel else "-"
    return f"{channel} {incident.title[:160]} {marker_of(incident.incident_id)}"


def opening_text(incident: Incident, *, slack_link: str | None, console_link: str) -> str:
    channel = incident.sev_channel.value if incident.sev_channel else "-"
    lines = [
        f"EyeTok incident {incident.incident_id}: {incident.title}",
        f"Severity {incident.severity.value}, {channel}; tenant {incident.tenant}; "
        f"rule {incident.rule}; opened {incident.opened_at.isoformat()}.",
        f"Slack thread: {slack_link}" if slack_link else "Slack thread: not posted yet",
        f"Console: {console_link}",
    ]
    if incident.url:
        lines.append(f"Source: {incident.url}")
    return "\n".join(lines)


def conversation_body(
    incident: Incident, link: FreeScoutLink, options: FreeScoutOptions, text: str
) -> dict[str, Any]:
    """``POST /api/conversations``: an email conversation in the mailbox, one note."""
    return {
        "type": "email",
        "mailboxId": link.mailbox_id,
        "subject": subject_of(incident),
        "customer": {"email": options.customer_email},
        "threads": [{"type": "note", "text": text, "user": options.user_id}],
        "tags": list(tags_of(incident)),
        "status": "active",
    }


def note_body(text: str, options: FreeScoutOptions) -> dict[str, Any]:
    """``POST /api/conversations/{id}/threads``: a note."""
    return {"type": "note", "text": text, "user": options.user_id}


def close_body(options: FreeScoutOptions) -> dict[str, Any]:
    """``PUT /api/conversations/{id}``: status closed."""
    return {"status": "closed", "byUser": options.user_id}
