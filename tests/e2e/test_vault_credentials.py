"""Credentials from the vault in a real ``eyetok run``: read at start, read again on SIGHUP
and swapped in place (same process, the next delivery uses the new value)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.peers.infisical import FakeInfisical

ROTATED = "xoxb-rotated-in-the-vault"


def _alert() -> tuple[bytes, str | None]:
    name = "event_alert_error_new_unhandled_prod"
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text())
    return (FIXTURES / f"{name}.json").read_bytes(), headers.get("Sentry-Hook-Resource")


def _posted_with(slack: FakeSlack, n: int) -> list[str]:
    calls = slack.wait_for_calls(n, method="chat.postMessage", timeout=15)
    return [c.headers.get("authorization", "") for c in calls if c.status == 200]


def _wait_for(daemon: DaemonProcess, event: str, timeout: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = daemon.events(event)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {event} in {timeout}s: {daemon.raw[-10:]}")


def test_vault_read_at_start_and_swapped_on_sighup(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.add_workspace(ROTATED, TEAM_ID)
    with FakeInfisical() as infisical:
        infisical.put("SLACK_BOT_TOKEN", fake_slack.token)
        infisical.put("SENTRY_CLIENT_SECRET", SECRET)
        env = {
            **infisical.env(),
            "SLACK_BOT_TOKEN": "xoxb-stale-in-the-environment",  # the vault stands over it
            "SLACK_API_URL": fake_slack.base_url,
        }
        with DaemonProcess(tmp_path / "data", env) as daemon:
            loaded = daemon.events("credentials_loaded")[0]
            assert loaded["why"] == "start"
            assert loaded["from_vault"] == ["SENTRY_CLIENT_SECRET", "SLACK_BOT_TOKEN"]
            assert "EYETOK_ROOT_TOKEN" in loaded["from_environment"]  # not in the vault
            daemon.verify_slack()

            body, resource = _alert()
            assert daemon.post_sentry(body, resource, SECRET).status_code == 202
            assert _posted_with(fake_slack, 1) == [f"Bearer {fake_slack.token}"]

            infisical.put("SLACK_BOT_TOKEN", ROTATED)
            pid = daemon.pid
            os.kill(pid, signal.SIGHUP)
            swapped = _wait_for(daemon, "sink_credentials_swapped")
            assert swapped["sinks"] == ["slack"]
            reread = [e for e in daemon.events("credentials_loaded") if e["why"] == "SIGHUP"]
            assert reread[0]["from_vault"] == ["SENTRY_CLIENT_SECRET", "SLACK_BOT_TOKEN"]

            assert daemon.post_sentry(body, resource, SECRET).status_code == 202
            authorisations = _posted_with(fake_slack, 2)
            assert authorisations[-1] == f"Bearer {ROTATED}"
            assert daemon.pid == pid  # no restart
            assert infisical.logins == 2

            # the vault refuses the identity on the next SIGHUP: what is in use stays
            infisical.client_secret = "rotated-elsewhere"
            os.kill(pid, signal.SIGHUP)
            kept = _wait_for(daemon, "credentials_not_reread")
            assert "refused the machine identity" in str(kept["error"])
            assert daemon.post_sentry(body, resource, SECRET).status_code == 202
            authorisations = _posted_with(fake_slack, 3)
            assert authorisations[-1] == f"Bearer {ROTATED}"

            code, _ = daemon.terminate()
    assert code == 0
    assert not daemon.events("supervisor_gave_up")
    everything = "\n".join(daemon.raw)
    assert ROTATED not in everything
    assert fake_slack.token not in everything
    assert "identity-secret" not in everything
