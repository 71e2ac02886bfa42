"""The console's view of the daemon. Reads go to the history: one incident's page after
a flush, so it shows what was just accepted; the polled list without one. Writes go
through the same paths as the Slack buttons and the operator API (the incidents actor's
acknowledgement, the routines actor's anomaly notes, the verification actor's
handshakes, the suppression log)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from actors.drill_desk import DrillDesk
from actors.topology import Topology
from eyetok.access import Action, Caller
from eyetok.console.desk import PendingProposal, StreamRow
from eyetok.console.filters import IncidentFilter
from eyetok.console.timeline import Moment
from eyetok.health import SinkBoard
from eyetok.http.app import sink_rows
from eyetok.http.people import ask
from eyetok.messages import ApiAnswer, AuditRecorded, BudgetStanding, HandshakeAnswer, Incident
from eyetok.review import NoteAnswer, Review
from state.history import console_queries

RECENTLY_RESOLVED = timedelta(hours=24)
MAX_STREAM = 2000
OVER_CAP = "over the hourly cap: in the digest"


class ConsoleDeskOfDaemon:
    def __init__(self, topology: Topology, drills: DrillDesk, sink_board: SinkBoard) -> None:
        self._topology = topology
        self._drills = drills
        self._board = sink_board

    async def incidents(self, wanted: IncidentFilter) -> list[Incident]:
        # No flush: every open list polls this each second, and the history materialises
        # every 0.25 s anyway (a forced flush per poll would cost the pipeline a DuckDB
        # write per tab per second).
        resolved_since = self._topology.clock.now() - RECENTLY_RESOLVED
        return await self._topology.store.read(
            lambda con: console_queries.incidents(con, wanted, resolved_since=resolved_since)
        )

    async def incident(self, incident_id: str, *, tenant: str | None) -> Incident | None:
        await self._topology.flush_history()
        return await self._topology.store.read(
            lambda con: console_queries.incident(con, incident_id, tenant=tenant)
        )

    async def timeline(self, incident_id: str) -> list[Moment]:
        return await self._topology.store.read(
            lambda con: console_queries.timeline(con, incident_id)
        )

    async def acknowledge_incident(self, incident_id: str, by: str) -> tuple[Incident | None, bool]:
        return await self._topology.acknowledge_incident(incident_id, by)

    async def resolve_incident(
        self, incident_id: str, by: str, note: str
    ) -> tuple[Incident | None, bool]:
        return await self._topology.resolve_incident(incident_id, by, note=note)

    async def proposals(self, incident_id: str) -> list[PendingProposal]:
        # no flush of its own: asked right after incident(), which flushed
        return await self._topology.store.read(
            lambda con: console_queries.pending_proposals(con, incident_id)
        )

    async def playbook_click(self, action: str, target: str, by: str) -> str:
        return await self._topology.playbook_click(action, target, by)

    async def person_of(self, token: str) -> str | None:
        answer = await ask(self._topology, "whoami", credential=token)
        caller = answer.body.get("caller") if answer.status == 200 else None
        if isinstance(caller, dict) and caller.get("kind") == "person":
            return str(caller["id"])
        return None

    async def authorise(self, caller: Caller, action: Action, tenant: str | None) -> ApiAnswer:
        return await ask(self._topology, "authorise", caller=caller, action=action, tenant=tenant)

    async def tenant_signs_in(self, token: str, tenant: str) -> bool:
        answer = await self._topology.tenant_call(token, tenant, "authorise", "console sign-in")
        return answer.status == 200

    async def audit(self, tenant: str, event: str, detail: str, incident_id: str | None) -> None:
        await self._topology.record(
            AuditRecorded(
                at=self._topology.clock.now(),
                tenant=tenant,
                event=event,
                detail=detail,
                incident_id=incident_id,
            )
        )

    async def audit_lines(self, event: str, since: datetime) -> list[dict[str, Any]]:
        return await self._drills.audit(None, event, since)

    async def stream(self, since: datetime, until: datetime) -> list[StreamRow]:
        await self._topology.flush_history()

        def query(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            return con.execute(
                """SELECT epoch_us(n.planned_at), n.tenant, n.incident_id, n.sink_id,
                          n.sink_type, n.target, n.status,
                          coalesce(nullif(regexp_extract(n.detail, 'cluster (\\S+)', 1), ''),
                                   json_extract_string(n.deliver_json, '$.cluster_key'), '')
                   FROM notifications n
                   WHERE n.planned_at >= ? AND n.planned_at < ?
                   ORDER BY n.tenant, n.planned_at, n.delivery_id LIMIT ?""",
                [since, until, MAX_STREAM],
            ).fetchall()

        zone = self._topology.clock.now().tzinfo
        return [
            StreamRow(
                planned_at=datetime.fromtimestamp(r[0] / 1_000_000, tz=zone),
                tenant=r[1],
                incident_id=r[2],
                sink_id=r[3],
                sink_type=r[4],
                target=r[5],
                verdict=r[6],
                cluster=r[7] or "",
                budget="over the hourly cap: in the digest"
                if r[6] == "digested"
                else "within budget",
            )
            for r in await self._topology.store.read(query)
        ]

    async def review(self, since: datetime) -> Review:
        return await self._topology.review(since)

    async def note_anomaly(self, anomaly_id: str, verdict: str, note: str, by: str) -> NoteAnswer:
        return await self._topology.note_anomaly(anomaly_id, verdict, note, by)

    async def sinks(self) -> list[dict[str, Any]]:
        verifications = await self._topology.verifications()
        return sink_rows(verifications, self._board, self._topology.clock.now())

    async def start_verification(self, sink_id: str, requested_by: str) -> HandshakeAnswer:
        return await self._topology.start_verification(sink_id, requested_by)

    async def receipts(self, limit: int) -> list[dict[str, Any]]:
        return await self._drills.receipts(limit)

    async def budgets(self) -> tuple[BudgetStanding, ...]:
        return await self._topology.budgets()

    async def suppressions(self) -> list[dict[str, Any]]:
        return await self._topology.suppressions()

    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None:
        return await self._topology.acknowledge_cluster(cluster_id, by)
