"""Issue 12's "done means", through ``eyetok run`` as a subprocess on a Heroku-style dyno
(``DYNO`` set: Postgres durability, a disk that does not survive): a SEV1 is posted to
Slack and paged to PagerDuty; nobody acknowledges; the re-notification comes (2 s); the
dyno is killed (-9) and comes back on a FRESH data directory with the same Postgres; the
escalation to the secondary comes once (6 s: room for the kill on a busy machine) and
the re-notification is not repeated; killed again and restarted, nothing repeats; then
the on-call acknowledges in PagerDuty and PagerDuty's signed v3 webhook closes the loop:
the incident is acknowledged by that person, the first Slack post is rewritten and the
thread says so, and nothing more is sent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from harness.peers.oauth import FakeOAuth
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.slack import FakeSlack
from harness.peers.slack_records import SlackPost
from tests.conftest import FIXTURES, SECRET
from tests.e2e.daemon import DaemonProcess
from tests.http.test_pagerduty_hooks import (
    OAUTH_REDIRECT,
    TENEX,
    pagerduty_loop_config,
    pagerduty_loop_env,
)
from tests.pg import query
from tests.verify import ROOT_TOKEN, verify_pagerduty_sync

ESCALATION = 'escalation: {ack_renotify_s: 2, ack_escalate_s: 6, secondary: {sink: slack, target: "#oncall-secondary"}}'  # noqa: E501
WAIT_S = 30.0


@pytest.fixture
def fake_pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as peer:
        yield peer


@pytest.fixture
def fake_oauth() -> Iterator[FakeOAuth]:
    with FakeOAuth(redirect_uris=(OAUTH_REDIRECT,)) as peer:
        yield peer


def _until(what: str, test: Callable[[], bool], within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not test():
        assert time.monotonic() < deadline, f"not within {within}s: {what}"
        time.sleep(0.05)


def _renotified(slack: FakeSlack) -> list[SlackPost]:
    return [p for p in slack.posts if (p.text or "").startswith("<@U0ONCALL> Not acknowledged")]


def _secondary(slack: FakeSlack) -> list[SlackPost]:
    return [p for p in slack.posts if p.channel == "oncall-secondary"]


def _snapshot(pg_dsn: str, incident_id: str) -> dict[str, object]:
    rows = query(
        pg_dsn, "SELECT snapshot::text FROM incident_state WHERE incident_id = %s", (incident_id,)
    )
    return json.loads(rows[0][0]) if rows else {}


def _deliverable(daemon: DaemonProcess) -> set[str]:
    listed = httpx.get(
        daemon.url + "/api/v1/sinks", headers={"authorization": f"Bearer {ROOT_TOKEN}"}
    )
    return {s["sink_id"] for s in listed.json()["sinks"] if s["deliverable"]}


def _incidents(daemon: DaemonProcess) -> list[dict[str, object]]:
    listed = subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "incidents", "--json", "--url", daemon.url],
        env=daemon.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in listed.stdout.splitlines()]


def test_a_sev1_nobody_acks_renotifies_escalates_across_dynos_then_pagerduty_acks_it(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_pd: FakePagerDuty,
    fake_oauth: FakeOAuth,
    pg_dsn: str,
) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text(pagerduty_loop_config(fake_oauth, escalation=ESCALATION))
    env = {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.base_url,
        "EYETOK_ONCALL_SLACK_USER": "U0ONCALL",
        "EYETOK_CONFIG": str(config),
        "DATABASE_URL": pg_dsn,
        "DYNO": "web.1",
        **pagerduty_loop_env(fake_pd),
    }

    # dyno 1: the SEV1 is posted and paged; nobody acks; the re-notification comes
    with DaemonProcess(tmp_path / "dyno-1", env) as daemon:
        daemon.verify_slack()
        verify_pagerduty_sync(daemon.url, "pd", fake_oauth)
        body = (FIXTURES / "event_alert_fatal.json").read_bytes()
        answer = daemon.post_sentry(body, "event_alert", SECRET)
        assert answer.status_code == 202, answer.text
        assert answer.json()["sev_channel"] == "SEV1"
        incident_id = str(answer.json()["incident_id"])
        _until("the re-notification", lambda: bool(_renotified(fake_slack)))
        _until(
            "the re-notification in Postgres",
            lambda: bool(_snapshot(pg_dsn, incident_id).get("renotified_at")),
        )
        _until("PagerDuty re-paged", lambda: len(fake_pd.events) == 2)
        assert _secondary(fake_slack) == []
        daemon.kill()  # kill -9 between the re-notification and the escalation
    [top] = [p for p in fake_slack.posts if p.channel == "raxx-ops-alert-SEV1" and not p.thread_ts]
    [renotify] = _renotified(fake_slack)
    assert renotify.thread_ts == top.ts
    dedup = f"eyetok:operator:{incident_id}"
    assert [e.event_action for e in fake_pd.events] == ["trigger", "trigger"]  # paged, re-paged
    assert {e.dedup_key for e in fake_pd.events} == {dedup}

    # dyno 2, a fresh data directory, the same Postgres: the escalation, once
    with DaemonProcess(tmp_path / "dyno-2", env) as daemon:
        assert _deliverable(daemon) == {"slack", "pd"}  # the handshakes came back too
        _until("the escalation", lambda: bool(_secondary(fake_slack)))
        _until(
            "the escalation in Postgres",
            lambda: bool(_snapshot(pg_dsn, incident_id).get("escalated_at")),
        )
        daemon.kill()
    # dyno 3, the same directory as dyno 2: nothing repeats
    with DaemonProcess(tmp_path / "dyno-2", env) as daemon:
        time.sleep(1.5)  # a repeated step would show by now
        assert len(_renotified(fake_slack)) == 1
        assert len(_secondary(fake_slack)) == 1
        assert "Escalated to you" in json.dumps(_secondary(fake_slack)[0].blocks)
        [row] = _incidents(daemon)
        assert row["status"] == "open"  # nothing acts on a SEV1 by itself
        posts_before = len(fake_slack.posts)

        # the on-call acknowledges in PagerDuty; the signed v3 webhook closes the loop
        fake_pd.subscribe(daemon.url + "/hooks/pagerduty/operator", "pd-webhook-secret-for-tests")
        [sent] = fake_pd.act_as(TENEX, "acknowledge", dedup)
        assert sent.status == 200, sent.answer
        assert sent.answer["acted"] is True
        by = "pagerduty:Tenex Engineer (PLH1HKV)"
        [row] = _incidents(daemon)
        assert (row["status"], row["acknowledged_by"]) == ("acknowledged", by)
        [update] = fake_slack.wait_for_calls(1, method="chat.update")
        assert update.body["ts"] == top.ts
        assert f"Acknowledged by {by}" in json.dumps(update.body["blocks"])
        posts = fake_slack.wait_for_posts(posts_before + 1)
        assert posts[-1].thread_ts == top.ts
        assert (posts[-1].text or "").startswith(f"Acknowledged by {by}")
        _until(
            "the acknowledgement in Postgres",
            lambda: (
                query(
                    pg_dsn,
                    "SELECT acknowledged_by, acknowledged_by_id FROM incident_state "
                    "WHERE incident_id = %s",
                    (incident_id,),
                )
                == [(by, "pagerduty:PLH1HKV")]
            ),
        )
        _until("PagerDuty told", lambda: "acknowledge" in [e.event_action for e in fake_pd.events])
        time.sleep(1.0)  # nothing more follows an acknowledgement
        assert len(fake_slack.posts) == posts_before + 1
        assert len(_secondary(fake_slack)) == 1
        assert daemon.events("pagerduty_decision_applied")
        assert daemon.terminate()[0] == 0
