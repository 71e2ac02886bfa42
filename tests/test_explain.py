"""Routing explained at a given instant (``POST /api/v1/explain``'s domain), and the
``faults.business_hours_in_utc`` knob that breaks it on purpose for the drill's tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError, MalformedPayloadError, UnknownTenantError
from eyetok.explain import explain, parse_instant

ENV = {"SLACK_BOT_TOKEN": "xoxb-x"}


def _probe(at: str) -> bytes:
    return json.dumps(
        {
            "server": "drill.synthetic",
            "verdict": "down",
            "error_kind": "http_503",
            "asn": 64512,
            "registry": "drill",
            "region": "local",
            "observed_at": at,
        }
    ).encode()


@pytest.mark.parametrize(
    ("at", "channel", "business", "local"),
    [
        # Tuesday 2026-11-24 in EST: 07:59 is before, 08:00 inside, 18:30 after
        ("2026-11-24T12:59:00+00:00", "SEV2", False, "2026-11-24T07:59:00-05:00"),
        ("2026-11-24T13:00:00+00:00", "SEV2.5", True, "2026-11-24T08:00:00-05:00"),
        ("2026-11-24T23:30:00+00:00", "SEV2", False, "2026-11-24T18:30:00-05:00"),
        # the DST edges of 2026 (both Sundays)
        ("2026-03-08T01:59:00-05:00", "SEV2", False, "2026-03-08T01:59:00-05:00"),
        ("2026-03-08T03:00:00-04:00", "SEV2", False, "2026-03-08T03:00:00-04:00"),
        ("2026-11-01T01:30:00-04:00", "SEV2", False, "2026-11-01T01:30:00-04:00"),
        ("2026-11-01T01:30:00-05:00", "SEV2", False, "2026-11-01T01:30:00-05:00"),
    ],
)
def test_a_synthetic_failure_is_explained_in_et(
    at: str, channel: str, business: bool, local: str
) -> None:
    settings = settings_from(parse_file_config(""), ENV)
    [seen] = explain(
        settings, tenant_id="operator", hook="probe", body=_probe(at), at=parse_instant(at)
    )
    assert (seen.severity, seen.rule) == ("high", "synthetic-check-failure")
    assert (seen.sev_channel, seen.business_hours) == (channel, business)
    assert (seen.zone, seen.local_time) == ("America/New_York", local)
    assert seen.destinations == [f"slack:#raxx-ops-alert-{channel}"]
    assert seen.at == datetime.fromisoformat(at).astimezone(UTC).isoformat()
    # Why, and why not louder: the one structure replay --explain prints too.
    assert seen.why.rule == "synthetic-check-failure"
    assert seen.why.held == ("recognised as synthetic_check",)
    assert [str(m) for m in seen.why.louder_misses] == [
        'fatal: level is "error"',
        "paper-gate-breach: not paper_gate",
    ]


def test_the_utc_fault_judges_business_hours_in_utc() -> None:
    broken = settings_from(parse_file_config("faults: {business_hours_in_utc: true}"), ENV)
    assert broken.faults.active() == ["business_hours_in_utc"]
    at = "2026-11-24T12:59:00+00:00"  # 07:59 ET: outside ET business hours, inside UTC's
    [seen] = explain(
        broken, tenant_id="operator", hook="probe", body=_probe(at), at=parse_instant(at)
    )
    assert (seen.zone, seen.sev_channel, seen.business_hours) == ("UTC", "SEV2.5", True)
    assert settings_from(parse_file_config(""), ENV).faults.active() == []


def test_an_unknown_fault_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="faults"):
        parse_file_config("faults: {clock_in_utc: true}")


def test_generic_alerts_are_explained_too() -> None:
    settings = settings_from(parse_file_config(""), ENV)
    body = json.dumps({"title": "checkout down", "dedup_key": "c", "severity": "critical"})
    at = parse_instant("2026-11-24T15:00:00Z")
    [seen] = explain(settings, tenant_id="operator", hook="generic", body=body.encode(), at=at)
    assert (seen.severity, seen.sev_channel, seen.rule) == ("critical", "SEV1", "fatal")


def test_what_cannot_be_explained_says_why() -> None:
    settings = settings_from(parse_file_config(""), ENV)
    at = parse_instant("2026-11-24T15:00:00Z")
    with pytest.raises(UnknownTenantError):
        explain(
            settings, tenant_id="nobody", hook="probe", body=_probe("2026-11-24T15:00:00Z"), at=at
        )
    with pytest.raises(MalformedPayloadError, match="hook 'sentry'"):
        explain(settings, tenant_id="operator", hook="sentry", body=b"{}", at=at)
    with pytest.raises(MalformedPayloadError, match="needs an offset"):
        parse_instant("2026-11-24T15:00:00")
