"""Pruning the DuckDB history to the retention policy, in bounded batches, resumably.

A run stamps its horizons once (eyetok/retention.py) and walks :data:`STEPS` in order.
Each step names the rows that go (a predicate on one table); with an archive directory
they are first copied out, one Parquet file per day (DuckDB's ``COPY ... (FORMAT
parquet, PARTITION_BY (day))``), then deleted ``batch_rows`` at a time, each batch one
transaction through the store's ``CapacityLimiter(1)``: the history actor's
materialiser waits for at most one batch, and ingest (which answers after the journal's
fsync, not after DuckDB) never waits on a prune at all.

Every batch appends its count to ``retention_log`` in the same transaction as its
delete, so a run stopped anywhere (a restart, a crash) is found unfinished on the next
start and resumed with the same horizons: steps already done are skipped and the counts
add up to what was really removed.

Space: DuckDB marks the blocks of deleted rows free at the next ``CHECKPOINT`` (run at
the end of every prune) and reuses them for new rows, so a pruned history stops growing;
the file itself shrinks only when the freed blocks are at its end. Steady state is a file
the size of the retention window, not of everything ever received.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import duckdb
import msgspec
import trio

from eyetok.errors import StateError
from eyetok.retention import Horizons, RetentionOptions, horizons
from state.history.store import HistoryStore, checkpoint_under

# The memory limit of a prune's closing CHECKPOINT: it rewrites the row groups the prune
# deleted from, and under the store's limit it kept them all in memory: pruning half of a
# 1 M-signal history peaked at 239 MB RSS (85 MB before), 21 MB left cached; at 32 MB,
# 132 MB and 1 MB, in the same 4.9 s (issue 20). The blocks it writes go to the file as
# it goes; nothing it needs is lost by evicting them.
CHECKPOINT_MEMORY = "32MB"

TABLES = (
    """CREATE TABLE IF NOT EXISTS retention_log (
        run_id VARCHAR, step VARCHAR, event VARCHAR, rows BIGINT, detail VARCHAR,
        logged_at TIMESTAMPTZ)""",
)

# Audit events the routines read back (the scheduler's last runs, the monthly drill's
# flavour): kept as long as the journals. Credential sightings are never pruned: the
# quarterly reminder ages each credential from its first sighting (one row a rotation).
ROUTINE_EVENTS = ("schedule_ran", "schedule_registered", "drill_started", "drill_ran")
NEVER_PRUNED = ("credential_seen",)


class Step(msgspec.Struct, frozen=True, kw_only=True):
    """What one step removes: rows of ``table`` matching ``where`` (``{h}`` is its
    horizon's literal); ``stamp`` is the column an archived row's day is taken from."""

    name: str
    table: str
    stamp: str
    horizon: str  # a field of Horizons
    where: str


def _events(names: tuple[str, ...]) -> str:
    return ", ".join(f"'{n}'" for n in names)


STEPS: tuple[Step, ...] = (
    Step(
        name="signals",
        table="signals",
        stamp="received_at",
        horizon="signals",
        where="received_at < {h}",
    ),
    Step(
        name="signal_routed",
        table="signal_routed",
        stamp="routed_at",
        horizon="signals",
        where="routed_at < {h}",
    ),
    # A notification goes once it is closed and both its planning and its last outcome
    # are past the horizon; a pending one (the outbox) is never pruned. Deliveries go
    # before their outcomes, so no closed delivery ever looks pending.
    Step(
        name="deliveries",
        table="deliveries",
        stamp="planned_at",
        horizon="notifications",
        where="""planned_at < {h} AND delivery_id IN (
            SELECT delivery_id FROM delivery_outcomes GROUP BY delivery_id
            HAVING max(finished_at) < {h})""",
    ),
    Step(
        name="delivery_outcomes",
        table="delivery_outcomes",
        stamp="finished_at",
        horizon="notifications",
        where="""finished_at < {h} AND NOT EXISTS (
            SELECT 1 FROM deliveries d WHERE d.delivery_id = delivery_outcomes.delivery_id)""",
    ),
    Step(
        name="audit_log",
        table="audit_log",
        stamp="logged_at",
        horizon="audit",
        where=f"logged_at < {{h}} AND event NOT IN ({_events(ROUTINE_EVENTS + NEVER_PRUNED)})",
    ),
    Step(
        name="audit_log.routines",
        table="audit_log",
        stamp="logged_at",
        horizon="journals",
        where=f"logged_at < {{h}} AND event IN ({_events(ROUTINE_EVENTS)})",
    ),
    # A suppression cluster goes whole, once it cleared before the horizon.
    Step(
        name="suppression_log",
        table="suppression_log",
        stamp="logged_at",
        horizon="audit",
        where="""cluster_id IN (SELECT cluster_id FROM suppression_log
                                WHERE event = 'cleared' AND logged_at < {h})""",
    ),
    # An incident goes whole once it resolved before its horizon; an open one keeps its
    # latest snapshot however old, and its superseded snapshots go with the signals.
    Step(
        name="incident_snapshots",
        table="incident_snapshots",
        stamp="recorded_at",
        horizon="incidents",
        where="""incident_id IN (SELECT incident_id FROM incidents
                                 WHERE status = 'resolved' AND resolved_at < {h})""",
    ),
    Step(
        name="incident_snapshots.superseded",
        table="incident_snapshots",
        stamp="recorded_at",
        horizon="signals",
        where="""recorded_at < {h} AND seq < (SELECT max(s.seq) FROM incident_snapshots s
                                          WHERE s.incident_id = incident_snapshots.incident_id)""",
    ),
    # The journals the quarterly and yearly routines read. Each sink's latest row of each
    # status and each tenant setting's latest row stay, however old: the current state.
    Step(
        name="verification_log",
        table="verification_log",
        stamp="recorded_at",
        horizon="journals",
        where="""recorded_at < {h} AND rowid NOT IN (
            SELECT arg_max(rowid, recorded_at) FROM verification_log GROUP BY sink_id, status)""",
    ),
    Step(
        name="anomalies",
        table="anomalies",
        stamp="flagged_at",
        horizon="journals",
        where="flagged_at < {h}",
    ),
    Step(
        name="anomaly_notes",
        table="anomaly_notes",
        stamp="noted_at",
        horizon="journals",
        where="noted_at < {h}",
    ),
    Step(
        name="drill_receipts",
        table="drill_receipts",
        stamp="recorded_at",
        horizon="journals",
        where="recorded_at < {h}",
    ),
    Step(
        name="tenant_config_log",
        table="tenant_config_log",
        stamp="recorded_at",
        horizon="journals",
        where="""recorded_at < {h} AND rowid NOT IN (
            SELECT arg_max(rowid, recorded_at) FROM tenant_config_log
            GROUP BY tenant, kind, key)""",
    ),
    Step(
        name="retention_log",
        table="retention_log",
        stamp="logged_at",
        horizon="journals",
        where="logged_at < {h}",
    ),
    # Where the journal was applied: only the latest row is ever read.
    Step(
        name="wal_applied",
        table="wal_applied",
        stamp="applied_at",
        horizon="bookkeeping",
        where="applied_at < {h} AND applied_at < (SELECT max(applied_at) FROM wal_applied)",
    ),
)


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """A prune under way: its id, its horizons, and what each step has done so far."""

    run_id: str
    horizons: Horizons
    resumed: bool
    removed: dict[str, int]  # step -> rows removed so far
    done: frozenset[str]
    archived: frozenset[str]


class PruneReport(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    resumed: bool
    horizons: Horizons
    removed: dict[str, int]  # table -> rows removed by this run (all its steps)
    archived: dict[str, int]  # table -> rows exported to the archive before removal
    bytes_before: int
    bytes_after: int
    free_bytes: int  # freed by the deletes, reused by new rows before the file grows


def literal(at: datetime) -> str:
    """A TIMESTAMPTZ literal (COPY takes no parameters; the value is ours, not input)."""
    return f"TIMESTAMPTZ '{at.astimezone(UTC).isoformat()}'"


def quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _predicate(step: Step, horizons: Horizons) -> str:
    return step.where.format(h=literal(getattr(horizons, step.horizon)))


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for statement in TABLES:
        con.execute(statement)


def _log(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    step: str,
    event: str,
    rows: int,
    now: datetime,
    detail: str = "",
) -> None:
    con.execute(
        "INSERT INTO retention_log VALUES (?, ?, ?, ?, ?, ?)",
        [run_id, step, event, rows, detail, now],
    )


def unfinished(con: duckdb.DuckDBPyConnection) -> Run | None:
    """The latest run that started and did not finish (stopped mid-prune), if any."""
    ensure_tables(con)
    row = con.execute(
        """SELECT run_id, detail FROM retention_log s WHERE event = 'started'
             AND NOT EXISTS (SELECT 1 FROM retention_log f
                             WHERE f.run_id = s.run_id AND f.event = 'finished')
           ORDER BY logged_at DESC LIMIT 1"""
    ).fetchone()
    if row is None:
        return None
    run_id, detail = str(row[0]), str(row[1])
    rows = con.execute(
        "SELECT step, event, sum(rows) FROM retention_log WHERE run_id = ? GROUP BY ALL",
        [run_id],
    ).fetchall()
    removed = {str(s): int(n) for s, e, n in rows if e == "pruned"}
    return Run(
        run_id=run_id,
        horizons=msgspec.json.decode(detail, type=Horizons),
        resumed=True,
        removed=removed,
        done=frozenset(str(s) for s, e, _ in rows if e == "done"),
        archived=frozenset(str(s) for s, e, _ in rows if e == "archived"),
    )


def begin(con: duckdb.DuckDBPyConnection, horizons: Horizons, now: datetime) -> Run:
    """A new run, on record before its first delete."""
    ensure_tables(con)
    run_id = "ret_" + secrets.token_hex(6)
    _log(con, run_id, "", "started", 0, now, msgspec.json.encode(horizons).decode())
    return Run(
        run_id=run_id,
        horizons=horizons,
        resumed=False,
        removed={},
        done=frozenset(),
        archived=frozenset(),
    )


def archive_step(
    con: duckdb.DuckDBPyConnection, run: Run, step: Step, archive_dir: Path, now: datetime
) -> int:
    """Copy the rows ``step`` will remove to ``archive_dir/<table>/day=<date>/``, one
    file per day and step of this run (a resumed run rewrites the same files)."""
    where = _predicate(step, run.horizons)
    [(count,)] = con.execute(f"SELECT count(*) FROM {step.table} WHERE {where}").fetchall()
    if count:
        target = archive_dir / step.table
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot archive to {target}: {exc.strerror or exc}") from exc
        pattern = f"{run.run_id}_{step.name.replace('.', '_')}_{{i}}"
        con.execute(
            f"""COPY (SELECT *, CAST(timezone('UTC', {step.stamp}) AS DATE) AS day
                      FROM {step.table} WHERE {where})
                TO {quoted(target)} (FORMAT parquet, PARTITION_BY (day),
                                      FILENAME_PATTERN '{pattern}', OVERWRITE_OR_IGNORE)"""
        )
    _log(con, run.run_id, step.name, "archived", int(count), now)
    return int(count)


def prune_batch(
    con: duckdb.DuckDBPyConnection, run: Run, step: Step, batch_rows: int, now: datetime
) -> int:
    """Delete at most ``batch_rows`` rows of ``step`` and record how many (call inside
    one transaction); fewer than ``batch_rows`` means the step is done."""
    where = _predicate(step, run.horizons)
    [(removed,)] = con.execute(
        f"""DELETE FROM {step.table} WHERE rowid IN (
                SELECT rowid FROM {step.table} WHERE {where} LIMIT {int(batch_rows)})"""
    ).fetchall()
    if removed:
        _log(con, run.run_id, step.name, "pruned", int(removed), now)
    if removed < batch_rows:
        _log(con, run.run_id, step.name, "done", 0, now)
    return int(removed)


def finish(con: duckdb.DuckDBPyConnection, run: Run, now: datetime) -> dict[str, int]:
    """Record the run finished; what it removed, table by table (resumed parts too)."""
    rows = con.execute(
        "SELECT step, sum(rows) FROM retention_log WHERE run_id = ? AND event = 'pruned' "
        "GROUP BY 1",
        [run.run_id],
    ).fetchall()
    by_table: dict[str, int] = {step.table: 0 for step in STEPS}
    steps = {step.name: step for step in STEPS}
    for name, n in rows:
        by_table[steps[str(name)].table] += int(n)
    _log(con, run.run_id, "", "finished", sum(by_table.values()), now, json.dumps(by_table))
    return by_table


def checkpoint(con: duckdb.DuckDBPyConnection) -> int:
    """CHECKPOINT under a memory limit of :data:`CHECKPOINT_MEMORY` (the store's, should
    DuckDB not evict first: a checkpoint out of memory is fatal to it, never run again;
    state/history/store.py), then the limit restored; the bytes of the file's free
    blocks afterwards (0 in memory)."""
    checkpoint_under(con, CHECKPOINT_MEMORY)
    row = con.execute(
        "SELECT block_size * free_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def file_bytes(path: Path | None) -> Callable[[], int]:
    def size() -> int:
        return path.stat().st_size if path is not None and path.exists() else 0

    return size


async def prune(
    store: HistoryStore,
    options: RetentionOptions,
    now: Callable[[], datetime],
    *,
    resume_only: bool = False,
) -> PruneReport | None:
    """One prune: the unfinished run resumed if there is one, else a new run (unless
    ``resume_only``: then None). ``now`` is read on the event loop, never in a thread."""
    run = await store.read(unfinished)
    if run is None:
        if resume_only:
            return None
        stamp = now()
        run = await store.write(lambda con: begin(con, horizons(options, stamp), stamp))
    size = file_bytes(store.path)
    before = size()
    archived: dict[str, int] = {}
    archive_dir = Path(options.archive_dir) if options.archive_dir else None
    for step in STEPS:
        if step.name in run.done:
            continue
        if archive_dir is not None and step.name not in run.archived:
            stamp = now()
            count = await store.write(
                partial(archive_step, run=run, step=step, archive_dir=archive_dir, now=stamp)
            )
            archived[step.table] = archived.get(step.table, 0) + count
        while True:
            stamp = now()
            removed = await store.write(
                partial(prune_batch, run=run, step=step, batch_rows=options.batch_rows, now=stamp)
            )
            if removed < options.batch_rows:
                break
            await trio.lowlevel.checkpoint()
    stamp = now()
    by_table = await store.write(lambda con: finish(con, run, stamp))
    free = await store.read(checkpoint)
    return PruneReport(
        run_id=run.run_id,
        resumed=run.resumed,
        horizons=run.horizons,
        removed=by_table,
        archived=archived,
        bytes_before=before,
        bytes_after=size(),
        free_bytes=free,
    )
