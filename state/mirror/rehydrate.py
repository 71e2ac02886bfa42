"""Rehydration: a fresh process (an ephemeral dyno filesystem, a new DuckDB file) takes
its open incidents, pending deliveries, Slack threads, every sink's latest ownership
verification and the handshakes under way back from the Postgres mirror.

:func:`load_from_postgres` reads them in one read-only, repeatable-read transaction;
:func:`rehydrate_into` writes them into a new, empty history with the journal's own
``append_rows`` so that ``queries.open_incidents``, ``queries.pending_deliveries``,
``queries.thread_refs`` and ``queries.latest_verifications`` return them. Both are
blocking.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import msgspec

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

from eyetok.errors import StateError
from eyetok.messages import (
    Deliver,
    Destination,
    Incident,
    IncidentAction,
    TenantConfigEntry,
    TenantToken,
)
from eyetok.verification import HandshakeEvent, PendingHandshake, Verification, standing
from state.history.journal import (
    OutcomeRow,
    append_rows,
    delivery_row,
    handshake_row,
    snapshot_row,
    tenant_config_row,
    tenant_token_row,
    verification_row,
)

# The signal id of outbox rows that came back from the mirror rather than from a signal.
REHYDRATED_ORIGIN = "rehydrated"

_incident = msgspec.json.Decoder(Incident)
_deliver = msgspec.json.Decoder(Deliver)
_verification = msgspec.json.Decoder(Verification)
_entry = msgspec.json.Decoder(TenantConfigEntry)
_token = msgspec.json.Decoder(TenantToken)
_handshake = msgspec.json.Decoder(PendingHandshake)
_encode = msgspec.json.Encoder().encode

# Every query reads one tenant: its predicate here, and row-level security (migration
# 0003) under the eyetok.tenant setting the loop sets.
_SET_TENANT = "SELECT set_config('eyetok.tenant', %s, true)"

_OPEN_INCIDENTS = """
SELECT snapshot::text FROM incident_state
WHERE tenant_id = %s AND status <> 'resolved'
ORDER BY opened_at, incident_id
"""

_PENDING = """
SELECT deliver::text FROM outbox_pending WHERE tenant_id = %s ORDER BY planned_at, delivery_id
"""

# Threads of open incidents, and of resolved ones a pending delivery still posts into.
_THREADS = """
SELECT incident_id, coalesce(slack_sink_id, 'slack'), slack_channel, slack_ts, snapshot::text
FROM incident_state i
WHERE tenant_id = %s AND slack_ts IS NOT NULL AND slack_channel IS NOT NULL
  AND (status <> 'resolved'
       OR EXISTS (SELECT 1 FROM outbox_pending p WHERE p.incident_id = i.incident_id))
ORDER BY opened_at, incident_id
"""

# Every verification-log row, oldest first: folded with ``standing`` into what the
# delivery gate follows (a pending re-handshake does not displace a live verification).
_ALL_VERIFICATIONS = """
SELECT verification::text FROM verification_log WHERE tenant_id = %s
ORDER BY sink_id, handshake_at, recorded_at
"""

_TENANT_ENTRIES = """
SELECT entry::text FROM tenant_config_log WHERE tenant_id = %s ORDER BY recorded_at
"""

_TENANT_TOKENS = """
SELECT token::text FROM tenant_tokens WHERE tenant_id = %s
ORDER BY coalesce(revoked_at, issued_at), row_kind
"""


_HANDSHAKES = """
SELECT handshake::text FROM pending_handshakes WHERE tenant_id = %s ORDER BY opened_at, key
"""


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """The Slack thread an incident's opening message started."""

    incident: Incident
    sink_id: str
    channel: str
    ts: str

    @property
    def incident_id(self) -> str:
        return self.incident.incident_id


