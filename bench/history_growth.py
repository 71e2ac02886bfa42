"""The cost curve of a growing history (issue 19): does anything slow down as it fills?

    uv run python bench/history_growth.py                  # 0 and 1 M signals
    uv run python bench/history_growth.py --with-10m       # and 10 M (minutes, GBs of disk)
    uv run python bench/history_growth.py --sizes 0,200000 -n 500 --json

For each size a fresh data directory gets that many signals generated directly into
DuckDB, 90 days of them in time order as the history actor appends them: a realistic mix
of tenants (a few loud, a long tail), sources, severities and outcomes; a third open an
incident (one snapshot each, one in twenty still open) and plan a notification (98 %
delivered, 2 % failed; none left pending: a pending one would be retried against a sink
the bench does not run, costing CPU during the ingest run); one in twenty leaves an
audit row. Then:

- the queries every actor runs on start-up (the history actor's outbox and sequence,
  open incidents, recently resolved, Slack threads, budgets spent, active suppressions),
  timed on a fresh connection: ``startup_queries_s``;
- the daily review's five queries (``review_queries_s``) and the anomaly rules over
  their rows (``anomaly_rules_s``); the budgets and suppression look-ups
  (``budget_lookup_ms``, ``suppression_lookup_ms``);
- the real daemon (``eyetok run``) started on that data directory (``daemon_ready_s``:
  start-up and rehydration until /readyz) and sent ``-n`` signed Sentry webhooks at
  concurrency ``-c`` by bench/ingest.py's raw load generator: daemon CPU per request,
  p50/p99 of the 202, peak RSS;
- the file's size after a CHECKPOINT;
- with ``--prune``: a prune of the older half (45 days) in the default 5,000-row batches.
  With ``--skip-ingest`` in this process: its time, the batches' p50 and longest (how
  long the materialiser can wait behind one), the file's size and free space afterwards.
  Otherwise in the daemon, restarted with that prune on record and unfinished (so it
  resumes it at start) under the same load again: ``pruning_p50_ms``/``pruning_p99_ms``
  beside the figures without a prune, and the rows it removed.

Only 127.0.0.1; every subprocess is stopped in a ``finally``; the data directories are
removed unless ``--keep``. The closing table prints each figure per size and its growth
from the smallest size; a per-request figure growing more than 10 % is marked.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import msgspec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest import BURST_FIXTURES, HOST  # noqa: E402
from bench.ingest.bodies import RequestFactory, retarget  # noqa: E402
from bench.ingest.load import run_raw, summarise  # noqa: E402
from bench.ingest.processes import (  # noqa: E402
    RssSampler,
    cpu_figures,
    cpu_snapshot,
    start_eyetok,
    start_fake_slack,
)
from eyetok.retention import RetentionOptions, horizons  # noqa: E402
from eyetok.review import audit_events, bursts, failed_deliveries  # noqa: E402
from state.history import queries, retention, routines  # noqa: E402
from state.history.store import HistoryStore  # noqa: E402
from tests.actors.deliveries import deliver  # noqa: E402

DAYS = 90
_encode = msgspec.json.Encoder().encode
HALF = RetentionOptions(  # the --prune policy: the older half of the history goes
    signals_days=DAYS // 2,
    notifications_days=DAYS // 2,
    audit_days=DAYS // 2,
    incidents_days_after_resolved=DAYS // 2,
)
CHUNK = 1_000_000  # rows generated per INSERT (bounded memory)
PER_REQUEST = ("cpu_us_per_request", "p99_ms", "review_queries_s", "anomaly_rules_s")
PER_REQUEST += ("budget_lookup_ms", "suppression_lookup_ms")


def generate(path: Path, signals: int, tenants: int, now: datetime) -> None:
    """``signals`` rows (and their incidents, notifications, audit rows) over ``DAYS``."""
    HistoryStore(path).close()  # the schema, as the daemon makes it
    con = duckdb.connect(str(path))
    con.execute("SET memory_limit = '1GB'")
    start = now - timedelta(days=DAYS)
    step_us = DAYS * 86_400_000_000 // max(signals, 1)
    # real JSON of a planned delivery and an incident, placeholders for the ids
    sample = deliver("__TENANT__", 0, at=start, incident="__INC__", signal="__SIG__")
    deliver_json = _encode(msgspec.structs.replace(sample, delivery_id="__DLV__")).decode()
    open_json = _encode(sample.incident).decode()
    resolved = msgspec.structs.replace(sample.incident, status="resolved", resolved_at=start)
    resolved_json = _encode(resolved).decode()
    for first in range(0, signals, CHUNK):
        last = min(first + CHUNK, signals)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE g AS
                SELECT i,
                       -- a few loud tenants, a long tail
                       't' || lpad(CAST(CASE WHEN i % 10 < 4 THEN i % 10
                                             ELSE hash(i) % {tenants} END AS VARCHAR), 5, '0')
                           AS tenant,
                       ?::TIMESTAMPTZ + to_microseconds(i * {step_us}) AS ts,
                       ['sentry', 'probe', 'alertmanager', 'webhook'][1 + (i % 4)] AS source,
                       ['critical', 'high', 'medium', 'low', 'info'][
                           CAST(1 + hash(i) % 5 AS BIGINT)] AS sev,
                       i % 3 = 0 AS opens
                FROM range({first}, {last}) r(i)""",
            [start],
        )
        con.execute(
            """INSERT INTO signals SELECT
                 'sig_' || i, tenant, source, 'event_alert', 'triggered',
                 CASE WHEN i % 10 = 9 THEN 'resolve' ELSE 'alert' END,
                 source || ':' || tenant || ':' || (i % 5000), 'disk full on db-' || (i % 97),
                 'error', ts, ts, sev, 'rule-' || sev, NULL, i % 2 = 0,
                 CASE WHEN opens THEN 'open' ELSE 'update' END,
                 'inc_' || (i // 3), NULL,
                 '{"signal_id":"sig_' || i || '","tenant":"' || tenant || '","title":"disk full"}',
                 NULL
               FROM g"""
        )
        con.execute(
            """INSERT INTO incident_snapshots SELECT
                 'inc_' || (i // 3), tenant, source || ':' || tenant || ':' || (i % 5000),
                 CASE WHEN i % 60 = 0 THEN 'open' ELSE 'resolved' END, sev, NULL,
                 'rule-' || sev, 'disk full', ts, ts,
                 CASE WHEN i % 60 = 0 THEN NULL ELSE ts + INTERVAL 1 HOUR END, 1, ts, i,
                 replace(replace(CASE WHEN i % 60 = 0 THEN ? ELSE ? END,
                                 '__INC__', 'inc_' || (i // 3)), '__TENANT__', tenant)
               FROM g WHERE opens""",
            [open_json, resolved_json],
        )
        con.execute(
            """INSERT INTO deliveries SELECT
                 'dlv_' || i, 'sig_' || i, tenant, 'inc_' || (i // 3), tenant || '-hook',
                 'webhook', 'https://hooks.example/' || tenant, 'open', ts, ts,
                 replace(replace(replace(replace(?, '__DLV__', 'dlv_' || i),
                     '__SIG__', 'sig_' || i), '__INC__', 'inc_' || (i // 3)), '__TENANT__', tenant)
               FROM g WHERE opens""",
            [deliver_json],
        )
        con.execute(
            """INSERT INTO delivery_outcomes SELECT
                 'dlv_' || i, CASE WHEN i % 100 < 2 THEN 'failed' ELSE 'delivered' END, 1,
                 12.5, ts + INTERVAL 1 SECOND, '', '', ''
               FROM g WHERE opens"""
        )
        con.execute(
            """INSERT INTO audit_log SELECT ts, tenant,
                 CASE WHEN i % 200 = 0 THEN 'budget_capped' ELSE 'signal_audit_only' END,
                 'level=info', NULL, 'sig_' || i
               FROM g WHERE i % 20 = 0"""
        )
    con.execute("CHECKPOINT")
    con.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def reads(path: Path, now: datetime) -> dict[str, float]:
    """The queries' times on a fresh connection (as a restarted daemon would run them)."""
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    store = HistoryStore(path)
    con = store._con
    out["open_s"] = time.perf_counter() - t0
    hour = now.replace(minute=0, second=0, microsecond=0)
    startup: dict[str, Callable[[duckdb.DuckDBPyConnection], object]] = {
        "wal_applied": queries.wal_applied,
        "last_snapshot_seq": queries.last_snapshot_seq,
        "pending_deliveries": queries.pending_deliveries,
        "open_incidents": queries.open_incidents,
        "resolved_since": lambda c: queries.resolved_since(c, now - timedelta(days=1)),
        "thread_refs": lambda c: queries.thread_refs(c, since=queries.thread_lookback(now)),
        "budget_spent": lambda c: queries.budget_spent(c, since=hour),
        "active_suppressions": queries.active_suppressions,
    }
    each = {name: timed(lambda q=q: q(con))[0] for name, q in startup.items()}
    out["startup_queries_s"] = sum(each.values())
    out |= {f"  {name}_s": seconds for name, seconds in each.items()}
    since = now - timedelta(hours=24)
    seconds, (stream, hourly, baseline, failed, audited) = timed(
        lambda: (
            routines.stream(con, since, now),
            routines.hourly_alerts(con, since, now),
            routines.baseline_alerts(con, since),
            routines.failed_deliveries(con, since, now),
            routines.anomalous_audit(con, since, now),
        )
    )
    out["review_queries_s"] = seconds
    out["review_rows"] = float(sum(r.count for r in stream))
    out["anomaly_rules_s"] = timed(
        lambda: [*bursts(hourly, baseline), *failed_deliveries(failed), *audit_events(audited)]
    )[0]
    out["budget_lookup_ms"] = 1000 * timed(lambda: queries.budget_spent(con, since=hour))[0]
    out["suppression_lookup_ms"] = 1000 * timed(lambda: queries.suppressions(con))[0]
    store.close()
    return out


