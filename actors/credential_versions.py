"""The secret store as the rest of the process reads it: the sealer of
``EYETOK_SECRETS_KEY``, each sink's current stored version folded into the settings (at
start, before the sink clients are built, and on SIGHUP), and a fresh dyno's store taken
back from the Postgres mirror. The rotation actor (actors/rotation.py) is its one writer.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import trio

from eyetok import log
from eyetok.config import Settings
from eyetok.errors import ConfigError, StateError
from eyetok.rotation import material
from eyetok.rotation.sealing import KEY_ENV, Sealer
from state.history import credential_store as cs
from state.history.store import HistoryStore


def sealer_of(settings: Settings) -> Sealer | None:
    """The secret store's sealer (``EYETOK_SECRETS_KEY``), None when it is not set."""
    return Sealer(settings.secrets_key) if settings.secrets_key else None


async def stored_credentials(
    settings: Settings,
    store: HistoryStore,
    sealer: Sealer | None,
    now: datetime,
    *,
    database_url: str | None = None,
) -> Settings:
    """``settings`` with every sink's current stored version in use (start-up and SIGHUP:
    a rotated credential outlives the environment's or the vault's). On an empty history
    the mirror is read first. Raises :class:`ConfigError` when versions are stored and no
    key opens them."""
    await store.write(cs.create)
    rows = await store.read(cs.versions)
    if not rows and database_url is not None:
        rows = await _restore(store, database_url, sorted(settings.tenants))
    live = [v for v in rows if v.state == "current" and v.sink_id in settings.sinks]
    if live and sealer is None:
        raise ConfigError(
            KEY_ENV,
            f"the secret store holds rotated credentials of {', '.join(v.sink_id for v in live)}; "
            "set the key that sealed them",
        )
    for current in live:
        assert sealer is not None
        settings = folded(settings, sealer, rows, current, now)
    return settings


async def _restore(
    store: HistoryStore, database_url: str, tenants: list[str]
) -> list[cs.StoredVersion]:
    from state.mirror import credential_store as mirror  # psycopg: only with a mirror

    logger = log.get("rotation")
    try:
        rows, rotations = await trio.to_thread.run_sync(mirror.load, database_url, tenants)
    except StateError as exc:
        logger.warning("secret_store_not_restored", error=str(exc))
        return []

    def put(con: duckdb.DuckDBPyConnection) -> None:
        cs.put_versions(con, rows)
        for r in rotations:
            cs.put_rotation(con, r)

    await store.write(put)
    if rows:
        logger.info("secret_store_restored", versions=len(rows), rotations=len(rotations))
    return rows


def with_changes(
    rows: list[cs.StoredVersion], changed: list[cs.StoredVersion]
) -> list[cs.StoredVersion]:
    """``rows`` as they will be once ``changed`` is written."""
    view = {(v.sink_id, v.version): v for v in rows}
    view.update({(v.sink_id, v.version): v for v in changed})
    return list(view.values())


def opened(sealer: Sealer, v: cs.StoredVersion) -> dict[str, str] | None:
    if v.sealed is None:
        return None
    return sealer.open(v.sealed, what=f"version {v.version} of sink {v.sink_id}")


def previous_of(
    rows: list[cs.StoredVersion], sink_id: str, current: cs.StoredVersion | None
) -> cs.StoredVersion | None:
    """The sink's newest ``previous`` version older than ``current``."""
    before = [
        v
        for v in rows
        if v.sink_id == sink_id
        and v.state == "previous"
        and (current is None or v.version < current.version)
    ]
    return max(before, key=lambda v: v.version) if before else None


def folded(
    settings: Settings,
    sealer: Sealer,
    rows: list[cs.StoredVersion],
    current: cs.StoredVersion | None,
    now: datetime,
    *,
    sink_id: str | None = None,
) -> Settings:
    sink = current.sink_id if current is not None else sink_id
    assert sink is not None
    previous = previous_of(rows, sink, current)
    return material.in_use(
        settings,
        sink,
        opened(sealer, current) if current is not None else None,
        since=current.changed_at if current is not None else now,
        previous=opened(sealer, previous) if previous is not None else None,
        now=now,
    )
