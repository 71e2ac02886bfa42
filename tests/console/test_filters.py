"""The incident list's filters: read from the URL, given back as a URL, refused by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from eyetok.console.filters import FilterError, parse_filter

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_filter_round_trips_through_its_url() -> None:
    args = {
        "severity": ["SEV1,SEV2.5", "SEV1"],
        "status": ["open"],
        "tenant": ["acme"],
        "since": ["90m"],
        "until": ["2026-12-04T06:30:00-05:00"],
    }
    wanted = parse_filter(args, now=NOW, tenant=None)
    assert wanted.channels == ("SEV1", "SEV2.5")
    assert wanted.statuses == ("open",)
    assert wanted.tenant == "acme"
    assert wanted.since == NOW - timedelta(minutes=90)
    assert wanted.until == datetime(2026, 12, 4, 11, 30, tzinfo=UTC)
    again = parse_filter(parse_qs(wanted.query()), now=NOW, tenant=None)
    assert again == wanted


def test_a_tenant_session_overrides_the_tenant_in_the_url() -> None:
    wanted = parse_filter({"tenant": ["beta"]}, now=NOW, tenant="acme")
    assert wanted.tenant == "acme"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"severity": ["SEV4"]}, "severity"),
        ({"severity": ["sev1"]}, "severity"),
        ({"status": ["closed"]}, "status"),
        ({"since": ["yesterday"]}, "since"),
        ({"since": ["90d"]}, "since"),
        ({"until": ["yesterday"]}, "until"),
        ({"until": ["2026-12-04T09:00"]}, "until"),
    ],
)
def test_a_bad_value_names_its_field(args: dict[str, list[str]], field: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(args, now=NOW, tenant=None)
    assert caught.value.field == field
