"""An incident's acknowledgement reaches Postgres ``incident_state`` through the snapshot
path (the columns and the snapshot), and a rehydrated incident keeps its loop's steps."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from eyetok.messages import Incident
from state.mirror.writer import MirrorBatch, MirrorWriter
from tests.pg import T0, incident, query, snapshotted

pytestmark = pytest.mark.postgres


def test_the_acknowledgement_reaches_incident_state(pg_dsn: str) -> None:
    at = T0 + timedelta(minutes=3)
    acked = msgspec.structs.replace(
        incident("inc_1", count=1, status="acknowledged"),
        acknowledged_by="slack:dana (U0DANA)",
        acknowledged_at=at,
        renotified_at=T0 + timedelta(minutes=5),
    )
    writer = MirrorWriter(pg_dsn)
    try:
        writer.apply(MirrorBatch(snapshots=(snapshotted(acked),)))
    finally:
        writer.close()
    [(status, by, when, snapshot)] = query(
        pg_dsn,
        "SELECT status, acknowledged_by, acknowledged_at, snapshot::text FROM incident_state"
        " WHERE incident_id = %s",
        ["inc_1"],
    )
    assert (status, by, when) == ("acknowledged", "slack:dana (U0DANA)", at)
    assert msgspec.json.decode(snapshot, type=Incident) == acked
