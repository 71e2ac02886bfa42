"""The two-person rule for the configuration file, in a real ``eyetok run``: on SIGHUP a
change to the routing rules and the suppression thresholds in the file is not applied but
proposed (proposer ``config-file``, the file's ``change_justification``), and goes live
only when a person holding ``alert_rule_reviewer`` approves it: the routes at once, the
suppression thresholds at the next restart, as the change's outcome says."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx

from harness.peers.slack import FakeSlack
from tests.e2e.daemon import DaemonProcess
from tests.e2e.test_vault_credentials import _wait_for
from tests.verify import ROOT_TOKEN

ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
CONFIG = """\
tenants:
  operator:
    tier: operator
    policy:
      routes:
        SEV1: [{sink: slack, target: "#raxx-ops-alert-SEV1"}]
suppression: {min_tenants: 30}
people:
  - slack_user_id: U0ALICE
    roles: [{role: alert_rule_reviewer}]
"""
CHANGED = CONFIG.replace("#raxx-ops-alert-SEV1", "#ops-war-room").replace("30}", "20}")


def _routes(daemon: DaemonProcess) -> Any:
    got = httpx.get(f"{daemon.url}/api/v1/tenants/operator/routes", headers=ROOT, timeout=10)
    assert got.status_code == 200, got.text
    return got.json()["routes"]


def _pending(daemon: DaemonProcess) -> list[dict[str, Any]]:
    listed = httpx.get(
        f"{daemon.url}/api/v1/changes", params={"status": "pending"}, headers=ROOT, timeout=10
    )
    assert listed.status_code == 200, listed.text
    changes: list[dict[str, Any]] = listed.json()["changes"]
    return changes


def test_a_changed_file_waits_for_a_reviewer(tmp_path: Path, fake_slack: FakeSlack) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text(CONFIG)
    env = {"EYETOK_CONFIG": str(config), "SLACK_API_URL": fake_slack.base_url}
    with DaemonProcess(tmp_path / "data", env) as daemon:
        before = _routes(daemon)
        assert before["SEV1"][0]["target"] == "#raxx-ops-alert-SEV1"

        # a one-word justification: nothing is proposed, nothing applied
        config.write_text(CHANGED + "change_justification: migration\n")
        os.kill(daemon.pid, signal.SIGHUP)
        refused = _wait_for(daemon, "config_change_not_proposed")
        assert "at least 3 words" in str(refused["error"])
        assert _pending(daemon) == []

        config.write_text(CHANGED + 'change_justification: "page the war room during the move"\n')
        os.kill(daemon.pid, signal.SIGHUP)
        proposed = _wait_for(daemon, "config_change_proposed")
        assert proposed["sections"] == ["routes", "suppression"]
        [change] = _pending(daemon)
        assert change["kind"] == "config_file"
        assert change["proposed_by"] == "config-file"
        assert '+        "target": "#ops-war-room"' in change["diff"]
        assert '+  "min_tenants": 20,' in change["diff"]
        assert _routes(daemon) == before  # not applied: it waits for a reviewer

        issued = httpx.post(
            f"{daemon.url}/api/v1/people/U0ALICE/tokens", headers=ROOT, timeout=10
        ).json()["token"]
        approved = httpx.post(
            f"{daemon.url}/api/v1/changes/{change['change_id']}/approve",
            json={"why": "the war room is staffed this week"},
            headers={"authorization": f"Bearer {issued}"},
            timeout=10,
        )
        assert approved.status_code == 200, approved.text
        done = approved.json()["change"]
        assert done["status"] == "applied"
        assert "routes of operator applied live" in done["outcome"]
        assert "suppression take effect at the next restart" in done["outcome"]
        assert _routes(daemon)["SEV1"][0]["target"] == "#ops-war-room"
        audited = httpx.get(
            f"{daemon.url}/api/v1/audit", params={"event": "change_approved"}, headers=ROOT
        ).json()["audit"]
        assert "proposed by config-file, approved by person:U0ALICE" in audited[0]["detail"]
        code, _ = daemon.terminate()
    assert code == 0


def test_the_person_in_eyetok_token_proposes_and_cannot_approve_it(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = tmp_path / "eyetok.yaml"
    two = CONFIG + "  - slack_user_id: U0BOB\n    roles: [{role: alert_rule_reviewer}]\n"
    config.write_text(two)
    env = {"EYETOK_CONFIG": str(config), "SLACK_API_URL": fake_slack.base_url}
    tokens: dict[str, str] = {}
    with DaemonProcess(tmp_path / "data", env) as first:
        for person in ("U0ALICE", "U0BOB"):
            issued = httpx.post(f"{first.url}/api/v1/people/{person}/tokens", headers=ROOT)
            tokens[person] = issued.json()["token"]
        assert first.terminate()[0] == 0
    # Alice edits the file on the dyno and sends SIGHUP with her token in EYETOK_TOKEN
    with DaemonProcess(tmp_path / "data", {**env, "EYETOK_TOKEN": tokens["U0ALICE"]}) as daemon:
        config.write_text(
            two.replace("#raxx-ops-alert-SEV1", "#ops-war-room")
            + 'change_justification: "page the war room during the move"\n'
        )
        os.kill(daemon.pid, signal.SIGHUP)
        _wait_for(daemon, "config_change_proposed")
        [change] = _pending(daemon)
        assert change["proposed_by"] == "person:U0ALICE"
        assert change["diff"].startswith("--- config routes (live)")  # the routes only
        assert "config suppression" not in change["diff"]

        def approve(person: str) -> httpx.Response:
            return httpx.post(
                f"{daemon.url}/api/v1/changes/{change['change_id']}/approve",
                json={"why": "the war room is staffed this week"},
                headers={"authorization": f"Bearer {tokens[person]}"},
                timeout=10,
            )

        own = approve("U0ALICE")
        assert own.status_code == 403, own.text
        assert "a different person holding alert_rule_reviewer" in own.json()["error"]
        assert _routes(daemon)["SEV1"][0]["target"] == "#raxx-ops-alert-SEV1"
        approved = approve("U0BOB")
        assert approved.status_code == 200, approved.text
        assert approved.json()["change"]["outcome"] == (
            "applied: HTTP 200 (routes of operator applied live)"
        )
        assert _routes(daemon)["SEV1"][0]["target"] == "#ops-war-room"
        assert daemon.terminate()[0] == 0
