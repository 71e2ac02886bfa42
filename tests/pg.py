"""Throw-away PostgreSQL databases for tests, on the shared server at 127.0.0.1:5432,
and the sample mirror messages the tests write into them.

:func:`fresh_database` creates ``eyetok_t_<random>`` through the shared ``test`` database
(never touched otherwise) and drops it afterwards, terminating its backends first.
:func:`postgres_or_skip` is the fixture body: when the server cannot be reached it
skips, or fails when ``CI=true`` (a CI run must not go green by skipping).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eyetok.messages import (
    Deliver,
    DeliveryClosed,
    DeliveryFinished,
    Destination,
    Incident,
    IncidentAction,
    IncidentSnapshotted,
    SevChannel,
    Severity,
    VerificationRecorded,
)
from eyetok.verification import Verification, VerificationStatus, expiry

ADMIN_DSN = os.environ.get(
    "EYETOK_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3)


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty database for the duration of the block; yields its DSN."""
    name = f"eyetok_t_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_conninfo(ADMIN_DSN, dbname=name)
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        with _admin() as admin:
            admin.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


@contextlib.contextmanager
def postgres_or_skip() -> Iterator[str]:
    """A fresh database's DSN, or skip (fail when ``CI=true``) if Postgres is down."""
    problem = reachable()
    if problem is not None:
        message = f"PostgreSQL is not reachable via {ADMIN_DSN!r}: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the postgres tests must run)")
        pytest.skip(message)
    with fresh_database() as dsn:
        yield dsn


def query(
    dsn: str, statement: str, params: Sequence[object] | None = None
) -> list[tuple[Any, ...]]:
    """Run one statement on its own short connection; its rows (empty if none)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


# --- mirror messages for the tests -----------------------------------------------------

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def incident(
    incident_id: str = "inc_1",
    *,
    tenant: str = "acme",
    status: str = "open",
    count: int = 1,
    opened_at: datetime = T0,
    title: str = "db down",
) -> Incident:
    return Incident(
        incident_id=incident_id,
        tenant=tenant,
        dedup_key=f"dedup-{incident_id}",
        title=title,
        severity=Severity.HIGH,
        sev_channel=SevChannel.SEV2,
        rule="high-default",
        status=status,
        opened_at=opened_at,
        last_seen_at=opened_at + timedelta(seconds=count),
        event_count=count,
        resolved_at=opened_at + timedelta(hours=1) if status == "resolved" else None,
    )


def snapshotted(inc: Incident, *, at: datetime | None = None) -> IncidentSnapshotted:
    return IncidentSnapshotted(
        incident=inc, recorded_at=at or inc.last_seen_at + timedelta(milliseconds=1)
    )


def deliver(
    delivery_id: str,
    inc: Incident,
    *,
    sink_id: str = "slack",
    sink_type: str = "slack",
    target: str = "#alerts",
    action: IncidentAction = IncidentAction.OPEN,
    planned_at: datetime | None = None,
) -> Deliver:
    at = planned_at or inc.last_seen_at
    return Deliver(
        delivery_id=delivery_id,
        tenant=inc.tenant,
        destination=Destination(sink_id=sink_id, sink_type=sink_type, target=target),
        incident=inc,
        action=action,
        rule=inc.rule,
        planned_at=at,
        received_at=at,
    )


def finished(
    d: Deliver, *, outcome: str = "delivered", ts: str = "1763899200.000100"
) -> DeliveryFinished:
    return DeliveryFinished(
        delivery_id=d.delivery_id,
        tenant=d.tenant,
        incident_id=d.incident.incident_id,
        sink_id=d.destination.sink_id,
        sink_type=d.destination.sink_type,
        target=d.destination.target,
        action=d.action,
        outcome=outcome,
        attempts=1,
        latency_ms=12.5,
        finished_at=d.planned_at + timedelta(seconds=1),
        external_ref=ts if outcome == "delivered" else "",
        thread_ref=ts if outcome == "delivered" else "",
    )


def closed(d: Deliver, **kw: Any) -> DeliveryClosed:
    return DeliveryClosed(finished=finished(d, **kw))


def verification(
    sink_id: str = "slack-ops",
    status: VerificationStatus = VerificationStatus.LIVE,
    *,
    sink_type: str = "slack",
    tenant: str = "acme",
    at: datetime = T0,
    detail: str = "",
) -> Verification:
    live = status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
    return Verification(
        sink_id=sink_id,
        sink_type=sink_type,
        tenant=tenant,
        status=status,
        handshake_at=at,
        expires_at=expiry(sink_type, at) if live else None,
        verified_by="slack:U123" if live else "",
        approved_by="ops@acme.example",
        nonce_hash="ab" * 32,
        audit_log_link=f"https://eyetok.example/api/v1/sinks/{sink_id}/verification",
        detail=detail or f"{status.value} at {at.isoformat()}",
    )


def recorded(v: Verification) -> VerificationRecorded:
    return VerificationRecorded(verification=v)


def verification_rows(dsn: str) -> list[Verification]:
    """The mirror's verification log, oldest handshake first."""
    rows = query(
        dsn,
        "SELECT verification::text FROM verification_log"
        " ORDER BY sink_id, handshake_at, recorded_at, status",
    )
    return [msgspec.json.decode(r[0], type=Verification) for r in rows]


@contextlib.contextmanager
def app_role(dsn: str) -> Iterator[str]:
    """A login role that is neither a superuser nor BYPASSRLS and owns the database (as
    Heroku's DATABASE_URL user does); yields the DSN that connects as it. Row-level
    security binds it only because the tables FORCE it."""
    name = f"eyetok_app_{secrets.token_hex(6)}"
    dbname = conninfo_to_dict(dsn)["dbname"]
    with _admin() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(
                sql.Identifier(name)
            )
        )
        admin.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(str(dbname)), sql.Identifier(name)
            )
        )
    try:
        yield make_conninfo(dsn, user=name)
    finally:
        with _admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [name]
            )
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO postgres").format(sql.Identifier(str(dbname)))
            )
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as owner_db:
            owner_db.execute(
                sql.SQL("REASSIGN OWNED BY {} TO postgres").format(sql.Identifier(name))
            )
            owner_db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with _admin() as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
