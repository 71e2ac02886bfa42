"""The Postgres mirror follows the retention policy (a real Postgres on 127.0.0.1)."""

from __future__ import annotations

from datetime import timedelta

from eyetok.retention import RetentionOptions, horizons
from state.mirror.prune import prune_mirror
from state.mirror.writer import MirrorBatch, MirrorWriter
from tests.pg import T0, incident, query, snapshotted, verification

DAY = timedelta(days=1)


def test_the_mirror_drops_incidents_resolved_past_the_horizon(pg_dsn: str) -> None:
    writer = MirrorWriter(pg_dsn)
    try:
        writer.migrate()
        writer.apply(
            MirrorBatch(
                snapshots=(
                    snapshotted(incident("inc_old_resolved", status="resolved")),
                    snapshotted(incident("inc_old_open")),
                    snapshotted(incident("inc_recent", status="resolved", opened_at=T0 + 20 * DAY)),
                    snapshotted(incident("inc_other", tenant="globex", status="resolved")),
                ),
                verifications=(verification("slack-ops"),),
            )
        )
    finally:
        writer.close()
    now = T0 + 100 * DAY
    removed = prune_mirror(pg_dsn, horizons(RetentionOptions(), now), ["acme"], batch_rows=100)
    assert removed == {"incident_state": 1, "verification_log": 0, "tenant_config_log": 0}
    left = query(pg_dsn, "SELECT incident_id FROM incident_state ORDER BY 1")
    # the open incident stays however old; globex was not named, so it is not touched
    assert left == [("inc_old_open",), ("inc_other",), ("inc_recent",)]
    assert query(pg_dsn, "SELECT count(*) FROM verification_log") == [(1,)]
    # a second pass names globex too, and finds its resolved incident past the horizon
    again = prune_mirror(
        pg_dsn, horizons(RetentionOptions(), now), ["acme", "globex"], batch_rows=100
    )
    assert again["incident_state"] == 1
