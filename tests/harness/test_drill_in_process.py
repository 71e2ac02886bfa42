"""The drill harness and the daemon in one trio run, on trio's MockClock with the wall
clock anchored to it (``TrioWallClock``): budget-exhaustion waits for the real top of the
hour in virtual time, so its digest and reset steps run here instead of being skipped.

The autojump threshold is not zero: the peers and DuckDB answer from threads, and time
may only jump once everything has been idle a little while (see test_webhook_verify).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from actors.daemon import Daemon
from eyetok.clock import TrioWallClock
from eyetok.config import parse_file_config, settings_from
from harness.rig import DaemonStarter, RigOptions
from harness.run import run_drill

# 50 s before a top of the hour (the drill wants 40 s + the 2 s suppression hold), on a
# Tuesday inside ET business hours
ANCHOR = datetime(2026, 11, 24, 15, 59, 10, tzinfo=UTC)


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.05)


def _in_process(data: Path, clock: TrioWallClock) -> DaemonStarter:
    @asynccontextmanager
    async def start(config: str, env: dict[str, str]) -> AsyncIterator[str]:
        settings = settings_from(
            parse_file_config(config), {**env, "PORT": "0", "EYETOK_DATA_DIR": str(data)}
        )
        daemon = Daemon(settings, clock, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            try:
                yield f"http://127.0.0.1:{daemon.bound_port}"
            finally:
                daemon.request_stop()

    return start


async def _stored_receipts(url: str, token: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=url) as client:
        answer = await client.get(
            "/api/v1/drills/receipts", headers={"authorization": f"Bearer {token}"}
        )
    rows: list[dict[str, object]] = answer.json()["receipts"]
    return rows


async def test_budget_exhaustion_runs_whole_under_the_mock_clock(
    tmp_path: Path, io_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = TrioWallClock(ANCHOR)
    receipt = await run_drill(
        "budget-exhaustion",
        RigOptions(),
        clock,
        starter=_in_process(tmp_path / "data", clock),
    )
    steps = {s.name: s for s in receipt.steps}
    assert receipt.failed_steps() == [], [(s.name, s.observation) for s in receipt.steps]
    assert [s.verdict for s in receipt.steps] == ["pass"] * len(receipt.steps)
    assert list(steps) == [
        "budget-is-ten-an-hour",
        "thirty-alerts-in-the-hour",
        "ten-delivered",
        "rest-held",
        "one-cap-line",
        "cap-audited",
        "endpoints-recover",
        "digest-at-top-of-hour",
        "budget-reset",
    ]
    # the digest came at the top of the hour (16:00 UTC), not before
    assert receipt.finished_at >= datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
    assert len(steps["ten-delivered"].delivery_ids) == 10 * 4  # ten alerts, four sinks each
    assert receipt.flavour == "budget exhaustion"  # one of the monthly drill's three
    # the wait for the hour was said in one line: how long, and that --no-wait skips it
    [waited] = [line for line in capsys.readouterr().err.splitlines() if "waits" in line]
    assert re.fullmatch(
        r"eyetok drill: budget-exhaustion waits 0 min \d+ s for the top of the hour "
        r"\(16:00 UTC\) to see the digest and the budget reset; --no-wait skips this wait",
        waited,
    ), waited
    assert receipt.monthly_slot is None  # run by hand, not by the schedule


async def test_the_receipt_is_kept_in_drill_receipts(
    tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    clock = TrioWallClock(ANCHOR)
    kept: list[dict[str, object]] = []
    base = _in_process(tmp_path / "data", clock)

    @asynccontextmanager
    async def starter(config: str, env: dict[str, str]) -> AsyncIterator[str]:
        async with base(config, env) as url:
            yield url
            kept.extend(await _stored_receipts(url, env["EYETOK_ROOT_TOKEN"]))

    slot = datetime(2026, 11, 4, 15, tzinfo=UTC)  # as the daemon's schedule passes it
    receipt = await run_drill("dst-edge", RigOptions(), clock, starter=starter, monthly_slot=slot)
    assert receipt.verdict == "pass"
    [row] = kept
    assert row["receipt_id"] == receipt.receipt_id
    assert row["scenario"] == "dst-edge"
    assert row["verdict"] == "pass"
    assert row["failed_steps"] == ""
    stored = row["receipt"]
    assert isinstance(stored, dict)
    assert [s["name"] for s in stored["steps"]] == [s.name for s in receipt.steps]
    assert stored["daemon_version"] == receipt.daemon_version
    assert stored["monthly_slot"] == "2026-11-04T15:00:00Z"
    assert stored["flavour"] is None  # dst-edge is no monthly flavour
