"""Issue 14's first ten minutes, through ``eyetok run``: a SEV1 sent before the Slack
handshake is held, not refused; ``eyetok sinks`` lists the never-verified sink with it;
after a kill -9 it is still held; the handshake sends it, marked late."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from tests.conftest import SECRET, fixture_body
from tests.e2e.daemon import DaemonProcess
from tests.verify import ROOT_TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _sinks(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "sinks", "--url", url, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "EYETOK_ROOT_TOKEN": ROOT_TOKEN},
        check=False,
        timeout=60,
    )


def _slack_row(url: str) -> dict[str, object]:
    listed = _sinks(url, "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    [slack] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert isinstance(slack, dict)
    return slack


def _until_held(url: str, n: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        row = _slack_row(url)
        assert (row["sink_id"], row["status"], row["deliverable"]) == (
            "slack",
            "unverified",
            False,
        )
        if row["held_unverified"] == n:
            return
        assert time.monotonic() < deadline, f"never {n} held: {row}"
        time.sleep(0.1)


def test_a_sev1_before_the_handshake_reaches_slack_late_even_across_a_kill(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    env = {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.base_url,
    }
    body = fixture_body("event_alert_fatal")
    with DaemonProcess(tmp_path / "data", env) as daemon:
        posted = daemon.post_sentry(body, "event_alert", SECRET)
        assert posted.status_code == 202, posted.text
        _until_held(daemon.url, 1)
        text = _sinks(daemon.url)
        assert text.returncode == 0
        assert text.stdout.startswith("slack ")
        assert "refused (never verified); 1 held awaiting verification since" in text.stdout
        assert daemon.events("delivery_held_unverified")
        ready = httpx.get(daemon.url + "/readyz", timeout=10).json()
        held = ready["components"]["held_unverified"]
        assert held["state"] == "degraded"
        assert held["detail"].startswith("slack: 1 held awaiting verification")
        assert ready["components"]["dead_deliveries"]["state"] == "ok"
        assert fake_slack.posts == []
        daemon.kill()

    with DaemonProcess(tmp_path / "data", env) as daemon:
        _until_held(daemon.url, 1)  # a pending row, re-queued and held again
        daemon.verify_slack()
        [post] = fake_slack.wait_for_posts(1, timeout=15)
        assert post.channel == "raxx-ops-alert-SEV1"
        assert post.text is not None
        assert "was awaiting verification" in post.text
        assert "delayed " in post.text
        row = _slack_row(daemon.url)
        assert (row["status"], row["held_unverified"]) == ("live", 0)
        assert daemon.terminate()[0] == 0
    [released] = daemon.events("delivery_released")
    assert released["sink"] == "slack"
    [sent] = daemon.events("delivery_sent")
    assert sent["sink"] == "slack"
