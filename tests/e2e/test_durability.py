"""Nothing accepted is lost: kill -9 mid-stream, and SIGTERM under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from harness.peers.slack import FakeSlack
from tests.conftest import SECRET
from tests.e2e.daemon import DaemonProcess
from tests.e2e.load import Stream, variant
from tests.peers.tcp_proxy import TcpProxy
from tests.pg import query

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


def _kill_9_at_one_hundred(
    daemon: DaemonProcess, restart: Callable[[], DaemonProcess]
) -> tuple[Stream, DaemonProcess]:
    """Stream 300 signed alerts at ``daemon``, kill -9 it once 100 are accepted, bring up
    ``restart()`` on the same port, and let the stream finish there: every one accepted,
    some only after a retry. The stream and the restarted daemon."""
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
    restarted = restart()
    current["daemon"] = restarted
    runner.join(120)
    assert not runner.is_alive()
    assert len(stream.accepted) == 300, f"refused: {stream.refused}"
    assert stream.failures > 0  # some posts hit the dead daemon and were retried
    return stream, restarted


def test_kill_9_mid_stream_loses_nothing_that_was_accepted(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    fake_slack.delay = 0.02  # a slow Slack: deliveries are in flight when the kill lands
    data = tmp_path / "data"
    env = _env(fake_slack, tmp_path / "eyetok.yaml")
    daemon = DaemonProcess(data, env).start().verify_slack()
    stream, restarted = _kill_9_at_one_hundred(
        daemon, lambda: DaemonProcess(data, env, port=daemon.port).start()
    )

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


# --- postgres durability: a dyno whose disk dies with it -------------------------------


def _posts_per_incident(slack: FakeSlack, incidents: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for post in slack.posts:
        if post.thread_ts:
            continue
        for word in str(post.blocks).split():
            incident = word.strip("`")
            if incident in incidents:
                counts[incident] = counts.get(incident, 0) + 1
                break
    return counts


def test_kill_9_then_a_fresh_dyno_delivers_every_202(
    tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    """``DYNO`` set: postgres durability by default. kill -9 mid-stream, restart on a NEW,
    EMPTY data directory with the same Postgres: every 202 reaches Slack at least once."""
    fake_slack.delay = 0.02  # deliveries are in flight when the kill lands
    env = {**_env(fake_slack, tmp_path / "eyetok.yaml"), "DATABASE_URL": pg_dsn, "DYNO": "web.1"}
    daemon = DaemonProcess(tmp_path / "dyno-1", env).start().verify_slack()
    [starting] = daemon.events("eyetok_starting")
    assert starting["durability"] == "postgres"
    stream, fresh = _kill_9_at_one_hundred(
        daemon,  # the fresh dyno's disk is gone: a new, empty data directory
        lambda: DaemonProcess(tmp_path / "dyno-2", env, port=daemon.port).start(timeout=30),
    )
    assert fresh.events("rehydrated_from_postgres")

    incidents = {answer["incident_id"] for answer in stream.accepted.values()}
    missing = _wait_delivered(fake_slack, incidents, timeout=60)
    assert not missing, f"{len(missing)} of {len(incidents)} accepted incidents never reached Slack"
    duplicates = {i: n for i, n in _posts_per_incident(fake_slack, incidents).items() if n > 1}
    print(f"fresh dyno: {len(incidents)} delivered, 0 lost, {len(duplicates)} duplicated")
    assert fresh.terminate()[0] == 0


def _readyz(daemon: DaemonProcess) -> tuple[int, dict[str, object]]:
    response = httpx.get(daemon.url + "/readyz", timeout=5.0)
    body: dict[str, object] = response.json()
    return response.status_code, body


def _post(daemon: DaemonProcess, n: int) -> httpx.Response:
    return daemon.post_sentry(variant(n), "event_alert", SECRET)


def _until(what: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return what()


def test_postgres_unreachable_in_postgres_mode_is_a_503_and_readyz_says_why(
    tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    info = conninfo_to_dict(pg_dsn)
    with TcpProxy(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))) as proxy:
        env = {
            **_env(fake_slack, tmp_path / "eyetok.yaml"),
            "DATABASE_URL": make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port),
            "EYETOK_DURABILITY": "postgres",
        }
        with DaemonProcess(tmp_path / "data", env) as daemon:
            assert _post(daemon, 1).status_code == 202

            proxy.cut()  # Postgres is gone, as far as EyeTok can tell
            refused = _post(daemon, 2)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) > 0
            assert "postgres" in refused.json()["error"]
            status, ready = _readyz(daemon)
            assert status == 503
            durability = ready["durability"]
            assert isinstance(durability, dict)
            assert durability["mode"] == "postgres"
            assert "postgres" in str(durability["why_not_accepting"])
            assert daemon.events("signal_refused")

            proxy.restore()  # ingest resumes by itself
            assert _until(lambda: _readyz(daemon)[0] == 200), _readyz(daemon)
            again = _post(daemon, 2)
            assert again.status_code == 202, again.text
            rows = query(
                pg_dsn,
                "SELECT count(*) FROM incident_state WHERE incident_id = %s",
                (again.json()["incident_id"],),
            )
            assert rows == [(1,)]  # committed before the 202


def test_a_fresh_dyno_accepts_nothing_until_postgres_can_restore_it(
    tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    with TcpProxy("127.0.0.1", int(conninfo_to_dict(pg_dsn).get("port", 5432))) as proxy:
        proxy.cut()
        env = {
            **_env(fake_slack, tmp_path / "eyetok.yaml"),
            "DATABASE_URL": make_conninfo(pg_dsn, host="127.0.0.1", port=proxy.port),
            "EYETOK_DURABILITY": "postgres",
        }
        daemon = DaemonProcess(tmp_path / "data", env).start(until="/healthz")
        try:
            assert _until(lambda: bool(daemon.events("rehydration_failed")))
            refused = _post(daemon, 1)
            assert refused.status_code == 503, refused.text
            assert "restored from Postgres" in refused.json()["error"]
            status, ready = _readyz(daemon)
            assert status == 503
            assert "restored from Postgres" in str(ready["durability"])

            proxy.restore()
            assert _until(lambda: _readyz(daemon)[0] == 200), _readyz(daemon)
            assert daemon.events("rehydrated_from_postgres")
            assert _post(daemon, 1).status_code == 202
        finally:
            assert daemon.terminate()[0] == 0
