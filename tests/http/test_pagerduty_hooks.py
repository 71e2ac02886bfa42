"""PagerDuty both ways, through the daemon's real HTTP surfaces: EyeTok pages PagerDuty
(Events API v2, the fake PagerDuty), a person acknowledges and then resolves the incident
in PagerDuty, and PagerDuty's signed v3 webhooks bring both back to EyeTok: the
incident, its Slack thread and first post, the audit and the Postgres mirror change
exactly as a Slack click changes them. A forged webhook changes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import trio

from eyetok.config import parse_file_config, settings_from
from harness.peers import pagerduty_webhooks as webhooks
from harness.peers.oauth import FakeOAuth
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.pg import query
from tests.verify import ROOT_TOKEN, verify_pagerduty_sync

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}
OAUTH_REDIRECT = "http://localhost/oauth/pagerduty/callback"
PD_WEBHOOK_SECRET = "pd-webhook-secret-for-tests"
TENEX = webhooks.PagerDutyUser(id="PLH1HKV", name="Tenex Engineer")


def pagerduty_loop_config(oauth: FakeOAuth, *, escalation: str = "") -> str:
    """The operator's SEV1 goes to Slack and PagerDuty; the tenant ``acme`` has no
    webhook secret configured."""
    return f"""
sinks:
  slack: {{type: slack}}
  pd:
    type: pagerduty
    routing_key_env: PD_ROUTING_KEY
    oauth_client_id: {oauth.client_id}
    oauth_authorize_url: {oauth.authorize_url}
    oauth_token_url: {oauth.token_url}
    oauth_redirect_uri: {OAUTH_REDIRECT}
tenants:
  operator:
    tier: operator
    pagerduty_webhook_secret_env: PD_WEBHOOK_SECRET
    policy:
      routes:
        SEV1: [{{sink: slack, target: "#raxx-ops-alert-SEV1"}}, {{sink: pd, target: operator}}]
    {escalation}
  acme: {{tier: team}}
