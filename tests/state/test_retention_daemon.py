"""Retention in the running daemon: the daily prune while webhooks stream in over HTTP,
and ``eyetok history export`` (a real subprocess) writing Parquet the test reads back."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.messages import RetentionDue
from eyetok.retention import RetentionOptions
from harness.peers.slack import FakeSlack
from state.history import retention
from state.history.journal import append_rows
from state.history.store import HistoryStore
from tests.actors.history_rows import delivered_signal_rows
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.state.test_retention import CutAfter, PowerCut
from tests.verify import ROOT_TOKEN

OLD = 3000  # signals (each with a delivered notification) 200 days old
STREAMED = 120  # webhooks sent while the prune runs
AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}


def _seed(data: Path, at: datetime) -> None:
    store = HistoryStore(data / "history.duckdb")
    rows = [row for n in range(OLD) for row in delivered_signal_rows("acme", n, at=at)]
    store._con.execute("BEGIN")
    append_rows(store._con, rows)
    store._con.execute("COMMIT")
    store.close()


async def _rows(daemon: Daemon, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows: list[tuple[Any, ...]] = await daemon.store.read(
        lambda con: con.execute(sql, list(args)).fetchall()
    )
    return rows


async def _started(tmp_path: Path, nursery: trio.Nursery, slack: FakeSlack) -> Daemon:
    data = tmp_path / "data"
    data.mkdir()
    _seed(data, datetime.now(UTC) - timedelta(days=200))
    config = "retention:\n  batch_rows: 100\n"
    return await start_daemon(nursery, daemon_settings(data, slack, config=config))


async def test_pruning_while_webhooks_stream_in_loses_none(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await _started(tmp_path, nursery, fake_slack)
    assert daemon.topology is not None
    routines = daemon.topology.channels["routines"]
    assert isinstance(routines, trio.MemorySendChannel)
    doc = json.loads(fixture_body("event_alert_info"))
    accepted: list[str] = []

    async def stream(client: httpx.AsyncClient, first: int) -> None:
        for i in range(first, STREAMED, 4):
            doc["data"]["event"]["event_id"] = f"{i:032x}"
            body = json.dumps(doc).encode()
            response = await client.post(
                "/hooks/sentry", content=body, headers=signed_headers(body)
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["signal_id"])

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
        async with trio.open_nursery() as senders:
            for first in range(4):
                senders.start_soon(stream, client, first)
            await routines.send(RetentionDue(slot=datetime.now(UTC)))

        async def pruned() -> bool:
            return bool(
                await _rows(daemon, "SELECT 1 FROM audit_log WHERE event = 'history_pruned'")
            )

        await eventually(pruned, within=60)

    assert len(set(accepted)) == STREAMED
    kept = {r[0] for r in await _rows(daemon, "SELECT signal_id FROM signals")}
    assert kept == set(accepted)  # every streamed signal, none of the old ones
    [(detail,)] = await _rows(daemon, "SELECT detail FROM audit_log WHERE event = 'history_pruned'")
    audited = json.loads(detail)
    assert audited["removed"]["signals"] == OLD
    assert audited["removed"]["deliveries"] == audited["removed"]["delivery_outcomes"] == OLD
    # the webhooks really were journalled while the prune was deleting batches
    [(first_batch, last_batch)] = await _rows(
        daemon,
        "SELECT epoch_us(min(logged_at)), epoch_us(max(logged_at)) FROM retention_log "
        "WHERE event = 'pruned'",
    )
    during = await _rows(
        daemon,
        "SELECT count(*) FROM signals WHERE epoch_us(journalled_at) BETWEEN ? AND ?",
        first_batch,
        last_batch,
    )
    assert during[0][0] > 0


async def test_history_export_round_trips_through_parquet(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await _started(tmp_path, nursery, fake_slack)
    base = f"http://127.0.0.1:{daemon.bound_port}"
    since = (datetime.now(UTC) - timedelta(days=201)).date().isoformat()
    out = tmp_path / "export"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EYETOK_", "SLACK_"))}
    done = await trio.run_process(
        [
            *(sys.executable, "-m", "eyetok.cli", "history", "export", "--since", since),
            *("--to", str(out), "--url", base, "--json"),
        ],
        env=env | {"EYETOK_ROOT_TOKEN": ROOT_TOKEN},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    files = {f["table"]: f for f in answer["files"]}
    con = duckdb.connect()
    for table in ("signals", "deliveries", "delivery_outcomes"):
        [(read_back,)] = con.execute(
            f"SELECT count(*) FROM read_parquet('{files[table]['path']}')"
        ).fetchall()
        [(in_history,)] = await _rows(daemon, f"SELECT count(*) FROM {table}")
        assert read_back == files[table]["rows"] == in_history == OLD
    ids = con.execute(f"SELECT signal_id FROM read_parquet('{out}/signals.parquet')").fetchall()
    assert {i for (i,) in ids} == {
        r[0] for r in await _rows(daemon, "SELECT signal_id FROM signals")
    }

    async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
        refusals = {
            "relative": {"since": since, "to": "export"},
            "backwards": {"since": "2026-02-01", "until": "2026-01-01", "to": str(out)},
            "not a date": {"since": "last tuesday", "to": str(out)},
            "unknown field": {"since": since, "to": str(out), "tables": ["signals"]},
            "unwritable": {"since": since, "to": "/proc/eyetok-export"},
        }
        for why, body in refusals.items():
            response = await client.post("/api/v1/history/export", json=body)
            assert response.status_code == 400, why
            assert response.json()["error"], why
        response = await client.post(
            "/api/v1/history/export",
            json={"since": since, "to": str(out)},
            headers={"authorization": "Bearer x"},
        )
        assert response.status_code == 401


async def test_eyetok_run_resumes_a_prune_a_restart_stopped(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _seed(data, datetime.now(UTC) - timedelta(days=200))
    stopped = CutAfter(data / "history.duckdb")
    stopped.writes = 3  # the run's start, then two batches
    with pytest.raises(PowerCut):
        await retention.prune(stopped, RetentionOptions(batch_rows=100), lambda: datetime.now(UTC))
    stopped.close()
    daemon = await start_daemon(nursery, daemon_settings(data, fake_slack))

    async def pruned() -> bool:
        return bool(await _rows(daemon, "SELECT 1 FROM audit_log WHERE event = 'history_pruned'"))

    await eventually(pruned, within=60)
    [(detail,)] = await _rows(daemon, "SELECT detail FROM audit_log WHERE event = 'history_pruned'")
    audited = json.loads(detail)
    assert audited["resumed"] is True
    assert audited["removed"]["signals"] == OLD  # the 200 before the stop, and the rest
    assert await _rows(daemon, "SELECT count(*) FROM signals") == [(0,)]
