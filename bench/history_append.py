"""CPU of materialising journal frames into DuckDB, per table and per signal (a diagnostic).

    python bench/history_append.py [-n 3000] [--per-commit 120] [--variants a,b] [--repeat 3]

Builds the rows of ``n`` webhooks through the real code path (``bench/journal_commit.py``'s
Sentry signals, ``_file_signal``: a signals, incident_snapshots and deliveries row each,
plus the delivery_outcomes row a finished delivery writes), groups them ``--per-commit``
signals to a materialisation (what the history actor's 0.25 s timer gathers in
``bench/ingest.py --sink webhook``), and writes them, one transaction per group, into a
fresh DuckDB file through each variant in turn, in this thread (no trio, no worker
thread). Prints CPU microseconds per signal for each table's insert, for the commit and the
buffer give-back, and the total; variants interleave ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import msgspec

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.history import Frame, _file_signal, _tables_of  # noqa: E402
from bench.journal_commit import _messages  # noqa: E402
from state.history import journal  # noqa: E402
from state.history.journal import OutcomeRow  # noqa: E402
from state.history.store import HistoryStore  # noqa: E402

Insert = Callable[[duckdb.DuckDBPyConnection, list[msgspec.Struct]], None]


def _frames(n: int, per_commit: int) -> list[list[list[msgspec.Struct]]]:
    """Per materialisation, the rows table by table, as ``_tables_of`` hands them over."""
    messages = _messages(n, 0)
    groups = []
    seq = 0
    for start in range(0, n, per_commit):
        frame = Frame()
        now = datetime.now(UTC)
        for message in messages[start : start + per_commit]:
            seq += 1
            _file_signal(frame, message, now, seq)
        for row in frame.deliveries:
            frame.outcomes.append(
                OutcomeRow(
                    delivery_id=row.delivery_id,
                    outcome="delivered",
                    attempts=1,
                    latency_ms=12.345678,
                    finished_at=now + timedelta(milliseconds=80),
                    detail="",
                    external_ref="",
                    thread_ref="",
                )
            )
        groups.append(_tables_of([frame]))
    return groups


def _run(
    groups: list[list[list[msgspec.Struct]]],
    insert: Insert,
    path: Path,
    give_back: int = 1,
) -> dict[str, float]:
    store = HistoryStore(path)
    con = store._con
    cpu: dict[str, float] = {}
    signals = 0
    for i, tables in enumerate(groups):
        signals += len(tables[0])
        t0 = time.process_time()
        con.execute("BEGIN TRANSACTION")
        for rows in tables:
            a = time.process_time()
            insert(con, rows)
            name = journal._TABLES[type(rows[0])]
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - a
        a = time.process_time()
        con.execute("COMMIT")
        cpu["commit"] = cpu.get("commit", 0.0) + time.process_time() - a
        a = time.process_time()
        if give_back and (i + 1) % give_back == 0:
            store._after_write(checkpoint=False)
        cpu["give_back"] = cpu.get("give_back", 0.0) + time.process_time() - a
        cpu["total"] = cpu.get("total", 0.0) + time.process_time() - t0
    a = time.process_time()
    store.close()
    cpu["close"] = time.process_time() - a
    return {k: v * 1e6 / signals for k, v in cpu.items()}


TABLES = ("signals", "incident_snapshots", "deliveries", "delivery_outcomes")


def _check(groups: list[list[list[msgspec.Struct]]], insert: Insert, path: Path) -> None:
    """The variant's rows read back exactly as the old JSON statement's did."""
    got = {}
    for name, fn in (("json", VARIANTS["json"][0]), ("variant", insert)):
        store = HistoryStore(path / f"{name}.duckdb")
        con = store._con
        for tables in groups[:2]:
            for rows in tables:
                fn(con, rows)
        got[name] = [
            con.execute(
                f"SELECT count(*), list(to_json(x) ORDER BY x.rowid)::VARCHAR "
                f"FROM (SELECT *, rowid FROM {table}) x"
            ).fetchall()
            for table in TABLES
        ]
        store.close()
    if got["json"] != got["variant"]:
        raise SystemExit(f"{path.name}: rows differ from the JSON statement's")


def _json_sql(row_type: type[msgspec.Struct], table: str, source: str, ts: str) -> str:
    """The statement the history wrote before its appenders: the rows as one JSON text,
    ``unnest(from_json(...))``. ``source``: ``cast`` (``?::JSON``, as it was; DuckDB
    constant-folds the whole parse at planning) or ``sub`` (a column of a one-row
    subquery: parsed at execution); ``ts``: ``cast`` (VARCHAR cast to TIMESTAMPTZ outside,
    as it was) or ``typed`` (TIMESTAMPTZ in the structure)."""
    spec: dict[str, str] = {}
    selects: list[str] = []
    for field in msgspec.structs.fields(row_type):
        text = str(field.type)
        duck = "VARCHAR"
        if "datetime" in text:
            duck = "TIMESTAMPTZ" if ts == "typed" else "VARCHAR"
        elif "bool" in text:
            duck = "BOOLEAN"
        elif "int" in text:
            duck = "BIGINT"
        elif "float" in text:
            duck = "DOUBLE"
        spec[field.name] = duck
        cast = "::TIMESTAMPTZ" if "datetime" in text and ts == "cast" else ""
        selects.append(f"r.{field.name}{cast}")
    structure = msgspec.json.encode([spec]).decode().replace("'", "''")
    if source == "sub":
        rows = f"SELECT unnest(from_json(j, '{structure}')) AS r FROM (SELECT ?::VARCHAR AS j)"
    else:
        rows = f"SELECT unnest(from_json(?::JSON, '{structure}')) AS r"
    return f"INSERT INTO {table} SELECT {', '.join(selects)} FROM ({rows})"


def _json_variant(source: str, ts: str) -> Insert:
    sqls = {t: _json_sql(t, table, source, ts) for t, table in journal._TABLES.items()}
    encode = msgspec.json.Encoder().encode

    def insert(con: duckdb.DuckDBPyConnection, rows: list[msgspec.Struct]) -> None:
        con.execute(sqls[type(rows[0])], [encode(rows).decode()])

    return insert


def _lists_variant() -> Insert:
    """Each column a Python list parameter (datetimes as they are), unnested side by side."""
    sqls = {}
    for row_type, table in journal._TABLES.items():
        n = len(row_type.__struct_fields__)
        cols = ", ".join(f"unnest(c{i})" for i in range(n))
        params = ", ".join(f"? AS c{i}" for i in range(n))
        sqls[row_type] = f"INSERT INTO {table} SELECT {cols} FROM (SELECT {params})"

    def insert(con: duckdb.DuckDBPyConnection, rows: list[msgspec.Struct]) -> None:
        astuple = msgspec.structs.astuple
        columns = [list(c) for c in zip(*(astuple(r) for r in rows), strict=True)]
        con.execute(sqls[type(rows[0])], columns)

    return insert


def _new_appender(con: duckdb.DuckDBPyConnection, rows: list[msgspec.Struct]) -> None:
    """An appender made for each table's rows (the history keeps one per table)."""
    appender = con.appender(journal._TABLES[type(rows[0])])
    appender.append_rows(map(msgspec.structs.astuple, rows))
    appender.flush()


