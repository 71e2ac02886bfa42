"""The first ten minutes, as a newcomer follows the README: a fresh data directory, only
the README's variables, ``eyetok run`` as a subprocess, the fake Slack Web API.

``eyetok doctor`` names what is missing; with it set, ``eyetok verify slack`` prints the
nonce and waits while it is DM'd to the app (the Events API request Slack would send);
``eyetok test-alert`` and a signed Sentry webhook then reach the right channels, and
``eyetok doctor --url`` is green.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess, free_port
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, slack_event_body, slack_headers

# Nothing of the test run's own environment leaks into the newcomer's.
_BARE = {k: v for k, v in os.environ.items() if not k.startswith(("EYETOK_", "SLACK_", "SENTRY_"))}


def _eyetok(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eyetok.cli", *argv],
        env=_BARE | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _readme_env(slack: FakeSlack, daemon_url: str) -> dict[str, str]:
    """The variables the README's Deploy section sets (plus SLACK_API_URL, also in its
    table, pointing at the fake Slack)."""
    return {
        "EYETOK_PUBLIC_URL": daemon_url,
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
        "EYETOK_ROOT_TOKEN": ROOT_TOKEN,
        "EYETOK_SOP_URL": "https://runbooks.raxx.example/emergency-sop",
        "SLACK_API_URL": slack.base_url,
    }


class _Verify:
    """``eyetok verify slack`` running, its stdout read line by line as it comes."""

    def __init__(self, env: dict[str, str], cwd: Path, url: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eyetok.cli", "verify", "slack", "--url", url, "--wait", "30"],
            env=_BARE | env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def nonce(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            said = list(self.lines)
            for i, line in enumerate(said):
                if "send it this nonce" in line and i + 1 < len(said):
                    return said[i + 1].strip()
            time.sleep(0.05)
        raise AssertionError(f"no nonce printed: {self.lines}")

    def wait(self) -> int:
        code = self.proc.wait(timeout=40)
        self._reader.join(timeout=5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def test_from_a_fresh_clone_to_an_alert_in_the_right_channel(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    work = tmp_path / "clone"
    work.mkdir()

    # 1. Nothing set: the doctor names every variable the main job needs.
    doctor = _eyetok("doctor", env={}, cwd=work)
    assert doctor.returncode == 1
    for variable in (
        "SENTRY_CLIENT_SECRET",
        "SLACK_BOT_TOKEN",
        "EYETOK_ROOT_TOKEN",
        "SLACK_SIGNING_SECRET",
    ):
        assert f"-> set {variable}" in doctor.stdout, variable
    assert doctor.stdout.rstrip().endswith("do what each -> says.")

    # 2. The daemon runs anyway and says the same at start and on /readyz.
    bare = {
        "EYETOK_ROOT_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_API_URL": fake_slack.base_url,
    }
    with DaemonProcess(work / ".eyetok", bare) as daemon:
        [status] = daemon.events("setup_status")
        assert status["level"] == "warning"
        assert status["main_job_ready"] is False
        assert "set SENTRY_CLIENT_SECRET" in str(status["missing"])
        [warning] = daemon.events("sop_url_placeholder")
        assert "EYETOK_SOP_URL" in str(warning["why"])
        ready = httpx.get(daemon.url + "/readyz").json()
        assert ready["setup"]["main_job_ready"] is False
        body = (FIXTURES / "event_alert_fatal.json").read_bytes()
        refused = daemon.post_sentry(body, "event_alert", SECRET)
        assert refused.status_code == 401
        assert "set SENTRY_CLIENT_SECRET" in refused.json()["error"]
        assert daemon.terminate()[0] == 0

    # 3. The README's variables set, the same data directory: the doctor now asks only
    #    for the Slack handshake, and names the command.
    port = free_port()
    env = _readme_env(fake_slack, f"http://127.0.0.1:{port}")
    with DaemonProcess(work / ".eyetok", env, port=port) as daemon:
        [status] = daemon.events("setup_status")
        assert status["main_job_ready"] is True
        before = _eyetok("doctor", "--url", daemon.url, env=env, cwd=work)
        assert before.returncode == 1, before.stdout + before.stderr
        assert "MISSING handshake:slack" in before.stdout
        assert "-> python3 -m uv run eyetok verify slack" in before.stdout

        # Alerts before the handshake are held, not posted; the test alert says so and
        # names the fix, and so does the log, once an hour.
        for _ in range(2):
            argv = ("test-alert", "--sev", "SEV2", "--wait", "20", "--url", daemon.url)
            early = _eyetok(*argv, env=env, cwd=work)
            assert early.returncode == 1, early.stdout + early.stderr
            assert "-> python3 -m uv run eyetok verify slack" in early.stdout
            assert "Held for slack: the sink has not passed its ownership handshake" in early.stdout
        _until(lambda: bool(daemon.events("sink_unverified_fix")))
        [fix] = daemon.events("sink_unverified_fix")
        assert fix["fix"] == "python3 -m uv run eyetok verify slack"

        # 4. eyetok verify slack: the words, the nonce DM'd to the app, the wait.
        verify = _Verify(env, work, daemon.url)
        nonce = verify.nonce()
        said = "\n".join(verify.lines)
        assert f"Request URL must be {daemon.url}/slack/events" in said
        assert "chat:write, chat:write.public, im:history" in said
        dm = slack_event_body(nonce)
        delivered = httpx.post(daemon.url + "/slack/events", content=dm, headers=slack_headers(dm))
        assert delivered.status_code == 200
        assert verify.wait() == 0, verify.lines
        assert verify.lines[-1].startswith("slack is live: deliverable until ")
        # The two alerts held for the handshake go out now, each saying how late it is.
        late = fake_slack.wait_for_posts(2, timeout=15)
        assert len(late) == 2
        for post in late:
            assert post.text is not None
            assert "[EyeTok test alert] synthetic SEV2 alert" in post.text
            assert "awaiting verification" in post.text

        # 5. The test alert goes the real path into #raxx-ops-alert-SEV3.
        test_alert = _eyetok("test-alert", "--sev", "SEV3", "--url", daemon.url, env=env, cwd=work)
        assert test_alert.returncode == 0, test_alert.stdout + test_alert.stderr
        assert test_alert.stdout.splitlines()[-1] == "Delivered to slack:#raxx-ops-alert-SEV3."
        [post] = [p for p in fake_slack.posts if p.channel == "raxx-ops-alert-SEV3"]
        assert post.text is not None
        assert post.text.startswith("[SEV3] [EyeTok test alert] synthetic SEV3 alert sent by")

        # 6. A real Sentry webhook, signed: the SEV1 channel, the SOP in the notification.
        body = (FIXTURES / "event_alert_fatal.json").read_bytes()
        accepted = daemon.post_sentry(body, "event_alert", SECRET)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["sev_channel"] == "SEV1"
        posts = fake_slack.wait_for_posts(4, timeout=15)  # 2 late, the SEV3 test, the SEV1
        [sev1] = [p for p in posts if p.channel == "raxx-ops-alert-SEV1"]
        assert sev1.text is not None
        assert sev1.text.endswith("Emergency SOP: https://runbooks.raxx.example/emergency-sop")

        # 7. Green.
        after = _eyetok("doctor", "--url", daemon.url, env=env, cwd=work)
        assert after.returncode == 0, after.stdout
        assert after.stdout.splitlines()[-1] == "Sentry -> Slack: ready."
        assert daemon.terminate()[0] == 0
