"""The SEV3 escalation invariant, in the one function every promotion calls.

EyeTok may *recommend* that an incident is louder than its channel (a triage step's
declared condition held; a louder repeat of a SEV3 incident), but an incident is posted in
a louder channel only through :func:`promote`, and :func:`promote` refuses unless a human's
acknowledgement of that very recommendation is recorded. The acknowledgement is the
record (who, when, which incident, which channel), not the click: the playbooks actor
commits it before it asks.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from eyetok.errors import EyeTokError
from eyetok.incidents import louder
from eyetok.messages import Incident, PromoteIncident, SevChannel, Severity

# the severity an incident promoted to a channel is said to have
_SEVERITY_OF = {
    SevChannel.SEV1: Severity.CRITICAL,
    SevChannel.SEV2: Severity.HIGH,
    SevChannel.SEV2_5: Severity.HIGH,
}


class PromotionRefused(EyeTokError):
    """An incident was asked to be posted louder without a recorded human acknowledgement
    of that recommendation (or to a channel that is not louder)."""


class Acknowledgement(msgspec.Struct, frozen=True, kw_only=True):
    """A human's recorded acknowledgement of ``escalation_recommended: to``."""

    incident_id: str
    to: SevChannel
    by: str
    at: datetime


def is_human(by: str) -> bool:
    """Whether ``by`` names a person (not EyeTok's own identity, not nobody)."""
    return bool(by.strip()) and not by.startswith("eyetok")


def promote(
    incident: Incident, to: SevChannel, acknowledgement: Acknowledgement | None
) -> Incident:
    """The incident as it is posted in the louder channel ``to``; raises
    :class:`PromotionRefused` unless ``acknowledgement`` is a recorded human
    acknowledgement of exactly this incident and this channel."""
    if acknowledgement is None:
        raise PromotionRefused(
            f"incident {incident.incident_id}: no recorded acknowledgement of "
            f"escalation_recommended: {to.value}; it stays in {_channel(incident)}"
        )
    if acknowledgement.incident_id != incident.incident_id or acknowledgement.to is not to:
        raise PromotionRefused(
            f"incident {incident.incident_id}: the acknowledgement recorded is for "
            f"{acknowledgement.incident_id} -> {acknowledgement.to.value}, not -> {to.value}"
        )
    if not is_human(acknowledgement.by):
        raise PromotionRefused(
            f"incident {incident.incident_id}: an acknowledgement is a human's, not "
            f"{acknowledgement.by!r}"
        )
    if not louder(to, incident.sev_channel):
        raise PromotionRefused(
            f"incident {incident.incident_id}: {to.value} is not louder than {_channel(incident)}"
        )
    return msgspec.structs.replace(
        incident,
        sev_channel=to,
        severity=_SEVERITY_OF.get(to, incident.severity),
        escalation_recommended=None,
    )


def promoted_as_told(incident: Incident, message: PromoteIncident) -> Incident:
    """The incidents actor's own snapshot moved to the louder channel the playbooks actor
    re-posted it in: through :func:`promote`, with the acknowledgement ``message``
    carries (raises :class:`PromotionRefused` likewise, e.g. when it is louder already)."""
    acknowledgement = Acknowledgement(
        incident_id=message.incident_id, to=message.to, by=message.by, at=message.acknowledged_at
    )
    return promote(incident, message.to, acknowledgement)


def _channel(incident: Incident) -> str:
    return incident.sev_channel.value if incident.sev_channel else "the audit log"
