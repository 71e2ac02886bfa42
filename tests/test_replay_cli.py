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
