"""The incident page's buttons against a daemon in this trio run: a playbook's proposal
approved on the console runs once (the playbooks actor's click path, as Slack's button),
a resolve with a note goes the human-resolve path, and both show in the timeline; with
persons bound, a person's token signs in and each write is authorised by their roles
(a viewer is refused naming the role, the root token's session is refused tenant-scoped
writes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import trio

from harness.peers.platform import FakeHeroku, FakeService
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually, fixture_body, signed_headers, start_daemon
from tests.playbooks.test_buttons_daemon import config as playbook_config
from tests.verify import ROOT_TOKEN

ROOT = {"authorization": f"Bearer {ROOT_TOKEN}"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def console_session(client: httpx.AsyncClient, name: str, token: str) -> str:
    """Sign in through the form (a cookie in ``client``); the session's CSRF token."""
    form = await client.get("/console/login")
    found = CSRF.search(form.text)
    assert found is not None
    signed = await client.post(
        "/console/login",
        data={"csrf": found[1], "name": name, "token": token, "next": "/console/incidents"},
    )
    assert signed.status_code == 302, signed.text
    listed = await client.get("/console/incidents")
    assert listed.status_code == 200, listed.text
    session_csrf = CSRF.search(listed.text)
    assert session_csrf is not None
    return session_csrf[1]


async def opened_by(client: httpx.AsyncClient, fixture: str) -> str:
    """Post the Sentry fixture to the daemon: the id of the incident it opens."""
    body = fixture_body(fixture)
    posted = await client.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert posted.status_code == 202, posted.text
    return str((await only_incident(client))["incident_id"])


async def only_incident(client: httpx.AsyncClient) -> dict[str, Any]:
    """The one incident (as the operator API lists it), once there is one."""
    found: list[dict[str, Any]] = []

    async def opened() -> bool:
        found[:] = (await client.get("/api/v1/incidents", headers=ROOT)).json()["incidents"]
        return len(found) == 1

    await eventually(opened)
    return found[0]


