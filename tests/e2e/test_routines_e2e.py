"""The routines through the daemon: ``eyetok review`` (and ``--note``) against ``eyetok run``
as a subprocess, and the monthly drill's command run against the daemon itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import trio

from eyetok.messages import DrillDue
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import SECRET, daemon_settings, start_daemon
from tests.e2e.daemon import DaemonProcess
from tests.verify import ROOT_TOKEN

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "sentry"


def _review(
    url: str, *args: str, token: str | None = ROOT_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin"} | ({"EYETOK_ROOT_TOKEN": token} if token else {})
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "review", *args, "--url", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=60,
    )


def test_review_flags_a_refused_delivery_and_records_the_verdict(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    # held for the handshake one second only, so that it ends refused within the test
    config = tmp_path / "eyetok.yaml"
    config.write_text("delivery: {unverified_hold_s: 1}\n")
    env = {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.base_url,
        "EYETOK_CONFIG": str(config),
    }
    with DaemonProcess(tmp_path / "data", env) as daemon:
        body = (FIXTURES / "event_alert_fatal.json").read_bytes()
        resource = json.loads((FIXTURES / "event_alert_fatal.headers.json").read_text())
        posted = daemon.post_sentry(body, resource.get("Sentry-Hook-Resource"), SECRET)
        assert posted.status_code == 202, posted.text
        # the Slack sink was never verified: held, then refused, an anomaly
        deadline = time.monotonic() + 20
        while True:
            result = _review(daemon.url, "--json")
            assert result.returncode == 0, result.stdout + result.stderr
            review = json.loads(result.stdout)
            if review["anomalies"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        [anomaly] = review["anomalies"]
        assert anomaly["kind"] == "refused"
        assert anomaly["tenant"] == "operator"
        assert anomaly["detail"].startswith("refused_unverified on slack")
        assert anomaly["verdict"] is None
        assert review["notifications"] == 1
        assert [(s["sink_id"], s["outcome"]) for s in review["stream"]] == [
            ("slack", "refused_unverified")
        ]

        human = _review(daemon.url, "--since", "2h")
        assert human.returncode == 0
        assert "1 notifications" in human.stdout
        assert f"{anomaly['anomaly_id']}  refused" in human.stdout

        noted = _review(
            daemon.url, "--note", anomaly["anomaly_id"], "--benign", "never verified", "--by", "ana"
        )
        assert noted.returncode == 0, noted.stdout
        assert noted.stdout.strip() == "benign noted by ana"
        [after] = json.loads(_review(daemon.url, "--json").stdout)["anomalies"]
        assert (after["verdict"], after["note"], after["noted_by"]) == (
            "benign",
            "never verified",
            "ana",
        )
        assert after["noted_at"] is not None
        assert "[benign by ana: never verified]" in _review(daemon.url).stdout

        unknown = _review(daemon.url, "--note", "anm_0000000000000000", "--escalate", "x")
        assert unknown.returncode == 1
        assert unknown.stderr == (
            "eyetok: HTTP 404 from /api/v1/review/anomalies/anm_0000000000000000/note: "
            "no anomaly 'anm_0000000000000000' on record\n"
        )
        assert _review(daemon.url, "--note", anomaly["anomaly_id"]).returncode == 2
        assert _review(daemon.url, "--benign", "why").returncode == 2
        bad_since = _review(daemon.url, "--since", "forever")
        assert bad_since.returncode == 1
        assert bad_since.stderr.startswith("eyetok: HTTP 400 from /api/v1/review: ")
        assert "since" in bad_since.stderr
        as_json = _review(daemon.url, "--since", "forever", "--json")
        assert "since" in json.loads(as_json.stdout)["error"]
        assert _review(daemon.url, token="not-the-root-token").returncode == 1
        no_token = _review(daemon.url, token=None)
        assert no_token.returncode == 2
        assert "EYETOK_ROOT_TOKEN" in no_token.stderr
        assert daemon.terminate()[0] == 0
    assert daemon.events("anomaly_flagged")
    assert daemon.events("anomaly_noted")


_DRILL = """
import json, sys, urllib.request
ready = urllib.request.urlopen(sys.argv[1] + "/readyz", timeout=10)
print(json.dumps({"scenario": "single-tenant-outage", "receipt_id": "rcpt_self",
                  "steps": [{"name": "daemon-ready", "expectation": "200",
                             "observation": str(ready.status),
                             "verdict": "pass" if ready.status == 200 else "fail"}]}))
"""


async def test_the_monthly_drill_runs_against_the_daemon_itself(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = "routines:\n  drill_command: " + json.dumps([sys.executable, "-c", _DRILL, "{url}"])
    settings = daemon_settings(tmp_path / "data", fake_slack, config=config + "\n")
    daemon = await start_daemon(nursery, settings)
    assert daemon.topology is not None
    assert daemon.store is not None
    # the daemon's scheduler knows every routine (a new history: registered, none late)
    await daemon.topology.flush_history()
    registered = await daemon.store.read(
        lambda con: con.execute(
            "SELECT json_extract_string(detail, '$.schedule') FROM audit_log "
            "WHERE event = 'schedule_registered' ORDER BY 1"
        ).fetchall()
    )
    assert [name for (name,) in registered] == [
        "credential-rotation",
        "daily-review",
        "monthly-drill",
        "retention",
        "reverify",
    ]
    routines = daemon.topology.channels["routines"]
    assert isinstance(routines, trio.MemorySendChannel)
    await routines.send(DrillDue(slot=datetime(2026, 12, 1, 15, tzinfo=UTC)))

    def operator_post() -> SlackPost:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for post in fake_slack.posts:
                if post.channel == "eyetok-operator" and "Monthly drill" in (post.text or ""):
                    return post
            time.sleep(0.05)
        raise AssertionError(f"no drill notice: {[p.text for p in fake_slack.posts]}")

    post = await trio.to_thread.run_sync(operator_post)
    assert post.text == (
        ":white_check_mark: Monthly drill `single-tenant-outage` passed: 1 steps "
        "(receipt `rcpt_self`)."
    )
    daemon.request_stop()