class TimedStore(HistoryStore):
    """The history store, timing each write (a prune batch holds the connection that
    long: the longest the history actor's materialiser waits behind it)."""

    writes_s: list[float]

    async def write(self, fn: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await super().write(fn)
        finally:
            self.writes_s.append(time.perf_counter() - t0)


def prune_half(path: Path, now: datetime) -> dict[str, float]:
    """A prune of the older half (a 45-day policy over 90 days of history)."""
    import trio

    store = TimedStore(path)
    store.writes_s = []
    t0 = time.perf_counter()
    report = trio.run(retention.prune, store, HALF, lambda: now)
    seconds = time.perf_counter() - t0
    store.close()
    assert report is not None
    batches = sorted(store.writes_s)
    return {
        "prune_s": seconds,
        "prune_rows": float(sum(report.removed.values())),
        "prune_batches": float(len(batches)),
        "prune_batch_p50_ms": 1000 * batches[len(batches) // 2],
        "prune_batch_max_ms": 1000 * batches[-1],
        "prune_file_mb_after": report.bytes_after / 2**20,
        "prune_free_mb": report.free_bytes / 2**20,
    }


def ingest_while_pruning(
    db: Path, now: datetime, workdir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """The daemon restarted on a history with a prune of its older half under way (a
    run on record, unfinished: the routines actor resumes it at start), under the same
    load: the 202s' p50/p99 while the daemon deletes batches beside them."""
    store = HistoryStore(db)
    store._con.execute("BEGIN")
    retention.begin(store._con, horizons(HALF, now), now)
    store._con.execute("COMMIT")
    store.close()
    figures = ingest(db.parent.parent, workdir, args, prefix="pruning_")
    con = duckdb.connect(str(db), read_only=True)
    [(rows, batches)] = con.execute(
        "SELECT coalesce(sum(rows), 0), count(*) FROM retention_log WHERE event = 'pruned'"
    ).fetchall()
    con.close()
    return figures | {"pruning_rows_removed": int(rows), "pruning_batches": int(batches)}


def ingest(data: Path, workdir: Path, args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The real daemon on ``data``: ready time, then ``-n`` webhooks at ``-c``."""
    secret = secrets.token_hex(16)
    factory = RequestFactory(secret, HOST, secrets.token_hex(3))
    requests = factory.batch("g", args.requests, BURST_FIXTURES, 1)
    slack, slack_url = start_fake_slack(workdir)
    daemon = None
    try:
        daemon = start_eyetok(secret=secret, slack_url=slack_url, data_dir=data, config_yaml=None)
        rss = RssSampler(daemon.proc.pid).start()
        before = cpu_snapshot(daemon.proc.pid)
        result = run_raw(daemon.port, retarget(requests, 1, daemon.port), args.concurrency, 300.0)
        after = cpu_snapshot(daemon.proc.pid)
        summary = summarise(result)
        cpu = cpu_figures(before, after, summary["answered"], summary["seconds"], "")
        figures = {
            "daemon_ready_s": daemon.ready_s,
            "accepted": summary["accepted"],
            "p50_ms": summary["p50_ms"],
            "p99_ms": summary["p99_ms"],
            "cpu_us_per_request": cpu["cpu_us_per_request"],
            "peak_rss_mb": round(rss.stop() / 2**20, 1),
        }
        return {prefix + key: value for key, value in figures.items()}
    finally:
        if daemon is not None:
            daemon.proc.stop()
        slack.stop()


def measure(size: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    data = workdir / f"size-{size}"
    db = data / "data" / "history.duckdb"
    db.parent.mkdir(parents=True)
    now = datetime.now(UTC)
    generated_s, _ = timed(lambda: generate(db, size, args.tenants, now))
    figures: dict[str, Any] = {"signals": size, "generate_s": round(generated_s, 1)}
    figures |= {k: round(v, 4) for k, v in reads(db, now).items()}
    if not args.skip_ingest:
        figures |= ingest(data, workdir, args)
    con = duckdb.connect(str(db))
    con.execute("CHECKPOINT")
    con.close()
    figures["file_mb"] = round(db.stat().st_size / 2**20, 1)
    if args.prune and not args.skip_ingest:
        figures |= ingest_while_pruning(db, now, workdir, args)
    elif args.prune:
        figures |= {k: round(v, 4) for k, v in prune_half(db, now).items()}
    print(json.dumps(figures), file=sys.stderr)
    return figures


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def report(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    keys = [k for k in rows[0] if k != "signals"]
    lines = ["figure".ljust(24) + "".join(f"{r['signals']:>14,}" for r in rows) + "  growth"]
    for key in keys:
        cells = "".join(f"{_cell(r.get(key, '')):>14}" for r in rows)
        growth = ""
        first, last = base.get(key), rows[-1].get(key)
        if isinstance(first, int | float) and isinstance(last, int | float) and first:
            change = (last - first) / first
            flag = " <-- over 10 %" if key in PER_REQUEST and change > 0.10 else ""
            growth = f"  {change:+.0%}{flag}"
        lines.append(key.ljust(24) + cells + growth)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="0,1000000", help="signals per run, comma-separated")
    p.add_argument("--with-10m", action="store_true", help="add a 10,000,000-signal run")
    p.add_argument("-n", "--requests", type=int, default=1000, help="webhooks per ingest run")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--tenants", type=int, default=2000)
    p.add_argument("--skip-ingest", action="store_true", help="only the DuckDB figures")
    p.add_argument(
        "--prune", action="store_true", help="then prune the older half: batch times, space"
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.with_10m:
        sizes.append(10_000_000)
    print(
        f"history_growth: sizes {sizes}, {args.requests} webhooks at c={args.concurrency}, "
        f"{args.tenants} tenants, {DAYS} days",
        file=sys.stderr,
    )
    workdir = Path(tempfile.mkdtemp(prefix="eyetok-growth-"))
    try:
        rows = [measure(size, workdir, args) for size in sizes]
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"sizes": sizes, "runs": rows}))
    else:
        print(report(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
