"""A burst needs a baseline: a fresh install's first alerts are not an anomaly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from eyetok.review import Baseline, bursts
from state.history import routines as queries
from state.history.journal import SignalRow, append_rows
from state.history.store import HistoryStore

NOW = datetime(2026, 12, 4, 18, tzinfo=UTC)


def _signal(n: int, tenant: str, at: datetime) -> SignalRow:
    return SignalRow(
        signal_id=f"sig_{tenant}_{n}",
        tenant=tenant,
        source="sentry",
        resource="event_alert",
        action="triggered",
        kind="alert",
        dedup_key=f"{tenant}-{n}",
        title="an error",
        level="error",
        received_at=at,
        journalled_at=at,
        severity="medium",
        rule="default",
        sev_channel="SEV3",
        business_hours=True,
        incident_action="open",
        incident_id=f"inc_{tenant}_{n}",
        cluster_key=None,
        signal_json="{}",
        incident_json=None,
    )


async def _review(store: HistoryStore, since: datetime) -> list[str]:
    def read(con: object) -> tuple[object, ...]:
        return (
            queries.hourly_alerts(con, since, NOW),  # type: ignore[arg-type]
            queries.baseline_alerts(con, since),  # type: ignore[arg-type]
        )

    hourly, baseline = await store.read(read)
    return [a.detail for a in bursts(hourly, baseline)]  # type: ignore[arg-type]


async def test_a_fresh_installs_first_alerts_are_not_a_burst(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    first = [_signal(i, "operator", NOW - timedelta(minutes=30 - i)) for i in range(3)]
    await store.write(lambda con: append_rows(con, first))
    assert await _review(store, NOW - timedelta(hours=24)) == []
    store.close()


async def test_with_a_weeks_history_a_burst_is_called(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.duckdb")
    since = NOW - timedelta(hours=24)
    week = [_signal(i, "operator", since - timedelta(hours=2 * i + 0.5)) for i in range(84)]
    today = [_signal(1000 + i, "operator", NOW - timedelta(minutes=50 - i)) for i in range(4)]
    older = [_signal(2000, "operator", since - timedelta(days=10))]  # history began earlier
    await store.write(lambda con: append_rows(con, older + week + today))
    [detail] = await _review(store, since)
    assert detail == (
        "4 alerts in the hour from 2026-12-04 17:00 UTC, 3x its hourly mean over 7 days is 1.5"
    )
    store.close()


def test_a_short_history_is_measured_over_the_hours_it_covers() -> None:
    at = datetime(2026, 12, 4, 17, tzinfo=UTC)
    hourly = [("acme", at, 4)]
    # 23 hours of history: not enough to call anything
    assert bursts(hourly, Baseline(alerts={"acme": 0}, hours=23.0)) == []
    # two days, one alert an hour: a mean of 1; 4 is above 3x it
    [burst] = bursts(hourly, Baseline(alerts={"acme": 48}, hours=48.0))
    assert burst.detail.endswith("3x its hourly mean over 2.0 days is 3.0")
    # two days of ten an hour: 4 is nothing
    assert bursts(hourly, Baseline(alerts={"acme": 480}, hours=48.0)) == []
