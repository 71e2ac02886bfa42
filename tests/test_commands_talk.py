"""Commands that talk: a refused option value, a start-up failure or an empty answer is
one readable line, never silence or a traceback."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trio

from eyetok.onboarding import SLACK_BOT_SCOPES
from harness.peers.slack import FakeSlack
from tests.conftest import FIXTURES, SECRET, daemon_settings, start_daemon
from tests.verify import ROOT_TOKEN

_CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("EYETOK_", "SLACK_"))}


async def _eyetok(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    done = await trio.run_process(
        [sys.executable, "-m", "eyetok.cli", *argv],
        env=_CLEAN_ENV | (env or {}),
        cwd=cwd,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        stdin=b"",
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_an_unknown_tail_severity_is_refused_naming_the_choices() -> None:
    code, _, err = await _eyetok("tail", "--severity", "bogus")
    assert code == 2
    assert "'bogus' is none of: critical, high, medium, low, info, SEV1" in err


async def test_an_unknown_log_level_stops_start_up_in_one_line(tmp_path: Path) -> None:
    code, out, _ = await _eyetok("doctor", env={"EYETOK_LOG_LEVEL": "loud"}, cwd=tmp_path)
    assert code == 2
    [line] = out.splitlines()
    assert json.loads(line) == {
        "event": "config_invalid",
        "field": "EYETOK_LOG_LEVEL",
        "error": "config EYETOK_LOG_LEVEL: 'loud' is not a log level "
        "(one of: debug, info, warning, error)",
    }


async def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with trio.fail_after(60):
            code, out, err = await _eyetok(
                "run",
                "--host",
                "127.0.0.1",
                env={"PORT": str(port), "EYETOK_DATA_DIR": str(tmp_path / "data")},
            )
    assert code == 2, out + err
    assert "Traceback" not in out + err
    failed = [json.loads(line) for line in out.splitlines() if "startup_failed" in line]
    assert len(failed) == 1
    assert failed[0]["reason"] == f"port {port} on 127.0.0.1 is already in use by another process"
    assert failed[0]["fix"] == "stop that process or set PORT to a free port"


async def test_a_data_dir_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    code, out, err = await _eyetok("run", env={"EYETOK_DATA_DIR": str(blocker / "data")})
    assert code == 2
    assert err == ""
    [line] = out.splitlines()
    failed = json.loads(line)
    assert failed["event"] == "startup_failed"
    assert failed["reason"] == f"{blocker / 'data'} cannot be created: {blocker} is not a directory"
    assert "EYETOK_DATA_DIR" in failed["fix"]


class _NotEyeTok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_eyetok() -> Iterator[str]:
    """A local web server that is not EyeTok (it answers HTML)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotEyeTok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", ["sinks", "suppressions", "budgets", "review"])
async def test_an_operator_command_pointed_at_something_else_says_so(
    not_eyetok: str, command: str
) -> None:
    env = {"EYETOK_ROOT_TOKEN": ROOT_TOKEN}
    code, out, err = await _eyetok(command, "--url", not_eyetok, env=env)
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"eyetok: {not_eyetok}/api/v1/")
    assert line.endswith("not as EyeTok does: is --url pointing at EyeTok?")
    code, out, err = await _eyetok(command, "--url", not_eyetok, "--json", env=env)
    assert code == 1
    assert "is --url pointing at EyeTok?" in json.loads(out)["error"]


async def test_operator_errors_are_one_readable_line(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path / "data", fake_slack))
    url = f"http://127.0.0.1:{daemon.bound_port}"
    code, out, err = await _eyetok("sinks", "--url", url, env={"EYETOK_ROOT_TOKEN": "wrong"})
    assert (code, out) == (1, "")
    assert err == "eyetok: HTTP 401 from /api/v1/sinks: a root token is required\n"
    code, out, err = await _eyetok(
        "suppressions", "--url", url, "--ack", "clu_nope", env={"EYETOK_ROOT_TOKEN": ROOT_TOKEN}
    )
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("eyetok: HTTP 404 from /api/v1/suppressions/clu_nope/ack: ")
    code, out, err = await _eyetok("budgets", "--url", url)
    assert code == 2
    assert err == "eyetok: EYETOK_ROOT_TOKEN is not set (the daemon's root token)\n"
    daemon.request_stop()


