"""The gate's question, and the re-verification schedule's instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from eyetok.errors import ConfigError
from eyetok.verification import (
    CADENCE,
    Verification,
    VerificationStatus,
    expiry,
    refusal,
    standing,
)
from schedules.table import ScheduleEntry, next_fire

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def _v(status: VerificationStatus, *, age: timedelta, sink_type: str = "webhook") -> Verification:
    at = NOW - age
    return Verification(
        sink_id="hook",
        sink_type=sink_type,
        tenant="acme",
        status=status,
        handshake_at=at,
        expires_at=expiry(sink_type, at)
        if status in (VerificationStatus.LIVE, VerificationStatus.RENEWED)
        else None,
        detail="nonce not found",
    )


def test_live_and_renewed_within_the_cadence_may_deliver() -> None:
    assert refusal(_v(VerificationStatus.LIVE, age=timedelta(days=29)), NOW) is None
    assert refusal(_v(VerificationStatus.RENEWED, age=timedelta(days=1)), NOW) is None
    assert (
        refusal(_v(VerificationStatus.LIVE, age=timedelta(days=364), sink_type="email"), NOW)
        is None
    )


@pytest.mark.parametrize(
    ("verification", "reason"),
    [
        (None, "never verified"),
        (_v(VerificationStatus.PENDING, age=timedelta(hours=1)), "verification pending"),
        (_v(VerificationStatus.FAILED, age=timedelta(hours=1)), "verification failed"),
        (_v(VerificationStatus.ROTATED, age=timedelta(hours=1)), "verification rotated"),
        (_v(VerificationStatus.LIVE, age=timedelta(days=31)), "verification expired"),
        (
            _v(VerificationStatus.LIVE, age=timedelta(days=366), sink_type="email"),
            "verification expired",
        ),
    ],
)
def test_everything_else_is_refused_with_the_reason(
    verification: Verification | None, reason: str
) -> None:
    refused = refusal(verification, NOW)
    assert refused is not None
    assert refused.startswith(reason)


def test_the_cadences_are_thirty_days_and_twelve_months_for_email() -> None:
    assert {
        "slack": timedelta(days=30),
        "webhook": timedelta(days=30),
        "email": timedelta(days=365),
        "pagerduty": timedelta(days=30),
    } == CADENCE


def test_friday_nine_new_york_follows_daylight_saving() -> None:
    entry = ScheduleEntry(name="reverify", cron="0 9 * * FRI", zone="America/New_York")
    # Monday 23 Nov 2026 (EST): the next Friday 09:00 ET is 14:00 UTC
    assert next_fire(entry, NOW) == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
    # across the March change: Friday 6 Mar (EST) 14:00 UTC, Friday 13 Mar (EDT) 13:00 UTC
    first = next_fire(entry, datetime(2026, 3, 2, tzinfo=UTC))
    assert first == datetime(2026, 3, 6, 14, 0, tzinfo=UTC)
    assert next_fire(entry, first) == datetime(2026, 3, 13, 13, 0, tzinfo=UTC)


def test_a_bad_schedule_names_its_field() -> None:
    with pytest.raises(ConfigError) as bad_cron:
        ScheduleEntry(name="reverify", cron="every friday")
    assert bad_cron.value.field == "schedules.reverify.cron"
    with pytest.raises(ConfigError) as bad_zone:
        ScheduleEntry(name="reverify", cron="0 9 * * FRI", zone="Mars/Olympus")
    assert bad_zone.value.field == "schedules.reverify.zone"


def test_a_handshake_started_again_does_not_suspend_a_live_sink() -> None:
    live = _v(VerificationStatus.LIVE, age=timedelta(days=2))
    again = _v(VerificationStatus.PENDING, age=timedelta(0))
    failed = _v(VerificationStatus.FAILED, age=timedelta(0))
    assert standing(live, again) is live
    assert standing(live, failed) is failed
    assert standing(None, again) is again
    assert standing(failed, again) is again


def test_the_history_folds_the_log_the_same_way() -> None:
    from state.history import queries
    from state.history.journal import VerificationRow, append_rows
    from state.history.store import HistoryStore

    rows = [
        _v(VerificationStatus.PENDING, age=timedelta(days=3)),
        _v(VerificationStatus.LIVE, age=timedelta(days=2)),
        _v(VerificationStatus.PENDING, age=timedelta(days=1)),
    ]
    store = HistoryStore(":memory:")
    append_rows(
        store._con,
        [
            VerificationRow(
                sink_id=v.sink_id,
                sink_type=v.sink_type,
                tenant=v.tenant,
                status=v.status.value,
                verified_by="",
                approved_by="",
                handshake_at=v.handshake_at,
                expires_at=v.expires_at,
                nonce_hash="",
                audit_log_link="",
                detail="",
                recorded_at=v.handshake_at,
                verification_json=msgspec.json.encode(v).decode(),
            )
            for v in rows
        ],
    )
    current = queries.latest_verifications(store._con)
    assert current["hook"].status is VerificationStatus.LIVE
    store.close()