@dataclass(frozen=True, slots=True)
class Rehydrated:
    incidents: tuple[Incident, ...]  # open or acknowledged, oldest first
    deliveries: tuple[Deliver, ...]  # pending outbox rows, oldest first
    threads: tuple[ThreadRef, ...]
    verifications: tuple[Verification, ...] = ()  # each sink's latest, by sink id
    tenant_entries: tuple[TenantConfigEntry, ...] = ()  # the tenant API's changes, oldest first
    tenant_tokens: tuple[TenantToken, ...] = ()  # token rows (hashes), oldest first
    handshakes: tuple[PendingHandshake, ...] = ()  # under way (expired ones included)

    def __len__(self) -> int:
        return (
            len(self.handshakes)
            + len(self.incidents)
            + len(self.deliveries)
            + len(self.threads)
            + len(self.verifications)
            + len(self.tenant_entries)
            + len(self.tenant_tokens)
        )


def load_from_postgres(
    dsn: str, *, tenants: Iterable[str], connect_timeout_s: int = 10
) -> Rehydrated:
    """Read the mirror's open incidents, pending deliveries, Slack threads and each
    sink's latest verification, and the tenant API's configuration and tokens, of each
    of ``tenants``, one tenant at a time (row-level security shows nothing else).

    A database the mirror never migrated (a first deploy) restores nothing; one not yet
    migrated to the verification log restores no verifications. Raises
    :class:`StateError` when Postgres cannot be reached or a row does not decode.
    """
    import psycopg

    try:
        with psycopg.connect(
            dsn, connect_timeout=max(2, connect_timeout_s), application_name="eyetok-rehydrate"
        ) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            return _load(conn, sorted(set(tenants)))
    except psycopg.Error as exc:
        raise StateError(f"cannot rehydrate from the mirror: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise StateError(f"the mirror holds a row that does not decode: {exc}") from exc


def _load(conn: psycopg.Connection[TupleRow], tenants: list[str]) -> Rehydrated:
    with conn.transaction():
        row = conn.execute(
            "SELECT to_regclass('incident_state') IS NULL OR to_regclass('outbox_pending') IS NULL"
        ).fetchone()
        if row is None or row[0]:  # never migrated (a first deploy): nothing to restore
            return Rehydrated(incidents=(), deliveries=(), threads=())
        # a mirror written by a release before the verification log (0002) or the tenant
        # tables (0003; migrations run in the mirror actor, after rehydration)
        row = conn.execute(
            "SELECT to_regclass('verification_log') IS NOT NULL,"
            " to_regclass('tenant_config_log') IS NOT NULL,"
            " to_regclass('pending_handshakes') IS NOT NULL"
        ).fetchone()
        has_verifications, has_tenant_tables, has_handshakes = (
            (bool(row[0]), bool(row[1]), bool(row[2])) if row else (False, False, False)
        )
        handshakes: list[PendingHandshake] = []
        incidents: list[Incident] = []
        deliveries: list[Deliver] = []
        threads: list[ThreadRef] = []
        verifications: list[Verification] = []
        entries: list[TenantConfigEntry] = []
        tokens: list[TenantToken] = []
        for tenant in tenants:
            conn.execute(_SET_TENANT, [tenant])
            incidents += [_incident.decode(r[0]) for r in conn.execute(_OPEN_INCIDENTS, [tenant])]
            deliveries += [_deliver.decode(r[0]) for r in conn.execute(_PENDING, [tenant])]
            threads += [
                ThreadRef(incident=_incident.decode(snap), sink_id=sink_id, channel=chan, ts=ts)
                for _id, sink_id, chan, ts, snap in conn.execute(_THREADS, [tenant])
            ]
            if has_verifications:
                current: dict[str, Verification] = {}
                for (text,) in conn.execute(_ALL_VERIFICATIONS, [tenant]):
                    found = _verification.decode(text)
                    current[found.sink_id] = standing(current.get(found.sink_id), found)
                verifications += [current[sink_id] for sink_id in sorted(current)]
            if has_tenant_tables:
                entries += [_entry.decode(r[0]) for r in conn.execute(_TENANT_ENTRIES, [tenant])]
                tokens += [_token.decode(r[0]) for r in conn.execute(_TENANT_TOKENS, [tenant])]
            if has_handshakes:
                handshakes += [_handshake.decode(r[0]) for r in conn.execute(_HANDSHAKES, [tenant])]
    return Rehydrated(
        incidents=tuple(sorted(incidents, key=lambda i: (i.opened_at, i.incident_id))),
        deliveries=tuple(sorted(deliveries, key=lambda d: (d.planned_at, d.delivery_id))),
        threads=tuple(sorted(threads, key=lambda t: (t.incident.opened_at, t.incident_id))),
        verifications=tuple(sorted(verifications, key=lambda v: v.sink_id)),
        tenant_entries=tuple(entries),
        tenant_tokens=tuple(tokens),
        handshakes=tuple(sorted(handshakes, key=lambda h: (h.opened_at, h.key))),
    )


def rehydrate_into(con: duckdb.DuckDBPyConnection, rehydrated: Rehydrated, *, now: datetime) -> int:
    """Write ``rehydrated`` into a new, empty history; return how many items it restored
    (incidents + pending deliveries + threads + verifications + handshakes ...).

    Incidents become snapshots (``seq`` 1, 2, ... oldest first, recorded ``now``); pending
    deliveries become outbox rows without an outcome; a thread becomes a delivered
    Slack ``open`` row (planned and finished ``now``, so the thread lookback keeps it)
    whose ``thread_ref`` is the thread's ts; a sink's latest verification becomes its one
    verification-log row (recorded ``now``). Runs in the caller's transaction (use
    ``HistoryStore.write``). Raises :class:`StateError` if the history is not empty.
    """
    try:
        row = con.execute(
            "SELECT (SELECT count(*) FROM incident_snapshots) + (SELECT count(*) FROM deliveries)"
            " + (SELECT count(*) FROM verification_log)"
        ).fetchone()
        if row is not None and row[0]:
            raise StateError("rehydration needs a new, empty history")
        append_rows(con, rows_for(rehydrated, now=now))
    except duckdb.Error as exc:
        raise StateError(f"rehydration into the history failed: {exc}") from exc
    return len(rehydrated)


def rows_for(rehydrated: Rehydrated, *, now: datetime) -> list[msgspec.Struct]:
    """The history rows that restore ``rehydrated``."""
    rows: list[msgspec.Struct] = []
    for seq, inc in enumerate(rehydrated.incidents, start=1):
        rows.append(snapshot_row(inc, recorded_at=now, seq=seq))
    rows.extend(delivery_row(d, origin=REHYDRATED_ORIGIN) for d in rehydrated.deliveries)
    for thread in rehydrated.threads:
        opening = _opening(thread, now)
        rows.append(delivery_row(opening, origin=REHYDRATED_ORIGIN))
        rows.append(
            OutcomeRow(
                delivery_id=opening.delivery_id,
                outcome="delivered",
                attempts=1,
                latency_ms=0.0,
                finished_at=now,
                detail="rehydrated from the postgres mirror",
                external_ref=thread.ts,
                thread_ref=thread.ts,
            )
        )
    rows.extend(verification_row(v, recorded_at=now) for v in rehydrated.verifications)
    rows.extend(tenant_config_row(e) for e in rehydrated.tenant_entries)
    rows.extend(tenant_token_row(t) for t in rehydrated.tenant_tokens)
    rows.extend(
        handshake_row(HandshakeEvent.OPENED, h, recorded_at=now, reason="rehydrated")
        for h in rehydrated.handshakes
    )
    return rows


def _opening(thread: ThreadRef, now: datetime) -> Deliver:
    """A stand-in for the (long finished) Slack message that opened the thread."""
    key = f"{thread.incident_id}|{thread.sink_id}|{thread.channel}|{thread.ts}"
    return Deliver(
        delivery_id="dlv_rehydrated_" + hashlib.sha256(key.encode()).hexdigest()[:24],
        tenant=thread.incident.tenant,
        destination=Destination(sink_id=thread.sink_id, sink_type="slack", target=thread.channel),
        incident=thread.incident,
        action=IncidentAction.OPEN,
        rule=thread.incident.rule,
        planned_at=now,
        received_at=now,
    )