"""


def pagerduty_loop_env(pd: FakePagerDuty) -> dict[str, str]:
    return {
        "PD_ROUTING_KEY": "R0UTINGKEY0000000000000000000000",
        "PAGERDUTY_EVENTS_URL": pd.events_url,
        "PD_WEBHOOK_SECRET": PD_WEBHOOK_SECRET,
    }


def test_the_readme_example_and_the_default_names_of_the_secret(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    [example] = [
        b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "pagerduty_webhook" in b
    ]
    settings = settings_from(parse_file_config(example), {"ACME_PD_WEBHOOK_SECRET": "s"})
    assert settings.tenants["acme"].pagerduty_webhook_secret == "s"
    defaults = daemon_settings(
        tmp_path,
        None,
        config="tenants: {operator: {tier: operator}, beta-2: {tier: team}}",
        PAGERDUTY_WEBHOOK_SECRET="op",
        PAGERDUTY_WEBHOOK_SECRET_BETA_2="b2",
    )
    assert defaults.tenants["operator"].pagerduty_webhook_secret == "op"
    assert defaults.tenants["beta-2"].pagerduty_webhook_secret == "b2"
    assert defaults.tenants["beta-2"].pagerduty_webhook_secret_env == (
        "PAGERDUTY_WEBHOOK_SECRET_BETA_2"
    )


async def _incident(client: httpx.AsyncClient, incident_id: str) -> dict[str, Any]:
    listed = await client.get("/api/v1/incidents", headers=AUTH)
    [found] = [i for i in listed.json()["incidents"] if i["incident_id"] == incident_id]
    return dict(found)


async def _mirrored(pg_dsn: str, incident_id: str, columns: str) -> tuple[Any, ...]:
    rows = await trio.to_thread.run_sync(
        lambda: query(
            pg_dsn,
            f"SELECT {columns} FROM incident_state WHERE incident_id = %s",
            (incident_id,),
        )
    )
    return tuple(rows[0]) if rows else ()


async def test_an_ack_and_a_resolve_made_in_pagerduty_reach_the_slack_thread(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, pg_dsn: str
) -> None:
    with FakePagerDuty() as fake_pd, FakeOAuth(redirect_uris=(OAUTH_REDIRECT,)) as oauth:
        settings = daemon_settings(
            tmp_path,
            fake_slack,
            config=pagerduty_loop_config(oauth),
            DATABASE_URL=pg_dsn,
            **pagerduty_loop_env(fake_pd),
        )
        daemon = await start_daemon(nursery, settings)
        base = f"http://127.0.0.1:{daemon.bound_port}"
        await trio.to_thread.run_sync(verify_pagerduty_sync, base, "pd", oauth)
        hook = f"{base}/hooks/pagerduty/operator"
        fake_pd.subscribe(hook, PD_WEBHOOK_SECRET)
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            body = fixture_body("event_alert_fatal")
            opened = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
            assert opened.status_code == 202, opened.text
            incident_id = opened.json()["incident_id"]
            [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
            [trigger] = await trio.to_thread.run_sync(fake_pd.wait_for, 1)
            assert trigger.event_action == "trigger"
            dedup = trigger.dedup_key
            assert dedup == f"eyetok:operator:{incident_id}"

            # a webhook signed with another secret, or for a tenant without one: nothing
            event = webhooks.incident_event(
                "incident.acknowledged",
                number=1,
                incident_key=dedup,
                status="acknowledged",
                title="x",
                agent=TENEX,
            )
            forged = await trio.to_thread.run_sync(
                lambda: webhooks.send(webhooks.Subscription(hook, ("not-the-secret",)), event)
            )
            assert forged.status == 401, forged.answer
            no_secret = await trio.to_thread.run_sync(
                lambda: webhooks.send(
                    webhooks.Subscription(f"{base}/hooks/pagerduty/acme", (PD_WEBHOOK_SECRET,)),
                    event,
                )
            )
            assert no_secret.status == 401
            assert "PAGERDUTY_WEBHOOK_SECRET_ACME" in no_secret.answer["error"]
            unknown_tenant = await client.post("/hooks/pagerduty/nobody", content=b"{}")
            assert unknown_tenant.status_code == 404
            assert (await _incident(client, incident_id))["status"] == "open"

            # Tenex acknowledges in PagerDuty: the signed webhook comes back
            [acked] = await trio.to_thread.run_sync(
                lambda: fake_pd.act_as(TENEX, "acknowledge", dedup)
            )
            assert acked.status == 200, acked.answer
            assert acked.answer["acted"] is True
            incident = await _incident(client, incident_id)
            by = "pagerduty:Tenex Engineer (PLH1HKV)"
            assert (incident["status"], incident["acknowledged_by"]) == ("acknowledged", by)
            assert incident["acknowledged_by_id"] == "pagerduty:PLH1HKV"
            [update] = await trio.to_thread.run_sync(
                lambda: fake_slack.wait_for_calls(1, method="chat.update")
            )
            assert update.body["ts"] == post.ts
            assert f"Acknowledged by {by}" in json.dumps(update.body["blocks"])
            [_, reply] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 2)
            assert reply.thread_ts == post.ts
            assert reply.text is not None
            assert reply.text.startswith(f"Acknowledged by {by}")

            # PagerDuty delivers at least once: a repeat changes nothing
            again = await trio.to_thread.run_sync(
                lambda: webhooks.send(webhooks.Subscription(hook, (PD_WEBHOOK_SECRET,)), event)
            )
            assert (again.status, again.answer["acted"]) == (200, False)
            assert "acknowledged already" in again.answer["reason"]
            # an event EyeTok does not act on is answered 2xx with the reason
            unacked = webhooks.incident_event(
                "incident.unacknowledged",
                number=1,
                incident_key=dedup,
                status="triggered",
                title="x",
                agent=None,
            )
            ignored = await trio.to_thread.run_sync(
                lambda: webhooks.send(webhooks.Subscription(hook, (PD_WEBHOOK_SECRET,)), unacked)
            )
            assert (ignored.status, ignored.answer["acted"]) == (200, False)
            malformed = await trio.to_thread.run_sync(
                lambda: webhooks.send(
                    webhooks.Subscription(hook, (PD_WEBHOOK_SECRET,)), {"not": "an event"}
                )
            )
            assert malformed.status == 400
            assert "a PagerDuty v3 webhook" in malformed.answer["error"]

            # Tenex resolves in PagerDuty: resolved here too, and said in the thread
            [resolved] = await trio.to_thread.run_sync(
                lambda: fake_pd.act_as(TENEX, "resolve", dedup)
            )
            assert (resolved.status, resolved.answer["acted"]) == (200, True)
            incident = await _incident(client, incident_id)
            assert (incident["status"], incident["resolved_by"]) == ("resolved", by)
            posts = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 3)
            assert posts[2].thread_ts == post.ts
            assert (posts[2].text or "").startswith(f"Resolved by {by}")

            async def mirrored() -> bool:
                row = await _mirrored(
                    pg_dsn, incident_id, "status, acknowledged_by, acknowledged_by_id, resolved_by"
                )
                return row == ("resolved", by, "pagerduty:PLH1HKV", by)

            await eventually(mirrored)
            audit = (await client.get("/api/v1/audit", headers=AUTH)).json()["audit"]
            decided = [
                (r["event"], r["detail"]) for r in audit if r.get("incident_id") == incident_id
            ]
            assert [e for e, _ in decided].count("incident_acknowledged") == 1
            assert [e for e, _ in decided].count("resolved_by_human") == 1
            assert all(
                by in d for e, d in decided if e in ("incident_acknowledged", "resolved_by_human")
            )
        # EyeTok told PagerDuty too (the same path as a Slack click): acknowledge, resolve
        actions = [e.event_action for e in fake_pd.events]
        assert actions[:1] == ["trigger"]
        assert "acknowledge" in actions
        assert "resolve" in actions
        daemon.request_stop()
