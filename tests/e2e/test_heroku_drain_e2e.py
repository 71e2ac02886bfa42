"""A Heroku log drain through ``eyetok run`` as a subprocess: an R15 posts to SEV1, an
H12 incident left open across a restart resolves from its stored snapshot once the
(restarted) daemon's quiet period has passed, and ordinary lines leave no trace."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.e2e.daemon import DaemonProcess
from tests.sources import heroku_lines as lines

PASSWORD = "e2e-drain-password"
CONFIG = """
tenants:
  operator:
    tier: operator
    heroku_drain:
      user: drain
      password_env: EYETOK_DRAIN_PASSWORD
      apps: {"d.73ea7440-270a-435a-a0ea-adf50b4e5f5a": raxx-prod}
      quiet_s: %s
"""


def _env(slack: FakeSlack, config: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_ONCALL_SLACK_USER": "U0ONCALL",
        "EYETOK_CONFIG": str(config),
        "EYETOK_DRAIN_PASSWORD": PASSWORD,
    }


def _drain(daemon: DaemonProcess, *messages: str) -> httpx.Response:
    basic = base64.b64encode(f"drain:{PASSWORD}".encode()).decode()
    return httpx.post(
        daemon.url + "/hooks/heroku-logs/operator",
        content=lines.body(*messages),
        headers={
            "content-type": "application/logplex-1",
            "authorization": f"Basic {basic}",
            "logplex-msg-count": str(len(messages)),
            "logplex-frame-id": "0A1B2C3D4E5F60718293A4B5C6D7E8F9",
            "logplex-drain-token": lines.TOKEN,
        },
        timeout=15.0,
    )


def test_a_drain_through_eyetok_run(tmp_path: Path, fake_slack: FakeSlack) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text(CONFIG % 3600)
    with DaemonProcess(tmp_path / "data", _env(fake_slack, config)) as daemon:
        daemon.verify_slack()
        quiet = _drain(daemon, *(lines.info(n) for n in range(50)))
        assert quiet.json() == {"frames": 50, "accepted": 0, "signals": []}
        answer = _drain(daemon, lines.info(), lines.r15(), lines.h12(), lines.h12("web.2"))
        assert answer.status_code == 202, answer.text
        got = [(s["rule"], s["sev_channel"], s["action"]) for s in answer.json()["signals"]]
        assert got[0] == ("heroku-r15", "SEV1", "open")
        assert [g[2] for g in got[1:]] == ["open", "update"]
        posts = fake_slack.wait_for_posts(2)
        sev1 = next(p for p in posts if p.channel == "raxx-ops-alert-SEV1")
        assert (sev1.text or "").startswith("[SEV1] raxx-prod worker: R15 Memory quota vastly")
        code, _ = daemon.terminate()
        assert code == 0
    # a drain's frames are a batch: its decisions are logged in one line, an entry each
    decided = [e for line in daemon.events("incidents_decided") for e in _entries(line)]
    opened = [e for e in decided if e["event"] == "incident_opened"]
    assert len(opened) == 2  # the ordinary lines opened nothing
    # the restarted daemon's quiet period (10 ms) has passed for both stored incidents
    config.write_text(CONFIG % 0.01)
    posted = len(fake_slack.posts)
    with DaemonProcess(tmp_path / "data", _env(fake_slack, config)) as again:
        # the sink stays verified across the restart: the resolves reach the threads (after
        # any update the first daemon had planned and not yet sent)
        resolves: list[SlackPost] = []
        for n in range(posted + 1, posted + 6):
            resolves = [
                p
                for p in fake_slack.wait_for_posts(n)[posted:]
                if (p.text or "").startswith("Resolved at")
            ]
            if len(resolves) == 2:
                break
        code, _ = again.terminate()
        assert code == 0
    assert {p.thread_ts for p in resolves} == {p.ts for p in posts[:2]}
    closed = again.events("incident_resolved")
    assert sorted(str(e["dedup_key"]) for e in closed) == [
        "heroku:raxx-prod:H12:web",
        "heroku:raxx-prod:R15:worker",
    ]


def _entries(line: dict[str, object]) -> list[dict[str, object]]:
    decisions = line["decisions"]
    assert isinstance(decisions, list)
    return decisions
