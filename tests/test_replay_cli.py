"""``eyetok replay --explain``, run as the real command in a subprocess.

The environment has no ``EYETOK_CONFIG`` (nor any other EyeTok, Sentry or Slack
variable), so the command runs on the embedded default: the operator tenant and the
ADR's four Slack channels. ``--at`` fixes the wall clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "sentry"

IN_HOURS = "2026-11-24T15:00:00Z"  # Tuesday 10:00 EST
OUT_OF_HOURS = "2026-11-24T03:00:00Z"  # Monday 22:00 EST

LINE_KEYS = {
    "file",
    "resource",
    "action",
    "severity",
    "rule",
    "sev_channel",
    "destinations",
    "incident_key",
}


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EYETOK_", "SENTRY_", "SLACK_")) and k not in ("PORT", "DATABASE_URL")
    }


def replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "replay", *map(str, args)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def fixture(name: str) -> Path:
    return FIXTURES / f"{name}.json"


def test_the_environment_has_no_config() -> None:
    assert "EYETOK_CONFIG" not in clean_env()


@pytest.mark.parametrize(
    ("at", "channel", "business"),
    [(IN_HOURS, "SEV2.5", True), (OUT_OF_HOURS, "SEV2", False)],
    ids=["in-hours", "out-of-hours"],
)
def test_open_update_resolve(at: str, channel: str, business: bool) -> None:
    new = fixture("event_alert_error_new_unhandled_prod")
    result = replay("--explain", "--at", at, new, new, fixture("issue_resolved"))
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert len(out) == 3
    for line in out:
        assert line.keys() >= LINE_KEYS
    assert [line["action"] for line in out] == ["open", "update", "resolve"]
    assert [line["resource"] for line in out] == ["event_alert", "event_alert", "issue"]
    assert [line["file"] for line in out] == [str(new), str(new), str(fixture("issue_resolved"))]
    assert {line["incident_key"] for line in out} == {"6120458391"}
    incident_ids = {line["incident_id"] for line in out}
    assert len(incident_ids) == 1
    assert incident_ids.pop().startswith("inc_")
    # The resolve reports the incident it closed: same severity and channel.
    assert {line["severity"] for line in out} == {"high"}
    assert {line["sev_channel"] for line in out} == {channel}
    assert out[0]["rule"] == out[1]["rule"] == "error-new-unhandled-production"
    assert {line["business_hours"] for line in out} == {business}
    assert {tuple(line["destinations"]) for line in out} == {(f"slack:#raxx-ops-alert-{channel}",)}


def test_info_is_audit_only() -> None:
    result = replay("--explain", "--at", IN_HOURS, fixture("event_alert_info"))
    assert result.returncode == 0, result.stderr
    [line] = lines(result)
    assert line.keys() >= LINE_KEYS
    assert line["action"] == "audit"
    assert line["severity"] == "info"
    assert line["rule"] == "info-debug-audit"
    assert line["sev_channel"] is None
    assert line["destinations"] == []
    assert line["incident_id"] is None
    assert line["incident_key"] == "6120471190"


def test_at_with_an_offset_is_the_same_instant() -> None:
    new = fixture("event_alert_error_new_unhandled_prod")
    [utc] = lines(replay("--explain", "--at", IN_HOURS, new))
    [eastern] = lines(replay("--explain", "--at", "2026-11-24T10:00:00-05:00", new))
    assert utc["sev_channel"] == eastern["sev_channel"] == "SEV2.5"
    assert utc["rule"] == eastern["rule"] == "error-new-unhandled-production"


def test_a_folder_replays_its_payloads_but_not_the_sidecars() -> None:
    result = replay("--explain", "--at", OUT_OF_HOURS, FIXTURES)
    assert result.returncode == 0, result.stderr
    out = lines(result)
    expected = sorted(
        str(p) for p in FIXTURES.glob("*.json") if not p.name.endswith(".headers.json")
    )
    assert [line["file"] for line in out] == expected
    assert not any(line["file"].endswith(".headers.json") for line in out)
    for line in out:
        assert line.keys() >= LINE_KEYS
        assert "error" not in line
    by_name = {Path(line["file"]).stem: line for line in out}
    # The sidecars still supply each payload's resource header.
    assert by_name["event_alert_h12"]["resource"] == "event_alert"
    assert by_name["metric_alert_critical"]["resource"] == "metric_alert"
    assert by_name["legacy_fatal"]["resource"] == "legacy"  # no header: inferred
    assert by_name["event_alert_fatal"]["sev_channel"] == "SEV1"
    assert by_name["event_alert_h12"]["sev_channel"] == "SEV2"
    assert by_name["event_alert_debug"]["action"] == "audit"


def test_a_folder_of_a_copy_uses_the_copied_sidecar(tmp_path: Path) -> None:
    for name in ("event_alert_synthetic.json", "event_alert_synthetic.headers.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a payload")
    result = replay("--explain", "--at", IN_HOURS, tmp_path)
    assert result.returncode == 0, result.stderr
    [line] = lines(result)
    assert line["file"] == str(tmp_path / "event_alert_synthetic.json")
    assert line["rule"] == "synthetic-check-failure"
    assert line["marks"] == ["synthetic_check"]
    assert line["sev_channel"] == "SEV2.5"


def test_a_file_that_is_not_json_is_reported_and_the_rest_still_print(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.json"
    garbage.write_text("this is { not json")
    missing = tmp_path / "missing.json"
    result = replay(
        "--explain",
        "--at",
        IN_HOURS,
        fixture("event_alert_fatal"),
        garbage,
        missing,
        fixture("event_alert_warning"),
    )
    assert result.returncode != 0
    out = lines(result)
    assert len(out) == 4
    assert [line["file"] for line in out] == [
        str(fixture("event_alert_fatal")),
        str(garbage),
        str(missing),
        str(fixture("event_alert_warning")),
    ]
    assert out[1].keys() == {"file", "tenant", "error"}
    assert "JSON" in out[1]["error"]
    assert out[2].keys() == {"file", "tenant", "error"}
    assert out[2]["error"]
    assert (out[0]["rule"], out[0]["sev_channel"]) == ("fatal", "SEV1")
    assert (out[3]["rule"], out[3]["sev_channel"]) == ("warning", "SEV3")


@pytest.mark.parametrize(
    ("at", "needle"),
    [("2026-11-24T15:00:00", "offset"), ("next tuesday", "ISO-8601")],
    ids=["no-offset", "not-iso"],
)
def test_a_bad_at_exits_non_zero_with_a_message(at: str, needle: str) -> None:
    result = replay("--explain", "--at", at, fixture("event_alert_fatal"))
    assert result.returncode != 0
    assert needle in result.stderr
    assert at in result.stderr
    assert result.stdout.strip() == ""


def _tenants_config(tmp_path: Path, count: int, tier: str = "team") -> dict[str, str]:
    lines = ["tenants:", "  operator: {tier: operator}"]
    for i in range(count):
        t = f"t{i:03d}"
        route = "[{sink: " + t + "-slack, target: '#" + t + "'}]"
        lines += [
            f"  {t}:",
            f"    tier: {tier}",
            f"    policy: {{routes: {{SEV2: {route}, SEV2.5: {route}}}}}",
        ]
    lines += ["sinks:", "  slack: {type: slack, tenant: operator}"]
    lines += [
        f"  t{i:03d}-slack: {{type: slack, tenant: t{i:03d}, token_env: T{i:03d}_SLACK_TOKEN}}"
        for i in range(count)
    ]
    path = tmp_path / "eyetok.yaml"
    path.write_text("\n".join(lines) + "\n")
    return {"EYETOK_CONFIG": str(path)}


def replay_with(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "replay", *map(str, args)],
        cwd=ROOT,
        env=clean_env() | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PROBE_DOWN = ROOT / "tests" / "fixtures" / "probe" / "verdict_down.json"
GENERIC_HIGH = ROOT / "tests" / "fixtures" / "generic" / "high_firing.json"


def test_explain_names_the_cluster_a_registry_wide_outage_would_fire(tmp_path: Path) -> None:
    env = _tenants_config(tmp_path, 100)
    tenants = [arg for i in range(40) for arg in ("--tenant", f"t{i:03d}")]
    result = replay_with(
        env, "--explain", "--source", "probe", "--at", IN_HOURS, *tenants, PROBE_DOWN
    )
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert len(out) == 40
    [cluster_id] = {line["suppression"]["cluster_id"] for line in out}
    assert cluster_id.startswith("clu_")
    first = out[0]["suppression"]
    assert (first["state"], first["tenants"], first["needs_tenants"]) == ("withheld", 40, 30)
    assert all("budget" not in line for line in out)  # withheld alerts spend no budget


def test_explain_releases_below_the_floor_and_shows_the_budget(tmp_path: Path) -> None:
    env = _tenants_config(tmp_path, 100)
    tenants = [arg for i in range(10) for arg in ("--tenant", f"t{i:03d}")]
    result = replay_with(
        env, "--explain", "--source", "probe", "--at", IN_HOURS, *tenants, PROBE_DOWN
    )
    assert result.returncode == 0, result.stderr
    out = lines(result)
    assert {line["suppression"]["state"] for line in out} == {"released after the hold"}
    assert {line["suppression"]["cluster_id"] for line in out} == {None}
    assert out[0]["budget"] == {
        "tier": "team",
        "cap": 1000,
        "window_start": "2026-11-24T15:00:00+00:00",
        "used": 1,
        "state": "within",
    }


def test_explain_shows_the_51st_alert_of_a_public_tenant_held(tmp_path: Path) -> None:
    env = _tenants_config(tmp_path, 1, tier="public")
    result = replay_with(
        env,
        "--explain",
        "--source",
        "generic",
        "--at",
        IN_HOURS,
        "--tenant",
        "t000",
        *[GENERIC_HIGH] * 52,
    )
    assert result.returncode == 0, result.stderr
    states = [line["budget"]["state"] for line in lines(result)]
    assert states == ["within"] * 50 + ["capped", "held"]
    operator = replay("--explain", "--at", IN_HOURS, fixture("event_alert_fatal"))
    assert lines(operator)[0]["budget"]["state"] == "uncapped"


# --- issue 13: the judgments as replay shows them ---------------------------------------


def test_an_earlier_file_makes_a_later_one_known_so_not_new(tmp_path: Path) -> None:
    # error_created says nothing about newness: alone, it is new to EyeTok (high); after
    # its issue was opened and resolved by earlier files it is known, and not new.
    error = fixture("error_created")
    [alone] = lines(replay("--explain", "--at", IN_HOURS, error))
    assert (alone["rule"], alone["severity"]) == ("error-new-unhandled-production", "high")
    assert "new to EyeTok" in alone["why"]["held"]
    resolved = tmp_path / "resolved.json"
    body = json.loads(fixture("issue_resolved").read_text())
    body["data"]["issue"]["id"] = "6120510093"  # error_created's issue
    resolved.write_text(json.dumps(body))
    (tmp_path / "resolved.headers.json").write_text('{"Sentry-Hook-Resource": "issue"}')
    out = lines(replay("--explain", "--at", IN_HOURS, error, resolved, error))
    assert [line["action"] for line in out] == ["open", "resolve", "open"]
    assert (out[2]["rule"], out[2]["severity"], out[2]["sev_channel"]) == (
        "default",
        "medium",
        "SEV3",
    )
    missed = {m["rule"]: m["failed"] for m in out[2]["why"]["louder_misses"]}
    assert missed["error-new-unhandled-production"] == (
        "known to EyeTok (an open or recently resolved incident)"
    )


def test_a_resolve_of_nothing_open_says_so_and_sends_nothing() -> None:
    result = replay("--explain", "--at", IN_HOURS, fixture("metric_alert_resolved"))
    assert result.returncode == 0, result.stderr
    [line] = lines(result)
    assert (line["action"], line["incident_id"], line["rule"]) == ("resolve", None, "resolve")
    assert line["destinations"] == []
    assert "nothing to resolve" in line["note"]


def test_a_later_trigger_of_a_metric_alert_updates_its_incident(tmp_path: Path) -> None:
    critical = json.loads(fixture("metric_alert_warning").read_text())
    critical["action"] = "critical"
    later = tmp_path / "critical.json"
    later.write_text(json.dumps(critical))
    (tmp_path / "critical.headers.json").write_text('{"Sentry-Hook-Resource": "metric_alert"}')
    out = lines(replay("--explain", "--at", IN_HOURS, fixture("metric_alert_warning"), later))
    assert [line["action"] for line in out] == ["open", "update"]
    assert {line["severity"] for line in out} == {"medium"}
    assert out[0]["incident_id"] == out[1]["incident_id"]


def test_why_not_names_the_first_failed_condition_of_each_louder_rule(tmp_path: Path) -> None:
    body = json.loads(fixture("error_created").read_text())
    body["data"]["error"]["environment"] = "staging"
    staging = tmp_path / "staging.json"
    staging.write_text(json.dumps(body))
    (tmp_path / "staging.headers.json").write_text('{"Sentry-Hook-Resource": "error"}')
    [line] = lines(replay("--explain", "--at", IN_HOURS, staging))
    assert line["rule"] == "default"
    misses = [f"{m['rule']}: {m['failed']}" for m in line["why"]["louder_misses"]]
    assert misses[-1] == 'error-new-unhandled-production: environment is "staging"'
    assert misses[0] == 'fatal: level is "error"'


def test_the_table_is_one_aligned_line_per_payload_in_et_and_utc() -> None:
    names = ("event_alert_fatal", "error_created", "event_alert_info")
    result = replay(
        "--explain", "--at", "2026-07-04T22:30:00Z", "--format", "table", *map(fixture, names)
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert len(rows) == 3
    assert header.startswith("local time")
    # Saturday 18:30 EDT is 22:30 UTC: shown both ways, on every row.
    for row in rows:
        assert row.startswith("Sat 2026-07-04 18:30 EDT")
        assert "22:30 UTC" in row
    # aligned: every column starts at the same offset on every row
    for column in ("file", "action", "severity", "channel", "rule"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " for row in rows), column
    cells = [row.split() for row in rows]
    assert (cells[0][9], cells[0][10]) == ("SEV1", "fatal")
    assert (cells[1][9], cells[1][10]) == ("SEV2", "error-new-unhandled-production")
    assert (cells[2][9], cells[2][10]) == ("-", "info-debug-audit")


@pytest.mark.parametrize("kind", ["empty-folder", "glob"])
def test_nothing_to_replay_is_an_error(tmp_path: Path, kind: str) -> None:
    target = tmp_path if kind == "empty-folder" else tmp_path / "*.json"
    (tmp_path / "notes.txt").write_text("not a payload")
    result = replay("--explain", "--at", IN_HOURS, target)
    assert result.returncode == 2
    [line] = lines(result)
    assert str(tmp_path) in line["error"]


def test_a_glob_left_to_eyetok_expands_to_its_payloads(tmp_path: Path) -> None:
    for name in ("event_alert_fatal.json", "event_alert_fatal.headers.json"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    [line] = lines(replay("--explain", "--at", IN_HOURS, tmp_path / "*.json"))
    assert line["rule"] == "fatal"


def test_probe_and_generic_lines_carry_no_sentry_action() -> None:
    for source, path in (("probe", PROBE_DOWN), ("generic", GENERIC_HIGH)):
        result = replay("--explain", "--at", IN_HOURS, "--source", source, path)
        assert result.returncode == 0, result.stderr
        for line in lines(result):
            assert "sentry_action" not in line
            assert line["source"] == source
    [sentry_line] = lines(replay("--explain", "--at", IN_HOURS, fixture("event_alert_fatal")))
    assert sentry_line["sentry_action"] == "triggered"
