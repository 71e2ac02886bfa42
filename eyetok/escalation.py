"""The SEV3 escalation invariant, in the one function every promotion calls.

EyeTok may *recommend* that an incident is louder than its channel (a triage step's
declared condition held; a louder repeat of a SEV3 incident), but an incident is posted in
a louder channel only through :func:`promote`, and :func:`promote` refuses unless a human's
acknowledgement of that very recommendation is recorded. The acknowledgement is the
record (who, when, which incident, which channel), not the click: the playbooks actor
commits it before it asks.
"""

from __future__ import annotations

import msgspec

from eyetok.errors import EyeTokError
from eyetok.incidents import louder
from eyetok.messages import Acknowledgement, Incident, SevChannel, Severity

# the severity an incident promoted to a channel is said to have
_SEVERITY_OF = {
    SevChannel.SEV1: Severity.CRITICAL,
    SevChannel.SEV2: Severity.HIGH,
    SevChannel.SEV2_5: Severity.HIGH,
}


class PromotionRefused(EyeTokError):
    """An incident was asked to be posted louder without a recorded human acknowledgement
    of that recommendation (or to a channel that is not louder)."""


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


def _channel(incident: Incident) -> str:
    return incident.sev_channel.value if incident.sev_channel else "the audit log"
