"""The labelled Sentry corpus (issue 13): every recorded payload in tests/fixtures/sentry,
replayed alone the way ``eyetok replay --explain`` routes it (eyetok.replay.Judge: the
incidents actor's decision, in-process), must route as ``expected.txt`` says, written by
hand, at 10:00 ET on a weekday, 10:00 ET on a Saturday and 18:30 ET on a weekday."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from eyetok.config import Settings, parse_file_config, settings_from
from eyetok.replay import Judge
from eyetok.sources import sentry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sentry"

CLOCK = {
    "tue-1000": datetime(2026, 11, 24, 15, 0, tzinfo=UTC),  # Tuesday 10:00 EST
    "sat-1000": datetime(2026, 11, 28, 15, 0, tzinfo=UTC),  # Saturday 10:00 EST
    "tue-1830": datetime(2026, 11, 24, 23, 30, tzinfo=UTC),  # Tuesday 18:30 EST
}


class Expected(NamedTuple):
    fixture: str
    action: str
    severity: str
    rule: str
    channels: dict[str, str | None]


def manifest() -> list[Expected]:
    rows = []
    for text in (FIXTURES / "expected.txt").read_text(encoding="utf-8").splitlines():
        if not text.strip() or text.startswith("#"):
            continue
        name, action, severity, rule, *channels = text.split()
        assert len(channels) == len(CLOCK), text
        by_clock = {k: None if c == "-" else c for k, c in zip(CLOCK, channels, strict=True)}
        rows.append(Expected(name, action, severity, rule, by_clock))
    return rows


EXPECTED = manifest()
CASES = [(row, clock) for row in EXPECTED for clock in CLOCK]


def payloads() -> set[str]:
    return {
        p.name.removesuffix(".json")
        for p in FIXTURES.glob("*.json")
        if not p.name.endswith(".headers.json")
    }


def resource_of(name: str) -> str | None:
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text())
    return {k.lower(): v for k, v in headers.items()}.get("sentry-hook-resource")


@pytest.fixture(scope="module")
def settings() -> Settings:
    # The embedded default: the operator tenant, the ADR's four Slack channels, ET hours.
    return settings_from(parse_file_config(""), {"SLACK_BOT_TOKEN": "xoxb-corpus"})


def test_the_manifest_names_every_payload_once() -> None:
    names = [row.fixture for row in EXPECTED]
    assert len(names) == len(set(names))
    assert set(names) == payloads()


def test_at_least_sixty_shapes_across_all_five_resources() -> None:
    assert len(EXPECTED) >= 60
    count: dict[str, int] = {}
    for row in EXPECTED:
        resource = resource_of(row.fixture) or "legacy"
        count[resource] = count.get(resource, 0) + 1
    assert set(count) == {"event_alert", "error", "issue", "metric_alert", "legacy"}
    assert min(count.values()) >= 8, count


@pytest.mark.parametrize(
    ("row", "clock"), CASES, ids=[f"{row.fixture}@{clock}" for row, clock in CASES]
)
def test_routes_as_an_on_call_engineer_would(settings: Settings, row: Expected, clock: str) -> None:
    path = FIXTURES / f"{row.fixture}.json"
    signal = sentry.normalise(
        path.read_bytes(),
        resource_of(row.fixture),
        tenant="operator",
        signal_id=f"corpus-{row.fixture}",
        received_at=CLOCK[clock],
        recognisers=settings.recognisers,
    )
    line, sends = Judge(settings, "operator").line(signal, str(path))
    channel = row.channels[clock]
    got = (line["action"], line["severity"], line["rule"], line["sev_channel"])
    assert got == (row.action, row.severity, row.rule, channel)
    assert line["why"]["rule"] == row.rule
    if row.action == "open" and channel is not None:
        assert sends
        assert line["destinations"] == [f"slack:#raxx-ops-alert-{channel}"]
    else:
        assert not sends
        assert line["destinations"] == []
    if row.action == "resolve":
        assert line["incident_id"] is None
        assert "nothing to resolve" in line["note"]


# --- the traps are real: what must not be read is in the payload -------------------------


@pytest.mark.parametrize(
    ("fixture", "words"),
    [
        ("ea_frame_mentions_synthetic", ("run_synthetic_check", "synthetic check failed")),
        ("ea_breadcrumbs_mention_every_signal", ("Paper gate breach", "Synthetic check failed")),
        ("error_breadcrumbs_mention_synthetic", ("Synthetic check failed",)),
    ],
)
def test_the_keyword_traps_carry_their_keywords_outside_title_message_and_tags(
    fixture: str, words: tuple[str, ...]
) -> None:
    body = json.loads((FIXTURES / f"{fixture}.json").read_text(encoding="utf-8"))
    event = body["data"].get("event") or body["data"]["error"]
    where = json.dumps([event.get("exception"), event.get("breadcrumbs")], ensure_ascii=False)
    for word in words:
        assert word in where
        assert word not in event["title"]
        assert all(word not in value for _, value in event["tags"])


@pytest.mark.parametrize(
    "fixture",
    [
        "ea_non_ascii_everywhere",
        "ea_paper_gate_camelcase_tag_non_ascii",
        "error_non_ascii_everywhere",
        "issue_created_non_ascii",
        "metric_alert_critical_non_ascii",
        "legacy_non_ascii",
    ],
)
def test_the_non_ascii_payloads_are_not_ascii(fixture: str) -> None:
    assert not (FIXTURES / f"{fixture}.json").read_bytes().isascii()


def test_one_chain_holds_both_a_handled_and_an_unhandled_exception() -> None:
    for fixture in ("ea_chain_handled_and_unhandled", "error_chain_handled_and_unhandled"):
        body = json.loads((FIXTURES / f"{fixture}.json").read_text(encoding="utf-8"))
        event = body["data"].get("event") or body["data"]["error"]
        flags = [v["mechanism"]["handled"] for v in event["exception"]["values"]]
        assert sorted(flags) == [False, True]
