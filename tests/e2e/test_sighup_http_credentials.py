"""SIGHUP swaps the root API token and Slack's signing secret in the HTTP app of a real
``eyetok run`` (no restart): after the vault holds new values, the next request is checked
against them, and the old ones are refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from tests.conftest import SECRET
from tests.e2e.daemon import DaemonProcess
from tests.e2e.test_vault_credentials import _wait_for
from tests.peers.infisical import FakeInfisical
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, slack_headers

NEW_ROOT = "root-token-rotated-in-the-vault"
NEW_SIGNING = "signing-secret-rotated-in-the-vault"


def _as_root(daemon: DaemonProcess, token: str) -> int:
    headers = {"authorization": f"Bearer {token}"}
    return httpx.get(f"{daemon.url}/api/v1/sinks", headers=headers, timeout=10).status_code


def _challenge(daemon: DaemonProcess, secret: str) -> int:
    body = json.dumps({"type": "url_verification", "challenge": "c-1", "token": "x"}).encode()
    headers = slack_headers(body, secret=secret)
    return httpx.post(
        f"{daemon.url}/slack/events", content=body, headers=headers, timeout=10
    ).status_code


def _interaction(daemon: DaemonProcess, secret: str) -> int:
    body = b"payload=" + json.dumps({"type": "block_actions", "actions": []}).encode()
    headers = slack_headers(body, secret=secret)
    headers["content-type"] = "application/x-www-form-urlencoded"
    return httpx.post(
        f"{daemon.url}/slack/actions", content=body, headers=headers, timeout=10
    ).status_code


def test_sighup_swaps_the_root_token_and_the_signing_secret(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeInfisical() as infisical:
        infisical.put("SENTRY_CLIENT_SECRET", SECRET)
        env = {**infisical.env(), "SLACK_API_URL": fake_slack.base_url}
        with DaemonProcess(tmp_path / "data", env) as daemon:
            assert _as_root(daemon, ROOT_TOKEN) == 200
            assert _challenge(daemon, SLACK_SIGNING_SECRET) == 200
            assert _interaction(daemon, SLACK_SIGNING_SECRET) == 200

            infisical.put("EYETOK_ROOT_TOKEN", NEW_ROOT)
            infisical.put("SLACK_SIGNING_SECRET", NEW_SIGNING)
            pid = daemon.pid
            os.kill(pid, signal.SIGHUP)
            swapped = _wait_for(daemon, "http_credentials_swapped")
            assert swapped["names"] == ["EYETOK_ROOT_TOKEN", "SLACK_SIGNING_SECRET"]

            assert _as_root(daemon, ROOT_TOKEN) == 401  # the old token is refused now
            assert _as_root(daemon, NEW_ROOT) == 200
            assert _challenge(daemon, SLACK_SIGNING_SECRET) == 401
            assert _challenge(daemon, NEW_SIGNING) == 200
            assert _interaction(daemon, SLACK_SIGNING_SECRET) == 401
            assert _interaction(daemon, NEW_SIGNING) == 200
            # the people actor knows the new root token too (binding a role is root's)
            bound = httpx.put(
                f"{daemon.url}/api/v1/people/U0CAROL/roles/responder",
                headers={"authorization": f"Bearer {NEW_ROOT}"},
                timeout=10,
            )
            assert bound.status_code == 200, bound.text
            assert daemon.pid == pid  # no restart
            code, _ = daemon.terminate()
    assert code == 0
    everything = "\n".join(daemon.raw)
    assert NEW_ROOT not in everything
    assert NEW_SIGNING not in everything
