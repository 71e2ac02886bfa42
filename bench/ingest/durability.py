"""What postgres durability costs, and what a crash on a fresh dyno loses (bench/ingest/).

The ingest bench runs its EyeTok burst in the default mode (``EYETOK_DURABILITY=disk``:
a 202 waits for the fsynced journal only, no Postgres) and then, in the same run, the
same burst again with ``DATABASE_URL`` and ``EYETOK_DURABILITY=postgres`` (a 202 waits
for the journal and for the mirror's Postgres transaction). This module holds the parts
that are about durability: the Postgres database the runs use, the postgres-mode burst,
the comparison (server CPU per request and accepted/s, postgres / disk; the target is
a CPU cost within 20 % of the journal-only figure) and its report lines.

Postgres: ``--database-url DSN``, or else a fresh database created on the server of
``EYETOK_TEST_PG_DSN`` (``tests/pg.py``; default ``127.0.0.1:5432``) and dropped at the
end. Transactions are counted from ``pg_stat_database`` (``xact_commit``) around the
postgres-mode burst: the group commit shows as far fewer transactions than requests.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from collections.abc import Callable, Iterator
from typing import Any

TARGET_CPU_RATIO = 1.2  # postgres-mode server CPU per request <= 1.2 x journal-only


def durability_env(mode: str, dsn: str | None) -> dict[str, str]:
    """The daemon's environment for ``mode`` (``disk`` with a DSN: the write-behind mirror)."""
    env = {"EYETOK_DURABILITY": mode}
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    return env


@contextlib.contextmanager
def postgres_database(args: argparse.Namespace) -> Iterator[str]:
    """``--database-url``, or a fresh database on the test server (dropped after)."""
    if args.database_url:
        yield args.database_url
        return
    from tests.pg import fresh_database, reachable

    problem = reachable()
    if problem is not None:
        raise RuntimeError(
            f"postgres durability needs Postgres: {problem} (give --database-url, or "
            "--skip-durability for the journal-only figures)"
        )
    with fresh_database() as dsn:
        yield dsn


def committed_transactions(dsn: str) -> int:
    """``xact_commit`` of the database (every backend's commits, as the stats have them)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def incidents_in_postgres(dsn: str) -> set[str]:
    """Every incident id in the mirror's ``incident_state`` (the bench's superuser reads
    every tenant's rows)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
        return {str(r[0]) for r in conn.execute("SELECT incident_id FROM incident_state")}


def phase_postgres_burst(
    args: argparse.Namespace,
    dsn: str,
    burst: Callable[[argparse.Namespace], dict[str, Any]],
) -> dict[str, Any]:
    """The burst of bench/ingest.py (``burst``, given the arguments to run it with) in
    postgres durability, with how many Postgres transactions it took."""
    pg_args = copy.copy(args)
    pg_args.daemon_env = [
        *args.daemon_env,
        *(f"{k}={v}" for k, v in durability_env("postgres", dsn).items()),
    ]
    if getattr(args, "py_spy", None):
        pg_args.py_spy = f"{args.py_spy}.postgres"  # beside the journal-only profile
    before = committed_transactions(dsn)
    figures = burst(pg_args)
    time.sleep(1.0)  # the statistics collector reports commits with a little delay
    figures["postgres_transactions"] = committed_transactions(dsn) - before
    figures["durability"] = "postgres"
    return figures


def compare(disk: dict[str, Any], postgres: dict[str, Any]) -> dict[str, Any]:
    """Postgres mode over journal-only: CPU per request and accepted/s, same run."""
    out: dict[str, Any] = {}
    d_cpu, p_cpu = disk.get("server_cpu_us_per_request"), postgres.get("server_cpu_us_per_request")
    if d_cpu and p_cpu:
        out["cpu_ratio_http_window"] = round(p_cpu / d_cpu, 3)
    key = "server_cpu_us_per_delivered_request"
    d_all, p_all = disk.get(key), postgres.get(key)
    if d_all and p_all:
        # Judged from the first request to the last delivery: in the HTTP window alone the
        # faster journal-only run leaves more of its deliveries' CPU outside the window.
        out["cpu_ratio"] = round(p_all / d_all, 3)
        out["cost_ok"] = out["cpu_ratio"] <= TARGET_CPU_RATIO
    d_rate, p_rate = disk.get("accepted_per_s"), postgres.get("accepted_per_s")
    if d_rate and p_rate:
        out["rate_ratio"] = round(p_rate / d_rate, 3)
    answered = postgres.get("answered") or postgres.get("accepted") or 0
    if answered and postgres.get("postgres_transactions") is not None:
        out["requests_per_transaction"] = round(
            answered / max(postgres["postgres_transactions"], 1), 1
        )
    return out


def report_lines(
    disk: dict[str, Any], postgres: dict[str, Any], comparison: dict[str, Any]
) -> list[str]:
    def row(label: str, key: str) -> str:
        return f"  {label:34}{_fmt(disk.get(key)):>12}{_fmt(postgres.get(key)):>12}"

    ok = comparison.get("cost_ok")
    verdict = "-" if ok is None else ("PASS" if ok else "FAIL")
    return [
        "",
        "durability, same run, same N and C: disk (journal only) vs postgres "
        "(journal + Postgres before each 202)",
        f"  {'':34}{'disk':>12}{'postgres':>12}",
        row("accepted/s", "accepted_per_s"),
        row("server CPU/request, HTTP window", "server_cpu_us_per_request"),
        row("  main thread (event loop)", "server_main_thread_cpu_us_per_request"),
        row("  other threads", "server_other_threads_cpu_us_per_request"),
        row("server CPU/request, to delivered", "server_cpu_us_per_delivered_request"),
        row("  main thread (event loop)", "server_main_thread_cpu_us_per_delivered_request"),
        row("HTTP p50 (ms)", "p50_ms"),
        row("HTTP p99 (ms)", "p99_ms"),
        row("peak RSS (MB)", "peak_rss_mb"),
        f"  postgres: {postgres.get('postgres_transactions')} transactions committed during "
        f"its run ({_fmt(comparison.get('requests_per_transaction'))} requests per "
        "transaction: group commit)",
        f"  ==> CPU/request postgres / disk, first request to last delivery: "
        f"{_fmt(comparison.get('cpu_ratio'))} (target <= {TARGET_CPU_RATIO:g})  {verdict}; "
        f"in the HTTP window alone {_fmt(comparison.get('cpu_ratio_http_window'))}; "
        f"accepted/s postgres / disk: {_fmt(comparison.get('rate_ratio'))}",
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
