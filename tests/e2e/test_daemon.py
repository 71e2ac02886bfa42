"""The daemon as a subprocess, a local fake Slack driven by the real slack-sdk client."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.peers.slack import FakeSlack
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.verify import slack_event_body, slack_headers


def _env(slack: FakeSlack) -> dict[str, str]:
    return {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_ONCALL_SLACK_USER": "U0ONCALL",
    }


def _fixture(name: str) -> tuple[bytes, str | None]:
    body = (FIXTURES / f"{name}.json").read_bytes()
    headers = json.loads((FIXTURES / f"{name}.headers.json").read_text())
    return body, headers.get("Sentry-Hook-Resource")


def test_open_repeat_resolve_and_a_clean_sigterm(tmp_path: Path, fake_slack: FakeSlack) -> None:
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        daemon.verify_slack()
        body, resource = _fixture("event_alert_error_new_unhandled_prod")
        first = daemon.post_sentry(body, resource, SECRET)
        assert first.status_code == 202, first.text
        opened = first.json()
        assert opened["action"] == "open"
        assert opened["severity"] == "high"
        assert opened["sev_channel"] in {"SEV2", "SEV2.5"}

        repeat = daemon.post_sentry(body, resource, SECRET)
        assert repeat.status_code == 202
        assert repeat.json()["action"] == "update"
        assert repeat.json()["incident_id"] == opened["incident_id"]

        body, resource = _fixture("issue_resolved")
        resolved = daemon.post_sentry(body, resource, SECRET)
        assert resolved.status_code == 202
        assert resolved.json()["action"] == "resolve"
        assert resolved.json()["incident_id"] == opened["incident_id"]

        top, reply, resolve = fake_slack.wait_for_posts(3, timeout=15)
        channel = "raxx-ops-alert-" + opened["sev_channel"]
        assert [p.channel for p in (top, reply, resolve)] == [channel] * 3
        assert top.thread_ts is None
        assert opened["incident_id"] in str(top.blocks)
        assert ("<@U0ONCALL>" in str(top.blocks)) == (opened["sev_channel"] == "SEV2")
        assert reply.thread_ts == top.ts
        assert "2 events" in reply.text
        assert resolve.thread_ts == top.ts
        assert resolve.text.startswith("Resolved")

        code, seconds = daemon.terminate()
    assert code == 0
    assert seconds < 25
    assert daemon.events("drain_finished")
    assert daemon.events("eyetok_stopped")
    sent = daemon.events("delivery_sent")
    assert len(sent) == 3
    assert {line["incident_id"] for line in sent} == {opened["incident_id"]}
    assert all(line["actor"] == "delivery" and "latency_ms" in line for line in sent)


def test_a_restart_keeps_the_incident_and_its_thread(tmp_path: Path, fake_slack: FakeSlack) -> None:
    body, resource = _fixture("event_alert_fatal")
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        daemon.verify_slack()
        opened = daemon.post_sentry(body, resource, SECRET).json()
        [top] = fake_slack.wait_for_posts(1)
        assert daemon.terminate()[0] == 0
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        again = daemon.post_sentry(body, resource, SECRET).json()
        assert again["action"] == "update"
        assert again["incident_id"] == opened["incident_id"]
        _, reply = fake_slack.wait_for_posts(2)
        assert reply.thread_ts == top.ts
        assert daemon.terminate()[0] == 0


def test_invalid_configuration_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text("tenants:\n  acme:\n    tier: team\n    colour: blue\n")
    daemon = DaemonProcess(tmp_path / "data", {"EYETOK_CONFIG": str(config)})
    with pytest.raises(AssertionError, match=r"daemon exited 2") as refused:
        daemon.start(timeout=10)
    assert "tenants.acme.colour" in str(refused.value)


def test_no_configuration_at_all_starts_on_the_embedded_default(tmp_path: Path) -> None:
    with DaemonProcess(tmp_path / "data", {}) as daemon:
        [starting] = daemon.events("eyetok_starting")
        assert starting["tenants"] == ["operator"]
        assert starting["sinks_configured"] == []
        assert starting["sinks_unconfigured"] == ["slack"]
        assert (tmp_path / "data" / "history.duckdb").exists()
        assert daemon.terminate()[0] == 0


def test_the_readme_verify_and_sinks_commands_run_the_slack_handshake(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [block] = [
        b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "eyetok verify slack --by" in b
    ]
    verify_line, sinks_line = (shlex.split(line) for line in block.strip().splitlines())
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        env = {**daemon.env, "PORT": str(daemon.port)}

        def eyetok(argv: list[str]) -> subprocess.CompletedProcess[str]:
            assert argv[:5] == ["python3", "-m", "uv", "run", "eyetok"]
            return subprocess.run(
                [sys.executable, "-m", "eyetok.cli", *argv[5:]],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )

        # verify waits until the handshake passes: run it, read its nonce, DM it, wait
        assert verify_line[:5] == ["python3", "-m", "uv", "run", "eyetok"]
        waiting = subprocess.Popen(
            [sys.executable, "-m", "eyetok.cli", *verify_line[5:]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert waiting.stdout is not None
        said = [waiting.stdout.readline() for _ in range(4)]
        assert "direct message" in said[1]
        nonce = said[3].strip()
        body = slack_event_body(f"here you go {nonce}")
        sent = httpx.post(daemon.url + "/slack/events", content=body, headers=slack_headers(body))
        assert sent.status_code == 200
        rest = waiting.stdout.read()
        assert waiting.wait(timeout=60) == 0, "".join(said) + rest
        waiting.stdout.close()
        assert rest.splitlines()[-1].startswith("slack is live: deliverable until ")
        deadline = time.monotonic() + 10
        while "deliverable" not in (listed := eyetok(sinks_line)).stdout:
            assert time.monotonic() < deadline, listed.stdout + listed.stderr
            time.sleep(0.05)
        assert listed.stdout.split()[:3] == ["slack", "slack", "live"]
        assert daemon.terminate()[0] == 0


def test_replay_url_posts_recorded_payloads_signed_to_a_running_daemon(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        daemon.verify_slack()
        files = [str(FIXTURES / f"{n}.json") for n in ("event_alert_fatal", "legacy_error")]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "eyetok.cli",
                "replay",
                "--url",
                daemon.url,
                "--secret",
                SECRET,
                *files,
            ],
            env=daemon.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        answers = [json.loads(line) for line in done.stdout.splitlines()]
        assert [a["status"] for a in answers] == [202, 202]
        assert [a["answer"]["rule"] for a in answers] == ["fatal", "default"]
        wrong = subprocess.run(
            [
                sys.executable,
                "-m",
                "eyetok.cli",
                "replay",
                "--url",
                daemon.url,
                "--secret",
                "x",
                *files[:1],
            ],
            env=daemon.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert wrong.returncode == 1
        assert json.loads(wrong.stdout)["status"] == 401
        opened = daemon.events("incident_opened")
        assert {line["incident_id"] for line in opened} == {
            a["answer"]["incident_id"] for a in answers
        }
        assert all(line["actor"] == "incidents" and line["tenant"] == "operator" for line in opened)
        assert daemon.terminate()[0] == 0


def test_new_means_new_to_eyetok_across_a_restart(tmp_path: Path, fake_slack: FakeSlack) -> None:
    # error_created does not say whether its issue is new (issue 13): the first time the
    # daemon sees it, it is new to EyeTok (high); once its incident was resolved, the
    # issue stays known for a while, after a restart too, and a recurrence is not "new".
    error, error_resource = _fixture("error_created")
    resolved_doc = json.loads((FIXTURES / "issue_resolved.json").read_text())
    resolved_doc["data"]["issue"]["id"] = "6120510093"  # error_created's issue
    resolved = json.dumps(resolved_doc).encode()
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        daemon.verify_slack()
        first = daemon.post_sentry(error, error_resource, SECRET).json()
        assert (first["action"], first["rule"], first["severity"]) == (
            "open",
            "error-new-unhandled-production",
            "high",
        )
        closed = daemon.post_sentry(resolved, "issue", SECRET).json()
        assert (closed["action"], closed["incident_id"]) == ("resolve", first["incident_id"])
        # A resolve for a key with nothing open: a resolve of nothing, and no post.
        nothing = daemon.post_sentry(resolved, "issue", SECRET).json()
        assert (nothing["action"], nothing["incident_id"]) == ("resolve", None)
        assert "nothing to resolve" in nothing["note"]
        assert "note" not in closed  # a resolve that closed something needs no note
        fake_slack.wait_for_posts(2)
        assert daemon.terminate()[0] == 0
    assert daemon.events("resolve_of_nothing_open")
    with DaemonProcess(tmp_path / "data", _env(fake_slack)) as daemon:
        again = daemon.post_sentry(error, error_resource, SECRET).json()
        assert again["action"] == "open"
        assert again["incident_id"] != first["incident_id"]
        assert (again["rule"], again["severity"], again["sev_channel"]) == (
            "default",
            "medium",
            "SEV3",
        )
        assert daemon.terminate()[0] == 0
    assert daemon.events("incidents_rehydrated")[0]["recently_resolved"] == 1
    assert len(fake_slack.posts) == 3  # open, resolve, the recurrence in SEV3
