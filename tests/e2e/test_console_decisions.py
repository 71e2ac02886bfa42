"""The incident page's decisions in headless Chromium against ``eyetok run`` (a subprocess),
with persons bound: a person signs in with their own token; a viewer's Approve is refused
naming the role it needs and nothing runs; a responder approves the playbook's proposal
(the restart reaches the fake Heroku once), then resolves the incident with a note; the
timeline shows the proposal, the approval, the run and the resolve; the page fits a
390-px phone."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page

from harness.peers.platform import FakeHeroku, FakeService
from harness.peers.slack import FakeSlack
from tests.conftest import FIXTURES, SECRET
from tests.console.test_incident_decisions_daemon import PEOPLE
from tests.e2e.console_rig import PHONE, no_horizontal_scroll, sign_in
from tests.e2e.daemon import DaemonProcess
from tests.playbooks.test_buttons_daemon import config as playbook_config
from tests.verify import ROOT_TOKEN


def _person_token(url: str, person: str) -> str:
    issued = httpx.post(
        f"{url}/api/v1/people/{person}/tokens",
        headers={"authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=15,
    )
    assert issued.status_code == 201, issued.text
    return str(issued.json()["token"])


def _until_shown(page: Page, selector: str) -> None:
    """Reload the incident page until ``selector`` is on it (the proposal, the run)."""
    deadline = time.monotonic() + 20
    while page.locator(selector).count() == 0:
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(0.3)
        page.reload()


def test_a_person_approves_a_proposal_and_resolves_on_the_page(
    tmp_path: Path, fake_slack: FakeSlack, browser: Browser, shots: Path
) -> None:
    with FakeHeroku() as heroku, FakeService() as service:
        config = tmp_path / "eyetok.yaml"
        config.write_text(playbook_config(heroku, service) + PEOPLE)
        env = {
            "SENTRY_CLIENT_SECRET": SECRET,
            "SLACK_BOT_TOKEN": fake_slack.token,
            "SLACK_API_URL": fake_slack.base_url,
            "EYETOK_CONFIG": str(config),
            "HEROKU_API_TOKEN": heroku.token,
            "FLAG_CONSOLE_INCIDENTS": "1",
        }
        with DaemonProcess(tmp_path / "data", env) as daemon:
            daemon.verify_slack()
            body = (FIXTURES / "event_alert_h12.json").read_bytes()
            answer = daemon.post_sentry(body, "event_alert", SECRET)
            assert answer.status_code == 202, answer.text
            incident = f"/console/incidents/{answer.json()['incident_id']}"

            # a viewer reads the page; their Approve is refused, naming the role
            vic = browser.new_context()
            viewer = sign_in(
                vic, daemon.url, "Vic", _person_token(daemon.url, "U0VIC"), then=incident
            )
            _until_shown(viewer, "li.proposal")
            assert "restart web dynos" in viewer.inner_text("li.proposal")
            viewer.click("li.proposal button[value=approve]")
            viewer.wait_for_selector("text=approve of a playbook proposal needs the role responder")
            viewer.screenshot(path=str(shots / "refused-viewer.png"))
            assert heroku.calls == []
            vic.close()

            # a responder approves: it runs once, and the timeline says who and what
            carol = browser.new_context()
            page = sign_in(
                carol, daemon.url, "Carol", _person_token(daemon.url, "U0CAROL"), then=incident
            )
            assert "Carol · person U0CAROL" in page.inner_text("header")
            page.click("li.proposal button[value=approve]")
            page.wait_for_selector("text=Approved: the quorum is met")
            heroku.wait_calls(1)
            _until_shown(page, "li.moment.playbook:has-text('playbook run finished')")
            assert page.locator("li.proposal").count() == 0
            moments = page.inner_text("ol.timeline")
            assert "approved by person:U0CAROL as responder on the console" in moments
            assert moments.index("playbook proposed") < moments.index("playbook approved")
            assert moments.index("playbook approved") < moments.index("playbook run finished")

            # ... and resolves it with a note: the human resolve path, in the timeline
            page.fill("#resolve textarea[name=note]", "restarted web; H12s stopped")
            page.click("#resolve button[value=resolve]")
            page.wait_for_selector("text=Resolved by you, with your note.")
            assert page.inner_text("#status") == "resolved"
            assert page.locator("#resolve").count() == 0
            resolved = page.inner_text("li.moment.decision")
            assert 'with the note "restarted web; H12s stopped"' in resolved
            page.screenshot(path=str(shots / "incident-decided.png"), full_page=True)
            assert len(heroku.calls) == 1
            carol.close()

            phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
            small = sign_in(
                phone, daemon.url, "Carol", _person_token(daemon.url, "U0CAROL"), then=incident
            )
            small.wait_for_selector("ol.timeline")
            assert no_horizontal_scroll(small)
            phone.close()
            assert daemon.terminate()[0] == 0
