"""SEV1's human loop through ``eyetok run`` as a subprocess: ``eyetok incidents`` and
``eyetok ack`` (the Slack button's path) from a terminal; the re-notification and the
escalation with short delays, across a kill -9, each once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess


def _env(slack: FakeSlack, config: Path | None = None) -> dict[str, str]:
    env = {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_ONCALL_SLACK_USER": "U0ONCALL",
    }
    if config is not None:
        env["EYETOK_CONFIG"] = str(config)
    return env


def _fatal(daemon: DaemonProcess) -> str:
    body = (FIXTURES / "event_alert_fatal.json").read_bytes()
    answer = daemon.post_sentry(body, "event_alert", SECRET)
    assert answer.status_code == 202, answer.text
    assert answer.json()["sev_channel"] == "SEV1"
    return str(answer.json()["incident_id"])


def _eyetok(daemon: DaemonProcess, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", *argv, "--url", daemon.url],
        env=daemon.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_incidents_and_ack_from_the_terminal(tmp_path: Path, fake_slack: FakeSlack) -> None:
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        daemon.verify_slack()
        incident_id = _fatal(daemon)
        [top] = fake_slack.wait_for_posts(1)
        listed = _eyetok(daemon, "incidents", "--open")
        assert listed.returncode == 0, listed.stderr
        assert incident_id in listed.stdout
        assert "OPEN" in listed.stdout
        acked = _eyetok(daemon, "ack", incident_id, "--by", "sam")
        assert acked.returncode == 0, acked.stderr
        assert acked.stdout.strip() == f"Acknowledged {incident_id} as sam."
        again = _eyetok(daemon, "ack", incident_id, "--by", "kim")
        assert again.returncode == 0, again.stderr
        assert "was acknowledged already, by sam" in again.stdout
        unknown = _eyetok(daemon, "ack", "inc_nope", "--by", "sam")
        assert unknown.returncode != 0
        assert "no open incident" in unknown.stderr
        rows = _eyetok(daemon, "incidents", "--open", "--json", "--tenant", "operator")
        [row] = [json.loads(line) for line in rows.stdout.splitlines()]
        assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "sam")
        assert _eyetok(daemon, "incidents", "--tenant", "nobody").stdout.strip() == "No incidents."
        [update] = fake_slack.wait_for_calls(1, method="chat.update")
        assert update.body["ts"] == top.ts
        assert "Acknowledged by sam" in json.dumps(update.body["blocks"])
        assert daemon.terminate()[0] == 0
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        rows = _eyetok(daemon, "incidents", "--json")
        [row] = [json.loads(line) for line in rows.stdout.splitlines()]
        assert (row["status"], row["acknowledged_by"]) == ("acknowledged", "sam")
        assert daemon.terminate()[0] == 0


CONFIG = """
tenants:
  operator:
    tier: operator
    escalation:
      ack_renotify_s: 2
      ack_escalate_s: 4
      secondary: {sink: slack, target: "#oncall-secondary"}
"""


def _wait(slack: FakeSlack, test: object, *, within: float = 20.0) -> list[SlackPost]:
    deadline = time.monotonic() + within
    while True:
        posts = slack.posts
        if callable(test) and test(posts):
            return posts
        assert time.monotonic() < deadline, [p.text for p in posts]
        time.sleep(0.05)


def test_renotify_and_escalate_once_each_across_a_kill(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text(CONFIG)
    with DaemonProcess(tmp_path / "data", _env(fake_slack, config)) as daemon:
        daemon.verify_slack()
        incident_id = _fatal(daemon)
        posts = _wait(fake_slack, lambda ps: len(ps) >= 2)  # the post and the re-notification
        top, renotify = posts[:2]
        assert renotify.thread_ts == top.ts
        assert renotify.text is not None
        assert renotify.text.startswith("<@U0ONCALL> Not acknowledged after")
        daemon.kill()  # kill -9 between the re-notification and the escalation
    with DaemonProcess(tmp_path / "data", _env(fake_slack, config)) as daemon:
        posts = _wait(fake_slack, lambda ps: any(p.channel == "oncall-secondary" for p in ps))
        time.sleep(1.0)  # anything repeated would show by now
        posts = fake_slack.posts
        secondary = [p for p in posts if p.channel == "oncall-secondary"]
        renotified = [p for p in posts if (p.text or "").startswith("<@U0ONCALL> Not ack")]
        assert len(secondary) == 1, [p.text for p in posts]
        assert len(renotified) == 1, [p.text for p in posts]
        assert "Escalated to you" in json.dumps(secondary[0].blocks)
        rows = _eyetok(daemon, "incidents", "--json")
        [row] = [json.loads(line) for line in rows.stdout.splitlines()]
        assert row["incident_id"] == incident_id
        assert row["status"] == "open"  # nothing acts on a SEV1 by itself
        assert row["renotified_at"]
        assert row["escalated_at"]
        assert daemon.terminate()[0] == 0