async def test_an_empty_answer_says_so(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path / "data", fake_slack))
    url = f"http://127.0.0.1:{daemon.bound_port}"
    env = {"EYETOK_ROOT_TOKEN": ROOT_TOKEN}
    code, out, _ = await _eyetok("suppressions", "--url", url, env=env)
    assert (code, out) == (
        0,
        "No suppression clusters: no registry-wide outage has been collapsed.\n",
    )
    code, out, _ = await _eyetok("budgets", "--url", url, env=env)
    assert (code, out) == (0, "No tenant has been paged this hour.\n")
    code, out, _ = await _eyetok("suppressions", "--url", url, "--json", env=env)
    assert (code, out) == (0, "")  # --json: one object per row, and there are none
    daemon.request_stop()


async def test_a_sentry_hook_without_a_secret_names_the_variable(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(
        tmp_path / "data", fake_slack, SENTRY_CLIENT_SECRET="", EYETOK_ROOT_TOKEN=""
    )
    daemon = await start_daemon(nursery, settings, verify=())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as client:
        hook = await client.post("/hooks/sentry", content=b"{}")
        api = await client.get("/api/v1/sinks")
        ready = (await client.get("/readyz")).json()
    assert hook.status_code == 401
    assert hook.json()["error"] == (
        "no Sentry client secret is configured for tenant 'operator': set "
        "SENTRY_CLIENT_SECRET and restart EyeTok"
    )
    assert api.status_code == 503
    assert "EYETOK_ROOT_TOKEN" in api.json()["error"]
    setup = ready["setup"]
    assert setup["main_job_ready"] is False
    assert "SENTRY_CLIENT_SECRET" in setup["missing"]["sentry-ingest:operator"]
    assert "EYETOK_ROOT_TOKEN" in setup["missing"]["operator-api"]
    daemon.request_stop()


async def test_verify_says_what_to_do_and_stops_waiting_in_words(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path / "data", fake_slack)
    daemon = await start_daemon(nursery, settings, verify=())
    url = f"http://127.0.0.1:{daemon.bound_port}"
    env = {"EYETOK_ROOT_TOKEN": ROOT_TOKEN, "EYETOK_PUBLIC_URL": "https://eyetok.example.com"}
    code, out, err = await _eyetok("verify", "slack", "--url", url, "--wait", "1", env=env)
    assert code == 1, err
    lines = out.splitlines()
    assert lines[0] == "Started the ownership handshake of Slack sink 'slack'. Three steps:"
    assert "Request URL must be https://eyetok.example.com/slack/events" in out
    scopes = lines[lines.index(next(x for x in lines if "bot scopes" in x)) + 1]
    assert tuple(scopes.strip().split(", ")) == SLACK_BOT_SCOPES  # the manifest's (test_deploy)
    assert "Waiting up to 1 s for the handshake to pass (Ctrl-C stops waiting)." in lines
    assert any(line.startswith("  ... slack is pending (") for line in lines)
    assert lines[-1].startswith("slack: still pending after 1 s: stopped waiting.")
    code, out, _ = await _eyetok("verify", "slack", "--url", url, "--no-wait", env=env)
    assert code == 0
    assert "Waiting" not in out
    code, out, err = await _eyetok("verify", "nope", "--url", url, env=env)
    assert (code, out) == (1, "")
    assert err == "eyetok: nope: no sink named 'nope'\n"
    daemon.request_stop()


async def test_replay_to_a_daemon_signs_with_the_secret_from_the_environment(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path / "data", fake_slack))
    url = f"http://127.0.0.1:{daemon.bound_port}"
    fixture = str(FIXTURES / "event_alert_warning.json")
    code, out, _ = await _eyetok(
        "replay", "--url", url, fixture, env={"SENTRY_CLIENT_SECRET": SECRET}
    )
    assert code == 0, out
    assert json.loads(out)["status"] == 202
    code, out, _ = await _eyetok("replay", "--url", url, fixture)
    assert code == 2
    assert json.loads(out)["error"] == (
        "--url needs the tenant's Sentry client secret: set SENTRY_CLIENT_SECRET or pass --secret"
    )
    daemon.request_stop()
