"""``eyetok check``: the payload-shape guard over every template EyeTok can send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import actors.sinks.slack.render
import actors.sinks.webhook.render
from actors.sinks.templates import (
    SAMPLE_TENANTS,
    TemplateCase,
    check_case,
    check_templates,
    every_template,
)

ROOT = Path(__file__).resolve().parent.parent
SINKS = ("slack", "webhook", "email", "pagerduty")
# 4 sinks x (3 actions x 4 channels) + 4 notices
AT_LEAST = len(SINKS) * (3 * 4) + len(SINKS)


def eyetok_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "check", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_passes_on_the_shipped_templates() -> None:
    done = eyetok_check()
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    total, failed = lines[-1].removesuffix(" failed").split(" templates, ")
    assert int(failed) == 0
    assert int(total) >= AT_LEAST
    assert len(lines[:-1]) == int(total)
    assert all(line.startswith("ok ") for line in lines[:-1])
    names = {line.removeprefix("ok ") for line in lines[:-1]}
    for sink in SINKS:
        assert any(n.startswith(f"{sink}/notice/") for n in names)
        for action in ("open", "update", "update-escalated", "resolve"):
            for channel in ("SEV1", "SEV2", "SEV2.5", "SEV3"):
                assert any(n.startswith(f"{sink}/{action}/{channel}/") for n in names)
    assert any(n.startswith("slack/update-unthreaded/") for n in names)


def test_the_command_speaks_json_lines() -> None:
    done = eyetok_check("--json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["failed"] == 0
    assert lines[-1]["templates"] == len(lines) - 1 >= AT_LEAST
    assert all(line["ok"] is True for line in lines[:-1])


def test_every_sink_and_channel_is_covered() -> None:
    names = [case.name for case in every_template()]
    assert len(names) == len(set(names))
    assert len(names) >= AT_LEAST
    tenants = {case.tenant for case in every_template()}
    assert tenants == {*SAMPLE_TENANTS, "operator"}


def test_a_renderer_that_stops_scrubbing_fails_with_no_ip_literal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actors.sinks.webhook.render, "scrub", lambda text: text)
    failures = check_templates(tenants=["operator"], operator_tenant="operator")
    assert failures
    assert {f.rule for f in failures} == {"no-ip-literal"}
    assert {f.name.split("/")[0] for f in failures} == {"webhook"}
    opened = next(f for f in failures if f.name == "webhook/open/SEV1/h12-fwd")
    assert opened.detail == "$.data.title contains 192.0.2.17"
    assert any(f.name.startswith("webhook/notice/") for f in failures)


def test_the_slack_notice_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actors.sinks.slack.render, "scrub", lambda text: text)
    failures = check_templates(tenants=["operator"], operator_tenant="operator")
    names = {f.name for f in failures}
    assert "slack/notice/ipv6" in names
    assert {f.rule for f in failures} == {"no-ip-literal"}


def test_a_payload_naming_another_tenant_fails_with_no_foreign_tenant() -> None:
    case = TemplateCase(
        name="webhook/open/SEV1/by-hand",
        tenant="acme",
        payload={"type": "incident.opened", "data": {"title": "quota exceeded for globex"}},
    )
    tenants = ("operator", "acme", "globex")
    failure = check_case(case, tenants=tenants, operator_tenant="operator")
    assert failure is not None
    assert failure.name == "webhook/open/SEV1/by-hand"
    assert failure.rule == "no-foreign-tenant"
    assert "globex" in failure.detail
    # the operator's own notices may name any tenant
    notice = TemplateCase(name="webhook/notice/by-hand", tenant="operator", payload=case.payload)
    assert check_case(notice, tenants=tenants, operator_tenant="operator") is None
    # and the payload's own tenant is no foreigner
    own = TemplateCase(name="webhook/open/SEV1/own", tenant="globex", payload=case.payload)
    assert check_case(own, tenants=tenants, operator_tenant="operator") is None
