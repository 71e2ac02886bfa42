"""incident_state's FreeScout conversation id (migration 0010): the mirror's snapshot
carries it, the column shows it, a fresh dyno rehydrates it."""

from __future__ import annotations

import msgspec

from state.mirror.rehydrate import load_from_postgres
from state.mirror.writer import MirrorBatch, MirrorWriter
from tests.pg import incident, query, snapshotted


def test_the_conversation_id_is_a_column_of_incident_state_and_rehydrates(pg_dsn: str) -> None:
    writer = MirrorWriter(pg_dsn)
    try:
        opened = incident("inc_fs", tenant="operator")
        writer.apply(MirrorBatch(snapshots=(snapshotted(opened),)))
        assert query(
            pg_dsn,
            "SELECT freescout_conversation_id FROM incident_state WHERE incident_id = 'inc_fs'",
        ) == [(None,)]
        ticketed = msgspec.structs.replace(
            incident("inc_fs", tenant="operator", count=2), freescout_conversation_id=4242
        )
        writer.apply(MirrorBatch(snapshots=(snapshotted(ticketed),)))
    finally:
        writer.close()
    assert query(
        pg_dsn, "SELECT freescout_conversation_id FROM incident_state WHERE incident_id = 'inc_fs'"
    ) == [(4242,)]
    [restored] = load_from_postgres(pg_dsn, tenants=("operator",)).incidents
    assert restored.freescout_conversation_id == 4242
