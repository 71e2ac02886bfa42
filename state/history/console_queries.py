"""What the console reads from the history: the incident list under its filters, and one
incident's timeline (signals, routing decisions, notifications, audit lines, the human
loop's steps) in the order they happened. Call through :meth:`HistoryStore.read`.

Every query takes the tenant as a predicate when the reader is a tenant (``None``: the
operator, every tenant): a tenant's session never reads another tenant's rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import duckdb
import msgspec

from eyetok.console.desk import PendingProposal
from eyetok.console.filters import IncidentFilter
from eyetok.console.timeline import Moment
from eyetok.messages import Incident

_incident = msgspec.json.Decoder(Incident)
# open first, then acknowledged, then resolved; each newest-seen first
_STATUS_ORDER = "CASE status WHEN 'open' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END"
MAX_LISTED = 300


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _at(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def incidents(
    con: duckdb.DuckDBPyConnection, wanted: IncidentFilter, *, resolved_since: datetime
) -> list[Incident]:
    """The incidents the filter admits, open first, then acknowledged, then resolved
    (only those resolved since ``resolved_since``, or inside the filter's window)."""
    sql = "SELECT snapshot_json FROM incidents WHERE true"
    params: list[object] = []
    if wanted.tenant is not None:
        sql += " AND tenant = ?"
        params.append(wanted.tenant)
    if wanted.statuses:
        sql += f" AND status IN ({', '.join('?' for _ in wanted.statuses)})"
        params.extend(wanted.statuses)
    if wanted.channels:
        sql += f" AND sev_channel IN ({', '.join('?' for _ in wanted.channels)})"
        params.extend(wanted.channels)
    if wanted.since is not None:
        sql += " AND epoch_us(last_seen_at) >= ?"
        params.append(_us(wanted.since))
    else:
        sql += " AND (status <> 'resolved' OR epoch_us(resolved_at) >= ?)"
        params.append(_us(resolved_since))
    if wanted.until is not None:
        sql += " AND epoch_us(opened_at) <= ?"
        params.append(_us(wanted.until))
    sql += f" ORDER BY {_STATUS_ORDER}, last_seen_at DESC, incident_id LIMIT {MAX_LISTED}"
    return [_incident.decode(r[0]) for r in con.execute(sql, params).fetchall()]


def incident(
    con: duckdb.DuckDBPyConnection, incident_id: str, *, tenant: str | None
) -> Incident | None:
    row = con.execute(
        "SELECT snapshot_json FROM incidents WHERE incident_id = ? AND (? IS NULL OR tenant = ?)",
        [incident_id, tenant, tenant],
    ).fetchone()
    return _incident.decode(row[0]) if row else None


_DECISIONS = frozenset(
    {"incident_acknowledged", "resolved_by_human", "console_acknowledged", "console_resolved"}
)


def _audit_kind(event: str) -> str:
    """A timeline moment's kind for an audit line: a playbook's proposals, approvals and
    runs; a human's decision (acknowledge, resolve); anything else audited."""
    if event.startswith("playbook_") or event == "console_playbook_click":
        return "playbook"
    return "decision" if event in _DECISIONS else "audit"


def timeline(con: duckdb.DuckDBPyConnection, incident_id: str) -> list[Moment]:
    """Every recorded moment of one incident, oldest first."""
    moments: list[Moment] = []
    for us, source, action, kind, title, severity, rule, channel, hours, what in con.execute(
        """SELECT epoch_us(received_at), source, action, kind, title, severity, rule,
                  sev_channel, business_hours, incident_action
           FROM signals WHERE incident_id = ? ORDER BY received_at, signal_id""",
        [incident_id],
    ).fetchall():
        at = _at(us)
        assert at is not None
        moments.append(
            Moment(at=at, kind="signal", what=f"{source} {action} ({kind}): {title}", detail="")
        )
        window = "inside" if hours else "outside"
        moments.append(
            Moment(
                at=at,
                kind="routing",
                what=f"{severity} -> {channel or 'audit log only'} ({what})",
                detail=f"rule {rule} matched; {window} the tenant's business hours",
            )
        )
    for us, sink_id, sink_type, target, action, status, latency, detail, done_us in con.execute(
        """SELECT epoch_us(planned_at), sink_id, sink_type, target, action, status,
                  latency_ms, detail, epoch_us(finished_at)
           FROM notifications WHERE incident_id = ? ORDER BY planned_at, delivery_id""",
        [incident_id],
    ).fetchall():
        at = _at(done_us) or _at(us)
        assert at is not None
        took = f", {latency:.0f} ms" if latency is not None else ""
        moments.append(
            Moment(
                at=at,
                kind="notification",
                what=f"{action} to {sink_id} ({sink_type}) {target}: {status}{took}",
                detail=detail or "",
                outcome=status,
            )
        )
    for us, event, detail in con.execute(
        """SELECT epoch_us(logged_at), event, detail FROM audit_log
           WHERE incident_id = ? ORDER BY logged_at""",
        [incident_id],
    ).fetchall():
        at = _at(us)
        assert at is not None
        moments.append(
            Moment(at=at, kind=_audit_kind(event), what=event.replace("_", " "), detail=detail)
        )
    moments.sort(key=lambda m: m.at)  # stable: a signal's routing stays after it
    return moments


_PROPOSAL = re.compile(r"\(proposal (prp_[A-Za-z0-9]+)\)$")
_APPROVER = re.compile(r" approved by (.+) \(proposal prp_[A-Za-z0-9]+\)$")
# the playbooks actor's audit events that end a proposal's wait for a decision
_DECIDED = ("playbook_rejected", "playbook_withdrawn", "playbook_run_started")


def pending_proposals(con: duckdb.DuckDBPyConnection, incident_id: str) -> list[PendingProposal]:
    """The incident's playbook proposals not yet run, rejected or withdrawn, from the
    audit lines the playbooks actor records (each names its proposal), oldest first."""
    proposed: dict[str, str] = {}
    approvals: dict[str, list[str]] = {}
    decided: set[str] = set()
    for event, detail in con.execute(
        """SELECT event, detail FROM audit_log
           WHERE incident_id = ? AND event LIKE 'playbook_%' ORDER BY logged_at""",
        [incident_id],
    ).fetchall():
        named = _PROPOSAL.search(detail)
        if named is None:
            continue
        proposal_id = named[1]
        if event == "playbook_proposed":
            proposed[proposal_id] = detail[: named.start()].rstrip()
        elif event == "playbook_approved" and (who := _APPROVER.search(detail)) is not None:
            approvals.setdefault(proposal_id, []).append(who[1])
        elif event in _DECIDED:
            decided.add(proposal_id)
    return [
        PendingProposal(proposal_id=p, detail=detail, approvals=tuple(approvals.get(p, ())))
        for p, detail in proposed.items()
        if p not in decided
    ]