async def test_a_proposal_approved_and_the_incident_resolved_on_the_console(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        settings = daemon_settings(
            tmp_path,
            fake_slack,
            config=playbook_config(heroku, service),
            HEROKU_API_TOKEN=heroku.token,
            FLAG_CONSOLE_INCIDENTS="1",
        )
        daemon = await start_daemon(nursery, settings)
        base = f"http://127.0.0.1:{daemon.bound_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            incident_id = await opened_by(client, "event_alert_h12")
            csrf = await console_session(client, "dana", ROOT_TOKEN)
            page_url = f"/console/incidents/{incident_id}"
            proposal_ids: list[str] = []

            async def proposed() -> bool:
                page = (await client.get(page_url)).text
                proposal_ids[:] = re.findall(r'/proposals/(prp_[0-9a-f]+)"', page)
                return bool(proposal_ids)

            await eventually(proposed)
            [proposal_id] = proposal_ids
            page = (await client.get(page_url)).text
            assert "proposes restart web dynos" in page
            assert heroku.calls == []  # proposed, not run
            target = f"{page_url}/proposals/{proposal_id}"

            forged = await client.post(target, data={"csrf": "stale", "do": "approve"})
            assert forged.status_code == 403
            odd = await client.post(target, data={"csrf": csrf, "do": "explode"})
            assert odd.status_code == 400
            unknown = await client.post(
                f"{page_url}/proposals/prp_0000", data={"csrf": csrf, "do": "approve"}
            )
            assert unknown.status_code == 409
            assert heroku.calls == []

            approved = await client.post(target, data={"csrf": csrf, "do": "approve"})
            assert approved.status_code == 302, approved.text
            assert approved.headers["location"].endswith("said=playbook-approved")
            [call] = await trio.to_thread.run_sync(heroku.wait_calls, 1)
            assert (call.method, call.path) == ("DELETE", "/apps/raxx-prod/dynos/web")

            async def ran() -> bool:
                return "playbook run finished" in (await client.get(page_url)).text

            await eventually(ran)
            page = (await client.get(page_url)).text
            assert f'/proposals/{proposal_id}"' not in page  # decided: no buttons left
            moments = page[page.index('<ol class="timeline">') :]
            for line in ("playbook proposed", "playbook approved", "playbook run started"):
                assert f'<span class="kind">playbook</span>\n    <span class="what">{line}' in (
                    moments
                ), line
            assert "approved by console:dana" in moments

            # the thread heard of it as Slack's button would have made it say
            async def told_in_thread() -> bool:
                return any("approved by console:dana" in (p.text or "") for p in fake_slack.posts)

            await eventually(told_in_thread)
            again = await client.post(target, data={"csrf": csrf, "do": "approve"})
            assert again.status_code == 409  # nothing waits: not sent to run twice
            assert len(heroku.calls) == 1

            blank = await client.post(f"{page_url}/resolve", data={"csrf": csrf, "note": "   "})
            assert blank.status_code == 400
            resolved = await client.post(
                f"{page_url}/resolve",
                data={"csrf": csrf, "note": "restarted web, H12s gone"},
            )
            assert resolved.status_code == 302, resolved.text
            assert (await only_incident(client))["status"] == "resolved"
            page = (await client.get(page_url)).text
            assert 'id="status">resolved<' in page
            assert 'action="' + page_url + '/resolve"' not in page
            assert (
                '<span class="kind">decision</span>\n    <span class="what">resolved by human'
                in (page)
            )
            assert (
                "resolved by console:dana with the note &#34;restarted web, H12s gone&#34;" in page
            )
            twice = await client.post(
                f"{page_url}/resolve", data={"csrf": csrf, "note": "again, nothing to do"}
            )
            assert twice.status_code == 409
        daemon.request_stop()


PEOPLE = """
people:
  - slack_user_id: U0CAROL
    roles: [{role: responder}]
  - slack_user_id: U0VIC
    roles: [{role: viewer}]
"""


async def test_a_person_signs_in_with_their_token_and_acts_in_their_roles(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(tmp_path, fake_slack, config=PEOPLE, FLAG_CONSOLE_INCIDENTS="1")
    daemon = await start_daemon(nursery, settings)
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=10.0) as api,
        httpx.AsyncClient(base_url=base, timeout=10.0) as carol,
        httpx.AsyncClient(base_url=base, timeout=10.0) as vic,
        httpx.AsyncClient(base_url=base, timeout=10.0) as root,
    ):
        incident_id = await opened_by(api, "event_alert_fatal")
        ack = f"/console/incidents/{incident_id}/ack"
        tokens = {}
        for person in ("U0CAROL", "U0VIC"):
            issued = await api.post(f"/api/v1/people/{person}/tokens", headers=ROOT)
            assert issued.status_code == 201, issued.text
            tokens[person] = issued.json()["token"]

        refused = await api.get("/console/login")
        csrf = CSRF.search(refused.text)
        assert csrf is not None
        wrong = await api.post(
            "/console/login", data={"csrf": csrf[1], "name": "mallory", "token": "etk_nope"}
        )
        assert wrong.status_code == 401
        assert "nor a person&#39;s token" in wrong.text

        root_csrf = await console_session(root, "sam", ROOT_TOKEN)
        as_root = await root.post(ack, data={"csrf": root_csrf})
        assert as_root.status_code == 403  # persons are bound: not open mode
        assert "needs the role responder" in as_root.text
        assert "refused tenant-scoped actions" in as_root.text

        vic_csrf = await console_session(vic, "Vic", tokens["U0VIC"])
        page = await vic.get(f"/console/incidents/{incident_id}")
        assert page.status_code == 200  # a viewer reads it
        as_viewer = await vic.post(ack, data={"csrf": vic_csrf})
        assert as_viewer.status_code == 403
        assert "needs the role responder" in as_viewer.text
        dashboard_write = await vic.post("/console/review/zero-anomalies", data={"csrf": vic_csrf})
        assert dashboard_write.status_code == 403
        assert "needs the role root_operator" in dashboard_write.text

        carol_csrf = await console_session(carol, "Carol", tokens["U0CAROL"])
        acked = await carol.post(ack, data={"csrf": carol_csrf})
        assert acked.status_code == 302, acked.text
        by = (await only_incident(api))["acknowledged_by"]
        assert by == "person:U0CAROL as responder on the console"
        audit = (await api.get("/api/v1/audit", headers=ROOT)).json()["audit"]
        events = [(r["event"], r["detail"]) for r in audit]
        assert ("console_signed_in", "Carol signed in as person U0CAROL") in events
        assert sum(1 for e, _ in events if e == "access_refused") >= 3
        assert any(e == "console_acknowledged" and by in d for e, d in events)
    daemon.request_stop()
