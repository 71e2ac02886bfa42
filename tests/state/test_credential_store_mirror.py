"""The secret store's Postgres mirror (migration 0009): sealed values only, row-level
security per tenant, and a fresh process takes the rotated credentials back from it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from actors.credential_versions import stored_credentials
from eyetok.rotation.sealing import Sealer, new_key
from state.history import credential_store as cs
from state.history.store import HistoryStore
from state.mirror import credential_store as mirror
from tests.conftest import daemon_settings
from tests.pg import T0, app_role, query

pytestmark = pytest.mark.postgres


@pytest.fixture
def app_dsn(pg_dsn: str) -> Iterator[str]:
    with app_role(pg_dsn) as dsn:
        yield dsn


def _version(sealer: Sealer, sink: str, tenant: str, version: int, state: str, token: str):  # type: ignore[no-untyped-def]
    return cs.StoredVersion(
        sink_id=sink,
        version=version,
        sink_type="slack",
        tenant_id=tenant,
        state=state,  # type: ignore[arg-type]
        sealed=sealer.seal({"token": token}),
        created_at=T0 + timedelta(minutes=version),
        created_by="alice",
        changed_at=T0 + timedelta(minutes=version),
    )


def test_versions_are_sealed_and_each_tenant_sees_only_its_own(app_dsn: str, pg_dsn: str) -> None:
    sealer = Sealer(new_key())
    rotation = cs.StoredRotation(
        rotation_id="rot_1",
        sink_id="slack",
        sink_type="slack",
        tenant_id="operator",
        from_version=1,
        to_version=2,
        state="open",
        started_at=T0,
        started_by="alice",
    )
    mirror.save(
        app_dsn,
        [
            _version(sealer, "slack", "operator", 1, "previous", "xoxb-one"),
            _version(sealer, "slack", "operator", 2, "current", "xoxb-two"),
            _version(sealer, "acme-slack", "acme", 1, "current", "xoxb-acme"),
        ],
        rotation,
    )
    stored = query(app_dsn, "SELECT count(*) FROM sink_credential_versions")
    assert stored == [(0,)]  # without eyetok.tenant the role sees nothing
    raw = b"".join(
        bytes(r[0]) for r in query(pg_dsn, "SELECT sealed FROM sink_credential_versions")
    )
    assert raw.startswith(b"gAAAA")  # Fernet tokens
    assert b"xoxb" not in raw  # sealed, never in clear
    versions, rotations = mirror.load(app_dsn, ["operator"])
    assert {(v.sink_id, v.version, v.state) for v in versions} == {
        ("slack", 1, "previous"),
        ("slack", 2, "current"),
    }
    assert [r.rotation_id for r in rotations] == ["rot_1"]
    opened = {v.version: sealer.open(v.sealed or b"", what="t") for v in versions}
    assert opened == {1: {"token": "xoxb-one"}, 2: {"token": "xoxb-two"}}
    acme, _ = mirror.load(app_dsn, ["acme"])
    assert [v.sink_id for v in acme] == ["acme-slack"]


async def test_a_fresh_process_takes_the_rotated_credential_from_postgres(
    app_dsn: str, tmp_path: Path
) -> None:
    key = new_key()
    sealer = Sealer(key)
    mirror.save(app_dsn, [_version(sealer, "slack", "operator", 2, "current", "xoxb-two")], None)
    settings = daemon_settings(
        tmp_path, None, SLACK_BOT_TOKEN="xoxb-from-env", EYETOK_SECRETS_KEY=key
    )
    store = HistoryStore(tmp_path / "history.duckdb")  # empty: a fresh dyno
    try:
        now = T0 + timedelta(hours=1)
        restored = await stored_credentials(settings, store, sealer, now, database_url=app_dsn)
        assert restored.sink_secrets["slack"] == "xoxb-two"
        assert [(v.version, v.state) for v in await store.read(cs.versions)] == [(2, "current")]
        # and without the key the process refuses to start rather than use a stale token
        with pytest.raises(Exception, match="EYETOK_SECRETS_KEY"):
            await stored_credentials(settings, store, None, now)
    finally:
        store.close()
