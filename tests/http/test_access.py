"""Who may do what, against the daemon running in-process: each role refused and allowed,
the root token and a root_operator session refused a tenant's incident and sinks, hat
switches over the API and the /eyetok slash command, and a routing change that waits for
a second person (the proposer cannot approve it) and survives a restart."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import trio
import yaml

from actors.daemon import Daemon
from actors.sinks.slack.render import ACKNOWLEDGE_ACTION
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, fixture_body, signed_headers, start_daemon
from tests.http.test_slack_interactions import _signed
from tests.verify import ROOT_TOKEN, tenant_slack_token

ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
CONFIG = """
sinks:
  slack: {type: slack}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
tenants:
  acme:
    tier: team
    policy: {routes: {SEV1: [{sink: acme-slack, target: "#acme-pager"}]}}
people:
  - slack_user_id: U0ALICE
    name: Alice (founder)
    roles:
      - {role: root_operator}
      - {role: tenant_scoped_operator, tenant: acme}
      - {role: alert_rule_reviewer}
  - slack_user_id: U0BOB
    roles: [{role: alert_rule_reviewer}]
  - slack_user_id: U0CAROL
    roles: [{role: responder}]
  - slack_user_id: U0VIC
    email: vic@example.com
    roles: [{role: viewer}]
"""
TSO = "tenant_scoped_operator"
NEW_ROUTES = {"routes": {"SEV1": [{"sink": "acme-slack", "target": "#acme-war-room"}]}}


async def start(nursery: trio.Nursery, data: Path, slack: FakeSlack) -> Daemon:
    settings = daemon_settings(
        data, slack, config=CONFIG, ACME_SLACK_TOKEN=tenant_slack_token(slack, "acme")
    )
    return await start_daemon(nursery, settings)


@asynccontextmanager
async def running(
    nursery: trio.Nursery, data: Path, slack: FakeSlack
) -> AsyncIterator[tuple[Daemon, httpx.AsyncClient]]:
    """The daemon on ``data`` and a client of its API; the daemon stops at the end."""
    daemon = await start(nursery, data, slack)
    try:
        url = f"http://127.0.0.1:{daemon.bound_port}"
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
            yield daemon, api
    finally:
        daemon.request_stop()


async def token_of(api: httpx.AsyncClient, person: str) -> dict[str, str]:
    issued = await api.post(f"/api/v1/people/{person}/tokens", headers=ROOT)
    assert issued.status_code == 201, issued.text
    return {"authorization": f"Bearer {issued.json()['token']}"}


async def audit(daemon: Daemon, event: str) -> list[str]:
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    assert daemon.store is not None
    rows = await daemon.store.read(
        lambda con: con.execute(
            "SELECT detail FROM audit_log WHERE event = ? ORDER BY logged_at", [event]
        ).fetchall()
    )
    return [str(r[0]) for r in rows]


async def open_sev1(api: httpx.AsyncClient) -> str:
    body = fixture_body("event_alert_fatal")
    opened = await api.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert opened.status_code == 202, opened.text
    incident_id = opened.json()["incident_id"]
    assert isinstance(incident_id, str)
    return incident_id


async def switch(
    api: httpx.AsyncClient, who: dict[str, str], role: str, why: str, **more: Any
) -> httpx.Response:
    return await api.post(
        "/api/v1/role/switch", json={"role": role, "for": "8h", "why": why, **more}, headers=who
    )


async def test_each_role_is_refused_and_allowed(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        vic, carol, bob, alice = [
            await token_of(api, p) for p in ("U0VIC", "U0CAROL", "U0BOB", "U0ALICE")
        ]
        incident_id = await open_sev1(api)

        # viewer: reads, may not acknowledge
        assert (await api.get("/api/v1/people", headers=vic)).status_code == 200
        refused = await api.post(f"/api/v1/incidents/{incident_id}/ack", headers=vic)
        assert refused.status_code == 403
        assert refused.json()["needed_role"] == "responder"
        assert "needs the role responder or tenant_scoped_operator" in refused.json()["error"]
        # no credential at all
        assert (await api.get("/api/v1/people")).status_code == 401

        # a responder bound to all tenants reads every incident; Dave, bound to acme, acme's
        assert (await api.get("/api/v1/incidents", headers=carol)).status_code == 200
        # responder: acknowledges, as themselves whatever the body says
        acked = await api.post(
            f"/api/v1/incidents/{incident_id}/ack", json={"by": "someone else"}, headers=carol
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["incident"]["acknowledged_by"] == "person:U0CAROL as responder"

        # tenant_scoped_operator held but not worn: refused, told how to switch
        put_sink = await api.put(
            "/api/v1/tenants/acme/sinks/acme.hook",
            json={"type": "slack", "token_env": "ACME_SLACK_TOKEN"},
            headers=alice,
        )
        assert put_sink.status_code == 403
        assert put_sink.json()["needed_role"] == "tenant_scoped_operator"
        assert "eyetok role switch tenant_scoped_operator --tenant acme" in put_sink.json()["error"]

        # alert_rule_reviewer: only a reviewer reviews
        assert (await api.get("/api/v1/changes", headers=bob)).status_code == 200
        not_reviewer = await api.post(
            "/api/v1/changes/chg_000000000000/approve",
            json={"why": "looks right to me"},
            headers=carol,
        )
        assert not_reviewer.status_code == 403
        assert not_reviewer.json()["needed_role"] == "alert_rule_reviewer"
        missing = await api.post(
            "/api/v1/changes/chg_000000000000/approve",
            json={"why": "looks right to me"},
            headers=bob,
        )
        assert missing.status_code == 404

        # root_operator: binds roles (and so does the root token, for automation)
        bind = "/api/v1/people/U0DAVE/roles/responder?tenant=acme"
        not_root = await api.put(bind, headers=bob)
        assert not_root.status_code == 403
        assert not_root.json()["needed_role"] == "root_operator"
        worn = await switch(api, alice, "root_operator", "onboard Dave to the rota")
        assert worn.status_code == 200, worn.text
        # operator paths: reading needs a role, anything else root_operator (worn)
        assert (await api.get("/api/v1/budgets", headers=vic)).status_code == 200
        verify = "/api/v1/sinks/nope/verification"
        by_viewer = await api.post(verify, headers=vic)
        assert by_viewer.status_code == 403
        assert by_viewer.json()["needed_role"] == "root_operator"
        by_root_hat = await api.post(verify, headers=alice)
        assert by_root_hat.status_code == 404  # past the gate: there is no such sink
        # a cluster's notice spans tenants: a responder to every tenant acknowledges it
        cluster_ack = "/api/v1/suppressions/cl_none/ack"
        assert (await api.post(cluster_ack, headers=vic)).json()["needed_role"] == "responder"
        assert (await api.post(cluster_ack, headers=carol)).status_code == 404  # no such cluster
        as_root = await api.post(cluster_ack, headers=alice)
        assert as_root.status_code == 403
        assert "root_operator session is refused" in as_root.json()["error"]
        for wrong, status in [
            ("/api/v1/people/dave/roles/responder", 400),
            ("/api/v1/people/U0DAVE/roles/janitor", 400),
            ("/api/v1/people/U0DAVE/roles/responder?tenant=nope", 404),
            ("/api/v1/people/U0DAVE/roles/tenant_scoped_operator", 400),
        ]:
            assert (await api.put(wrong, headers=alice)).status_code == status, wrong
        bound = await api.put(bind, headers=alice)
        assert bound.status_code == 200, bound.text
        assert (await audit(daemon, "role_bound"))[-1] == (
            "responder for acme to U0DAVE by person:U0ALICE as root_operator"
        )
        assert "viewer to U0VIC by the configuration" in await audit(daemon, "role_bound")
        dave = await token_of(api, "U0DAVE")
        acme_only = "/api/v1/incidents"
        assert (await api.get(acme_only, params={"tenant": "acme"}, headers=dave)).is_success
        everyone = await api.get(acme_only, headers=dave)
        assert everyone.status_code == 403
        assert everyone.json()["needed_role"] == "viewer"
        unbound = await api.delete(bind, headers=ROOT)
        assert unbound.status_code == 200
        assert await audit(daemon, "role_unbound") == ["responder for acme from U0DAVE by root"]
        refusals = await audit(daemon, "access_refused")
        assert any("person U0VIC: acknowledge" in line for line in refusals)


async def test_root_is_refused_a_tenant_action_until_the_hat_is_switched(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        alice = await token_of(api, "U0ALICE")
        incident_id = await open_sev1(api)
        mute = {"type": "slack", "token_env": "ACME_SLACK_TOKEN"}

        # the root token: automation, refused tenant-scoped actions
        by_root = await api.post(
            f"/api/v1/incidents/{incident_id}/ack", json={"by": "cron"}, headers=ROOT
        )
        assert by_root.status_code == 403
        assert "root token is for automation" in by_root.json()["error"]
        root_sink = await api.put("/api/v1/tenants/acme/sinks/acme.x", json=mute, headers=ROOT)
        assert root_sink.status_code == 403
        assert (await api.get("/api/v1/sinks", headers=ROOT)).status_code == 200  # operator-wide

        # a root_operator session: refused too, told to switch hats
        assert (await switch(api, alice, "root_operator", "fix")).status_code == 400  # one word
        assert (await switch(api, alice, "root_operator", "fix the acme pager")).status_code == 200
        as_root = await api.post(f"/api/v1/incidents/{incident_id}/ack", headers=alice)
        assert as_root.status_code == 403
        assert "root_operator session is refused" in as_root.json()["error"]
        assert as_root.json()["needed_role"] == "tenant_scoped_operator"

        # the founder switches hats; the root hat is taken off, audited
        worn = await switch(
            api, alice, "tenant_scoped_operator", "fix the acme pager", tenant="acme"
        )
        assert worn.status_code == 200, worn.text
        written = await api.put("/api/v1/tenants/acme/sinks/acme.x", json=mute, headers=alice)
        assert written.status_code == 201, written.text
        assert (await audit(daemon, "tenant_sink_written")) == [
            "acme.x (slack) by person:U0ALICE as tenant_scoped_operator"
        ]
        switched = await audit(daemon, "hat_switched")
        assert len(switched) == 2
        assert "wears tenant_scoped_operator for acme until" in switched[1]
        [ended] = await audit(daemon, "hat_ended")
        assert "took off root_operator" in ended
        assert "replaced by hat_" in ended
        # the hat is acme's; this SEV1 is the operator tenant's
        other = await api.post(f"/api/v1/incidents/{incident_id}/ack", headers=alice)
        assert other.status_code == 403
        assert other.json()["needed_role"] == "responder"


async def test_a_rule_change_waits_for_a_second_person(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    data = tmp_path / "data"
    async with running(nursery, data, fake_slack) as (daemon, api):
        alice, bob = await token_of(api, "U0ALICE"), await token_of(api, "U0BOB")
        await switch(api, alice, "tenant_scoped_operator", "move acme pages", tenant="acme")
        unexplained = await api.put("/api/v1/tenants/acme/routes", json=NEW_ROUTES, headers=alice)
        assert unexplained.status_code == 400
        assert unexplained.json()["field"] == "why"
        proposed = await api.put(
            "/api/v1/tenants/acme/routes",
            json={**NEW_ROUTES, "why": "acme moved its on-call to the war room"},
            headers=alice,
        )
        assert proposed.status_code == 202, proposed.text
        change = proposed.json()["change"]
        assert change["status"] == "pending"
        assert '-      "target": "#acme-pager"' in change["diff"]
        assert '+      "target": "#acme-war-room"' in change["diff"]
        live = await api.get("/api/v1/tenants/acme/routes", headers=alice)
        assert live.json()["routes"]["SEV1"][0]["target"] == "#acme-pager"  # not yet
    await trio.sleep(1.0)

    # restarted: pending proposals survive
    async with running(nursery, data, fake_slack) as (daemon, api):
        alice, bob = await token_of(api, "U0ALICE"), await token_of(api, "U0BOB")
        pending = await api.get("/api/v1/changes", params={"status": "pending"}, headers=bob)
        assert [c["change_id"] for c in pending.json()["changes"]] == [change["change_id"]]
        approve = f"/api/v1/changes/{change['change_id']}/approve"
        own = await api.post(approve, json={"why": "I wrote it so it is right"}, headers=alice)
        assert own.status_code == 403
        assert "two-person rule" in own.json()["error"]
        curt = await api.post(approve, json={"why": "lgtm"}, headers=bob)
        assert curt.status_code == 400
        approved = await api.post(
            approve, json={"why": "matches the acme on-call page"}, headers=bob
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["change"]["status"] == "applied"
        live = await api.get("/api/v1/tenants/acme/routes", headers=bob)
        assert live.json()["routes"]["SEV1"][0]["target"] == "#acme-war-room"
        [proposed_line] = await audit(daemon, "change_proposed")
        assert "by person:U0ALICE" in proposed_line
        assert '+      "target": "#acme-war-room"' in proposed_line
        [approved_line] = await audit(daemon, "change_approved")
        assert "proposed by person:U0ALICE, approved by person:U0BOB" in approved_line
        [written] = await audit(daemon, "tenant_routes_written")
        assert f"review:person:U0ALICE+person:U0BOB ({change['change_id']})" in written
        again = await api.post(approve, json={"why": "approve it once more"}, headers=bob)
        assert again.status_code == 409

        # a tenant's own token (its automation) proposes too; a reviewer rejects it
        issued = await api.post(
            "/api/v1/tenants/acme/tokens", json={"label": "acme ci"}, headers=ROOT
        )
        assert issued.status_code == 201, issued.text
        acme_ci = {"authorization": f"Bearer {issued.json()['token']}"}
        by_token = await api.put(
            "/api/v1/tenants/acme/routes",
            json={
                "routes": {"SEV1": [{"sink": "acme-slack", "target": "#acme-pager"}]},
                "why": "the ci pipeline moves pages back",
            },
            headers=acme_ci,
        )
        assert by_token.status_code == 202, by_token.text
        token_change = by_token.json()["change"]
        assert token_change["proposed_by"] == f"token:{issued.json()['token_id']}"
        rejected = await api.post(
            f"/api/v1/changes/{token_change['change_id']}/reject",
            json={"why": "the war room stays for now"},
            headers=bob,
        )
        assert rejected.json()["change"]["status"] == "rejected"
        [rejected_line] = await audit(daemon, "change_rejected")
        assert "rejected by person:U0BOB: the war room stays for now" in rejected_line
        live = await api.get("/api/v1/tenants/acme/routes", headers=acme_ci)
        assert live.json()["routes"]["SEV1"][0]["target"] == "#acme-war-room"


async def test_slack_hat_switch_and_an_unknown_slack_user_pressing_acknowledge(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        incident_id = await open_sev1(api)
        origin = fake_slack.base_url.split("/api")[0]
        payload = {
            "type": "block_actions",
            "user": {"id": "U0DANA", "username": "dana"},  # no role
            "response_url": f"{origin}/actions/T0ACME/1/r3sp0nse",
            "actions": [{"action_id": ACKNOWLEDGE_ACTION, "value": f"incident:{incident_id}"}],
        }
        pressed = urlencode({"payload": json.dumps(payload)}).encode()
        answer = await api.post("/slack/interactions", content=pressed, headers=_signed(pressed))
        assert answer.status_code == 200
        assert "needs the role responder" in answer.json()["text"]
        [told] = await trio.to_thread.run_sync(
            lambda: fake_slack.wait_for_calls(1, method="/actions/T0ACME/1/r3sp0nse")
        )
        assert told.body["response_type"] == "ephemeral"
        assert "needs the role responder" in told.body["text"]
        listed = await api.get("/api/v1/incidents", params={"open": "1"}, headers=ROOT)
        assert listed.json()["incidents"][0]["status"] == "open"  # nothing recorded

        def command(text: str, user: str = "U0ALICE") -> bytes:
            return urlencode({"command": "/eyetok", "text": text, "user_id": user}).encode()

        for text, user, expected in [
            (
                'role switch root_operator --for 2h --why "rotate the secrets"',
                "U0ALICE",
                "You wear root_operator",
            ),
            ("role switch root_operator --for 2h --why now", "U0ALICE", "Refused: why:"),
            ('role switch root_operator --for 2h --why "cover for Alice"', "U0DANA", "Refused:"),
            ("role dance", "U0ALICE", "usage: /eyetok role"),
            ("role end", "U0ALICE", "taken off"),
        ]:
            body = command(text, user)
            said = await api.post("/slack/commands", content=body, headers=_signed(body))
            assert said.status_code == 200
            assert said.json()["response_type"] == "ephemeral"
            assert expected in said.json()["text"], (text, said.json())
        forged = command("role end")
        refused = await api.post("/slack/commands", content=forged, headers=_signed(b"x"))
        assert refused.status_code == 401
        assert len(await audit(daemon, "hat_switched")) == 1
        assert len(await audit(daemon, "hat_ended")) == 1


def test_the_manifest_declares_the_slash_command_the_daemon_serves() -> None:
    manifest = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml").read_text()
    )
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/eyetok"
    assert command["url"] == "https://eyetok.example.com/slack/commands"
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]


async def test_bad_input_on_every_people_route_is_a_typed_4xx(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    async with running(nursery, tmp_path, fake_slack) as (_daemon, api):
        alice = await token_of(api, "U0ALICE")
        json_type = {"content-type": "application/json"}
        bodies = [
            b"",
            b"[]",
            b"null",
            b'{"role": 5}',
            b'{"for": "8x", "role": "viewer"}',
            b'{"role": "root_operator", "for": "1h", "why": 7}',
            b'{"shoe": 1}',
            b"{",
        ]
        routes = [
            ("POST", "/api/v1/role/switch"),
            ("POST", "/api/v1/changes/chg_x/approve"),
            ("POST", "/api/v1/changes/chg_x/reject"),
            ("POST", "/api/v1/changes/chg_x/shrug"),
            ("PUT", "/api/v1/tenants/acme/routes"),
        ]
        # no hat, then each hat, so that the bodies reach every parser past the gates
        for hat in ({}, {"role": "root_operator"}, {"role": TSO, "tenant": "acme"}):
            if hat:
                worn = await switch(api, alice, str(hat.pop("role")), "probe bad input", **hat)
                assert worn.status_code == 200, worn.text
            for method, path in routes:
                for body in bodies:
                    answer = await api.request(
                        method, path, content=body, headers={**alice, **json_type}
                    )
                    assert 400 <= answer.status_code < 500, (method, path, body, answer.text)
                    assert "error" in answer.json()
        unsigned = await api.post("/slack/commands", content=b"user_id=U0ALICE&text=role+end")
        assert unsigned.status_code == 401
