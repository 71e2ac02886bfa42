"""Playbooks through ``eyetok run`` as a subprocess: an H12 storm's restart proposal is
approved in Slack (a signed interactivity request), the daemon is killed (-9) while the
fake Heroku Platform API is still answering, and the restarted daemon says the run was
interrupted and never calls Heroku again. No log line and no post carries the token."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx

from eyetok.playbooks.posts import APPROVE_ACTION
from harness.peers.platform import FakeHeroku, FakeService
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.verify import slack_headers


def _post_saying(slack: FakeSlack, says: str, timeout: float = 15.0) -> SlackPost:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for post in slack.posts:
            if says in (post.text or ""):
                return post
        time.sleep(0.05)
    raise AssertionError(f"no post saying {says!r}: {[p.text for p in slack.posts]}")


def _press(daemon: DaemonProcess, value: str, user: str, user_id: str) -> httpx.Response:
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user},
        "actions": [{"action_id": APPROVE_ACTION, "value": value, "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = slack_headers(body) | {"content-type": "application/x-www-form-urlencoded"}
    return httpx.post(daemon.url + "/slack/interactions", content=body, headers=headers)


def test_a_kill_during_the_run_never_runs_it_twice(tmp_path: Path) -> None:
    with FakeSlack() as slack, FakeHeroku() as heroku, FakeService() as service:
        config = tmp_path / "eyetok.yaml"
        config.write_text(
            f"""
integrations:
  heroku: {{api_url: "{heroku.base_url}", token_env: HEROKU_API_TOKEN}}
playbooks:
  - name: raxx-h12-storm
    match: {{sev: [SEV2, SEV2.5], rule: [heroku-h12]}}
    triage:
      - name: health
        action: {{kind: http.check, url: "{service.base_url}/healthz"}}
    remediation:
      name: restart web dynos
      action: {{kind: heroku.restart_dyno, app: raxx-prod, dyno: web}}
""",
            encoding="utf-8",
        )
        env = {
            "SENTRY_CLIENT_SECRET": SECRET,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "EYETOK_CONFIG": str(config),
            "HEROKU_API_TOKEN": heroku.token,
        }
        data = tmp_path / "data"
        first = DaemonProcess(data, env).start().verify_slack()
        try:
            body = (FIXTURES / "event_alert_h12.json").read_bytes()
            assert first.post_sentry(body, "event_alert", SECRET).status_code == 202
            proposal = _post_saying(slack, "proposes `restart web dynos`")
            [value] = [
                e["value"]
                for b in proposal.blocks or []
                if b["type"] == "actions"
                for e in b["elements"]
                if e["action_id"] == APPROVE_ACTION
            ]
            heroku.delay_s = 4.0
            pressed = _press(first, value, "dana", "U0DANA")
            assert pressed.status_code == 200
            heroku.wait_calls(1)
        finally:
            first.kill()  # -9, while Heroku has not answered yet

        second = DaemonProcess(data, env, port=first.port).start()
        try:
            _post_saying(slack, "It is not run again")
            assert second.events("playbook_run_interrupted")
            heroku.delay_s = 0.0
            again = _press(second, value, "erin", "U0ERIN")
            assert again.status_code == 200  # answered after the actor took the click
            refused = second.events("playbook_click_refused")
            assert [r["why"] for r in refused] == ["it is interrupted"]
            assert not second.events("playbook_run_started")  # a call follows only that
            assert len(heroku.calls) == 1
        finally:
            second.terminate()
        logs = "\n".join(first.raw + second.raw)
        assert heroku.token not in logs
        assert heroku.token not in json.dumps([p.to_json() for p in slack.posts])
