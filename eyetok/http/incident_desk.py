"""Where a human's decision on an incident goes from the HTTP surfaces (a Slack button or
modal, a PagerDuty webhook, the operator API): the topology, which hands it to the
incidents actor and answers once it is in the tables."""

from __future__ import annotations

from typing import Protocol

from eyetok.messages import Incident


class IncidentDesk(Protocol):
    async def acknowledge_incident(
        self,
        incident_id: str,
        by: str,
        *,
        by_id: str | None = None,
        tenants: tuple[str, ...] | None = None,
    ) -> tuple[Incident | None, bool]:
        """The incident after the acknowledgement (None: no open incident has this id, or
        not of one of ``tenants``) and whether this acknowledgement counted (False: acknowledged
        already)."""
        ...

    async def resolve_incident(
        self,
        incident_id: str,
        by: str,
        *,
        note: str = "",
        by_id: str | None = None,
        tenants: tuple[str, ...] | None = None,
    ) -> tuple[Incident | None, bool]:
        """The incident after the resolve (None: no open incident has this id, or not of one of
        ``tenants``)."""
        ...
