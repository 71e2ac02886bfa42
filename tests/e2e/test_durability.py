"""Nothing accepted is lost: kill -9 mid-stream, and SIGTERM under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import duckdb

from tests.conftest import SECRET
from tests.e2e.daemon import DaemonProcess
from tests.e2e.load import Stream
from tests.peers.slack import FakeSlack

FAST_SLACK = "sinks:\n  slack: {type: slack, rate_per_channel: 200}\n"


def _env(slack: FakeSlack, config: Path) -> dict[str, str]:
    config.write_text(FAST_SLACK)
    return {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_CONFIG": str(config),
    }


def _journalled(data_dir: Path) -> set[str]:
    con = duckdb.connect(str(data_dir / "history.duckdb"), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT signal_id FROM signals").fetchall()}
    finally:
        con.close()


def _posted_incidents(slack: FakeSlack) -> set[str]:
    return {
        word.strip("`")
        for post in slack.posts
        for word in str(post.blocks).split()
        if word.strip("`").startswith("inc_")
    }


def _wait_delivered(slack: FakeSlack, incidents: set[str], timeout: float) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        missing = incidents - _posted_incidents(slack)
        if not missing:
            return set()
        time.sleep(0.1)
    return incidents - _posted_incidents(slack)


def test_kill_9_mid_stream_loses_nothing_that_was_accepted(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.delay = 0.02  # a slow Slack: deliveries are in flight when the kill lands
    data = tmp_path / "data"
    env = _env(fake_slack, tmp_path / "eyetok.yaml")
    daemon = DaemonProcess(data, env).start().verify_slack()
    current = {"daemon": daemon}
    killed = threading.Event()

    def kill_at_one_hundred(_: int) -> None:
        if len(stream.accepted) >= 100 and not killed.is_set():
            killed.set()
            current["daemon"].kill()

    stream = Stream(url=lambda: current["daemon"].url, secret=SECRET, n=300, deadline_s=90)
    runner = threading.Thread(target=stream.run, args=(kill_at_one_hundred,))
    runner.start()
    assert killed.wait(60), "the stream never reached 100 accepted signals"
    restarted = DaemonProcess(data, env, port=daemon.port)
    restarted.start()
    current["daemon"] = restarted
    runner.join(120)
    assert not runner.is_alive()
    assert len(stream.accepted) == 300, f"refused: {stream.refused}"
    assert stream.failures > 0  # some posts hit the dead daemon and were retried

    incidents = {answer["incident_id"] for answer in stream.accepted.values()}
    missing = _wait_delivered(fake_slack, incidents, timeout=60)
    assert not missing, f"{len(missing)} accepted incidents never reached Slack"
    assert restarted.terminate()[0] == 0
    assert restarted.events("outbox_requeued") or restarted.events("delivery_sent")

    signal_ids = {answer["signal_id"] for answer in stream.accepted.values()}
    assert signal_ids <= _journalled(data), "a 202 was answered for a signal not journalled"


def test_sigterm_under_load_exits_0_in_time_and_loses_nothing(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.delay = 0.01
    data = tmp_path / "data"
    env = _env(fake_slack, tmp_path / "eyetok.yaml")
    daemon = DaemonProcess(data, env).start().verify_slack()
    current = {"daemon": daemon}
    stopping = threading.Lock()
    stopped = threading.Event()
    exit_status: dict[str, float] = {}

    def terminate_at_one_hundred(_: int) -> None:
        if len(stream.accepted) >= 100 and stopping.acquire(blocking=False):
            code, seconds = current["daemon"].terminate()
            exit_status.update(code=code, seconds=seconds)
            stopped.set()

    stream = Stream(url=lambda: current["daemon"].url, secret=SECRET, n=250, deadline_s=90)
    runner = threading.Thread(target=stream.run, args=(terminate_at_one_hundred,))
    runner.start()
    assert stopped.wait(60)
    assert exit_status["code"] == 0
    assert exit_status["seconds"] < 25
    assert daemon.events("drain_finished")
    restarted = DaemonProcess(data, env, port=daemon.port).start()
    current["daemon"] = restarted
    runner.join(120)
    assert len(stream.accepted) == 250, f"refused: {stream.refused}"
    # While draining, hooks said 503 (or the port was closed); nothing was half-accepted.
    assert set(stream.refused.values()) <= {503}
    incidents = {answer["incident_id"] for answer in stream.accepted.values()}
    assert not _wait_delivered(fake_slack, incidents, timeout=60)
    assert restarted.terminate()[0] == 0
    signal_ids = {answer["signal_id"] for answer in stream.accepted.values()}
    assert signal_ids <= _journalled(data)