def _appender(con: duckdb.DuckDBPyConnection, rows: list[msgspec.Struct]) -> None:
    """What the history does: the table's kept appender, one flush."""
    journal.append_tables(con, [rows])


VARIANTS: dict[str, tuple[Insert, int]] = {
    # name: (insert one table's rows, give the buffers back after every Nth write (0: never))
    "appender": (_appender, 1),  # what the history does
    "json": (_json_variant("cast", "cast"), 1),  # what it did before
    "json_sub": (_json_variant("sub", "cast"), 1),
    "json_sub_typed": (_json_variant("sub", "typed"), 1),
    "lists": (_lists_variant(), 1),
    "appender_new": (_new_appender, 1),
    "appender_gb0": (_appender, 0),
    "appender_gb4": (_appender, 4),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--per-commit", type=int, default=120)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = args.variants.split(",")
    groups = _frames(args.n, args.per_commit)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="eyetok-append-") as tmp:
        for name in names:
            if name != "json":
                _check(groups, VARIANTS[name][0], Path(tmp) / f"check-{name}")
        for r in range(args.repeat):
            for name in names:
                insert, give_back = VARIANTS[name]
                path = Path(tmp) / f"{name}-{r}.duckdb"
                results[name].append(_run(groups, insert, path, give_back))
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
    keys = list(results[names[0]][0])
    print(
        f"n={args.n} per_commit={args.per_commit} repeat={args.repeat}: CPU us per signal, median"
    )
    print(f"{'variant':<16}" + "".join(f"{k[:12]:>13}" for k in keys))
    for name in names:
        med = {k: statistics.median(r.get(k, 0.0) for r in results[name]) for k in keys}
        spread = max(r["total"] for r in results[name]) - min(r["total"] for r in results[name])
        print(
            f"{name:<16}"
            + "".join(f"{med[k]:>13.1f}" for k in keys)
            + f"   (total spread {spread:.1f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
