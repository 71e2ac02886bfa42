"""What the console asks of the daemon (implemented in ``actors/console_desk.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import msgspec

from eyetok.access import Action, Caller
from eyetok.console.filters import IncidentFilter
from eyetok.console.timeline import Moment
from eyetok.messages import ApiAnswer, BudgetStanding, HandshakeAnswer, Incident
from eyetok.review import NoteAnswer, Review


class StreamRow(msgspec.Struct, frozen=True, kw_only=True):
    """One notification of the stream under review."""

    planned_at: datetime
    tenant: str
    incident_id: str
    sink_id: str
    sink_type: str
    target: str
    verdict: str  # the outbox row's outcome: delivered, refused, dead, suppressed, digested...
    cluster: str  # the suppression cluster that withheld it, or its cluster key, or ""
    budget: str  # "over the hourly cap: in the digest" or "within budget"


class PendingProposal(msgspec.Struct, frozen=True, kw_only=True):
    """A playbook's remediation proposed for an incident and not yet decided (neither
    run nor rejected nor withdrawn): its Approve and Reject buttons."""

    proposal_id: str
    detail: str  # the audit line: the playbook, what would run, who proposed it
    approvals: tuple[str, ...]  # who approved it so far (a quorum may need more)


class ConsoleDesk(Protocol):
    async def incidents(self, wanted: IncidentFilter) -> list[Incident]: ...

    async def incident(self, incident_id: str, *, tenant: str | None) -> Incident | None: ...

    async def timeline(self, incident_id: str) -> list[Moment]: ...

    async def acknowledge_incident(
        self, incident_id: str, by: str
    ) -> tuple[Incident | None, bool]: ...

    async def resolve_incident(
        self, incident_id: str, by: str, note: str
    ) -> tuple[Incident | None, bool]: ...

    async def proposals(self, incident_id: str) -> list[PendingProposal]:
        """The incident's playbook proposals still waiting for a decision."""
        ...

    async def playbook_click(self, action: str, target: str, by: str) -> str:
        """Approve or reject a proposal, as its Slack button does: the playbooks actor's
        one line saying what it did."""
        ...

    async def tenant_signs_in(self, token: str, tenant: str) -> bool:
        """Whether ``token`` is a live token of ``tenant``."""
        ...

    async def person_of(self, token: str) -> str | None:
        """The Slack user id whose person token ``token`` is (None: it is no one's)."""
        ...

    async def authorise(self, caller: Caller, action: Action, tenant: str | None) -> ApiAnswer:
        """The people actor's verdict (eyetok/access.py): 200 with ``by``, or 403 naming
        ``needed_role`` (audited there as ``access_refused``)."""
        ...

    async def audit(self, tenant: str, event: str, detail: str, incident_id: str | None) -> None:
        """Journal one audit line (every write of the console is one)."""
        ...

    async def audit_lines(self, event: str, since: datetime) -> list[dict[str, Any]]:
        """The audit log's ``event`` lines since ``since``, oldest first."""
        ...

    async def stream(self, since: datetime, until: datetime) -> list[StreamRow]: ...

    async def review(self, since: datetime) -> Review: ...

    async def note_anomaly(
        self, anomaly_id: str, verdict: str, note: str, by: str
    ) -> NoteAnswer: ...

    async def sinks(self) -> list[dict[str, Any]]:
        """Every configured sink with its verification standing (``GET /api/v1/sinks``)."""
        ...

    async def start_verification(self, sink_id: str, requested_by: str) -> HandshakeAnswer: ...

    async def receipts(self, limit: int) -> list[dict[str, Any]]: ...

    async def budgets(self) -> tuple[BudgetStanding, ...]: ...

    async def suppressions(self) -> list[dict[str, Any]]: ...

    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None: ...
