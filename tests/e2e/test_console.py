"""The console in headless Chromium (Playwright for Python, Debian's chromium) against
``eyetok run`` as a subprocess, and ``/metrics`` parsed with prometheus_client's parser.

Flag off: every ``/console/incidents*`` path is a 404, the dashboard still serves, and
its one-click verdicts (zero anomalies, benign) are recorded with who and when. Flag on:
a signed webhook shows on the open page within 2 s without a reload; filters live in the
URL and survive a reload; an acknowledgement clicked on the page reaches the Slack
thread at the fake Slack and the timeline; a tenant cannot open another tenant's incident
by URL; a 390-px phone viewport has no horizontal scroll."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Browser
from prometheus_client.parser import text_string_to_metric_families

from eyetok.receipts import Receipt, decode_receipt, encode_receipt
from harness.peers.slack import FakeSlack
from tests.conftest import SECRET
from tests.e2e.console_rig import (
    PHONE,
    no_horizontal_scroll,
    sentry_alert,
    sign_in,
    status_of,
    tenant_token,
)
from tests.e2e.daemon import DaemonProcess
from tests.verify import ROOT_TOKEN

METRICS_TOKEN = "metrics-token-for-tests"
ACME_SECRET = "acme-sentry-secret"
BETA_SECRET = "beta-sentry-secret"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
TENANTS = """
tenants:
  acme: {tier: team}
  beta: {tier: team}
"""


def _env(slack: FakeSlack, config: Path, **more: str) -> dict[str, str]:
    return {
        "SENTRY_CLIENT_SECRET": SECRET,
        "SENTRY_CLIENT_SECRET_ACME": ACME_SECRET,
        "SENTRY_CLIENT_SECRET_BETA": BETA_SECRET,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,
        "EYETOK_CONFIG": str(config),
        **more,
    }


def _opened(daemon: DaemonProcess, body: bytes, secret: str, tenant: str | None = None) -> str:
    answer = daemon.post_sentry(body, "event_alert", secret, tenant)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["incident_id"])


def _samples(url: str, token: str | None = None) -> Samples:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def _count(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _receipt(url: str) -> Receipt:
    """A passing single-step receipt, as the drill harness would post it."""
    at = datetime.now(UTC).isoformat()
    outage = "single-tenant-outage"
    seen = {"observation": "one page, 120 ms after the outage", "latency_ms": 120.0}
    step = {"scenario": outage, "name": "page-arrives", "verdict": "pass", **seen}
    step["expectation"] = "one page on the drill tenant's sink"
    document = {"receipt_id": "rcp_console_1", "scenario": outage, "tenant": "drill"}
    document |= {"daemon_url": url, "daemon_version": "test", "verdict": "pass"}
    document |= {"started_at": at, "finished_at": at, "steps": [step]}
    receipt = decode_receipt(json.dumps(document).encode())
    kept = httpx.post(
        url + "/api/v1/drills/receipts",
        content=encode_receipt(receipt),
        headers={"authorization": f"Bearer {ROOT_TOKEN}", "content-type": "application/json"},
        timeout=10,
    )
    assert kept.status_code in (200, 201), kept.text
    return receipt


def test_flag_off_no_incident_pages_and_the_journal_records_who_and_when(
    tmp_path: Path, fake_slack: FakeSlack, browser: Browser, shots: Path
) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text("delivery: {unverified_hold_s: 1}\n")  # unverified Slack: refused fast
    env = _env(fake_slack, config, EYETOK_METRICS_TOKEN=METRICS_TOKEN)
    with DaemonProcess(tmp_path / "data", env) as daemon:
        for path in ("/console/incidents", "/console/incidents/rows", "/console/incidents/x"):
            assert httpx.get(daemon.url + path, timeout=10).status_code == 404, path
        assert httpx.get(daemon.url + "/metrics", timeout=10).status_code == 401
        context = browser.new_context()
        page = sign_in(context, daemon.url, "sam", ROOT_TOKEN, shot=shots / "sign-in.png")
        assert page.url.endswith("/console")
        assert status_of(page, daemon.url + "/console/incidents") == 404
        assert page.locator("table.incidents").count() == 0

        # nothing happened yet: one click says so, and it is kept with who and when
        page.goto(daemon.url + "/console")
        page.click("text=Zero anomalies")
        page.wait_for_selector("text=Recorded: zero anomalies.")
        assert "by console:sam" in page.inner_text("li.zero-mark")
        [line] = httpx.get(
            daemon.url + "/api/v1/audit?event=review_zero_anomalies",
            headers={"authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=10,
        ).json()["audit"]
        assert "by console:sam" in line["detail"]
        assert line["logged_at"]

        before = _samples(daemon.url, METRICS_TOKEN)
        _opened(daemon, sentry_alert(level="fatal", issue_id="901", title="db down"), SECRET)
        after = _samples(daemon.url, METRICS_TOKEN)
        name = "eyetok_signals_received_total"
        assert _count(after, name, source="sentry", outcome="accepted") == (
            _count(before, name, source="sentry", outcome="accepted") + 1
        )
        routed = "eyetok_routing_decisions_total"
        assert _count(after, routed, severity="critical", sev_channel="SEV1") == (
            _count(before, routed, severity="critical", sev_channel="SEV1") + 1
        )
        assert ("eyetok_inbox_depth", frozenset({("actor", "history")})) in after
        assert ("eyetok_actor_restarts_total", frozenset({("actor", "history")})) in after

        # the refused delivery is an anomaly: one click marks it benign, by whom and when
        deadline = time.monotonic() + 20
        while page.locator("li.card[data-anomaly]").count() == 0:
            assert time.monotonic() < deadline, page.inner_text("main")
            time.sleep(0.3)
            page.reload()
        card = page.locator("li.card[data-anomaly]").first
        anomaly_id = card.get_attribute("data-anomaly")
        card.locator("input[name=note]").fill("unverified on purpose")
        card.locator("button[value=benign]").click()
        page.wait_for_selector("text=Verdict recorded.")
        shown = page.inner_text(f"li.card[data-anomaly='{anomaly_id}'] .verdict")
        assert shown.startswith("benign by console:sam at ")
        assert shown.endswith("unverified on purpose")
        review = httpx.get(
            daemon.url + "/api/v1/review",
            headers={"authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=30,
        ).json()
        [noted] = [a for a in review["anomalies"] if a["anomaly_id"] == anomaly_id]
        assert (noted["verdict"], noted["noted_by"]) == ("benign", "console:sam")
        assert noted["noted_at"]
        assert (
            _count(
                _samples(daemon.url, METRICS_TOKEN),
                "eyetok_deliveries_total",
                sink_type="slack",
                outcome="refused_unverified",
            )
            >= 1
        )
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

        # a drill receipt is one printable page; a sink's re-handshake is one click
        receipt = _receipt(daemon.url)
        page.goto(daemon.url + "/console")
        page.click(f"a[href='/console/receipts/{receipt.receipt_id}']")
        page.wait_for_selector("article.receipt")
        assert "single-tenant-outage/page-arrives" in page.inner_text("article.receipt table")
        assert page.inner_text("h1 .verdict-pass") == "pass"
        page.screenshot(path=str(shots / "receipt.png"), full_page=True)
        page.goto(daemon.url + "/console#verification")
        page.click("tr[data-sink=slack] button")
        page.wait_for_selector("h1")
        assert page.inner_text("h1") == "Done", page.inner_text("main")
        [asked] = httpx.get(
            daemon.url + "/api/v1/audit?event=console_rehandshake",
            headers={"authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=10,
        ).json()["audit"]
        assert asked["detail"].startswith("sink slack: re-handshake asked by console:sam")
        context.close()
        assert daemon.terminate()[0] == 0


def test_flag_on_live_filters_ack_tenants_and_phone(
    tmp_path: Path, fake_slack: FakeSlack, browser: Browser, shots: Path
) -> None:
    config = tmp_path / "eyetok.yaml"
    config.write_text(TENANTS)
    env = _env(fake_slack, config, FLAG_CONSOLE_INCIDENTS="1")
    with DaemonProcess(tmp_path / "data", env) as daemon:
        daemon.verify_slack()
        operator = browser.new_context()
        page = sign_in(operator, daemon.url, "sam", ROOT_TOKEN, then="/console/incidents")
        assert "/console/incidents" in page.url
        page.evaluate("window.__notReloaded = true")

        # live: the new incident shows within 2 s, on the same document
        down = sentry_alert(level="fatal", issue_id="101", title="db down")
        fatal = _opened(daemon, down, SECRET)
        page.wait_for_selector(f"tr[data-incident='{fatal}']", timeout=2000)
        assert page.evaluate("window.__notReloaded === true")
        assert page.inner_text(f"tr[data-incident='{fatal}'] .badge") == "SEV1"
        [top] = fake_slack.wait_for_posts(1)

        # filters: in the URL, and still there after a reload
        sev3 = _opened(daemon, sentry_alert(level="warning", issue_id="102", title="slow"), SECRET)
        page.wait_for_selector(f"tr[data-incident='{sev3}']", timeout=2000)
        page.check("input[name=severity][value=SEV1]")
        page.check("input[name=status][value=open]")
        page.fill("input[name=since]", "1h")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**severity=SEV1**")
        assert "status=open" in page.url
        page.reload()
        assert page.is_checked("input[name=severity][value=SEV1]")
        assert page.is_checked("input[name=status][value=open]")
        assert page.input_value("input[name=since]") == "1h"
        assert "since=1h" in page.url
        assert page.locator(f"tr[data-incident='{fatal}']").count() == 1
        assert page.locator(f"tr[data-incident='{sev3}']").count() == 0
        page.screenshot(path=str(shots / "incidents.png"), full_page=True)

        # acknowledge on the page: the Slack thread's post says so, and so does the timeline
        page.click(f"tr[data-incident='{fatal}'] a")
        page.wait_for_url(f"**/console/incidents/{fatal}")
        page.click("button[value=acknowledge]")
        page.wait_for_selector("text=Acknowledged by you.")
        assert page.inner_text("#status") == "acknowledged"
        assert page.inner_text("#acknowledged-by").startswith("console:sam at ")
        timeline = page.inner_text("ol.timeline").lower()
        assert "incident acknowledged" in timeline
        assert "console acknowledged" in timeline
        assert timeline.index("routing") < timeline.index("incident acknowledged")
        [update] = fake_slack.wait_for_calls(1, method="chat.update")
        assert update.body["ts"] == top.ts
        assert "Acknowledged by console:sam" in json.dumps(update.body["blocks"])
        page.screenshot(path=str(shots / "incident.png"), full_page=True)

        # a tenant sees its own incidents only, and not another's by URL
        acme_down = sentry_alert(level="fatal", issue_id="201", title="acme")
        beta_down = sentry_alert(level="fatal", issue_id="301", title="beta")
        acme = _opened(daemon, acme_down, ACME_SECRET, "acme")
        beta = _opened(daemon, beta_down, BETA_SECRET, "beta")
        kim = browser.new_context()
        token = tenant_token(daemon.url, "acme", "kim's console")
        mine = sign_in(kim, daemon.url, "kim", token, tenant="acme", then="/console/incidents")
        mine.wait_for_selector(f"tr[data-incident='{acme}']")
        for other in (beta, fatal, sev3):
            assert mine.locator(f"tr[data-incident='{other}']").count() == 0
        assert status_of(mine, f"{daemon.url}/console/incidents/{beta}") == 404
        assert status_of(mine, f"{daemon.url}/console/incidents?tenant=beta") == 200
        assert mine.locator(f"tr[data-incident='{beta}']").count() == 0
        assert status_of(mine, f"{daemon.url}/console") == 403
        refused = kim.new_page()
        refused.goto(f"{daemon.url}/console/login")
        refused.fill("input[name=name]", "kim")
        refused.fill("input[name=tenant]", "beta")
        refused.fill("input[name=token]", token)
        refused.click("button[type=submit]")
        refused.wait_for_selector("text=Not signed in")
        kim.close()

        # the operator's whole list (the README's screenshot: docs/console-incidents.png)
        page.goto(f"{daemon.url}/console/incidents")
        page.wait_for_selector(f"tr[data-incident='{beta}']")
        assert page.locator("tbody#rows tr").count() == 4
        page.screenshot(path=str(shots / "incidents-all.png"))

        # without JavaScript: signing in, the list, a filter and a Reload link that keeps it
        plain = browser.new_context(java_script_enabled=False)
        still = sign_in(plain, daemon.url, "sam", ROOT_TOKEN, then="/console/incidents")
        still.goto(f"{daemon.url}/console/incidents?severity=SEV3")
        assert still.locator(f"tr[data-incident='{sev3}']").count() == 1
        assert still.locator(f"tr[data-incident='{fatal}']").count() == 0
        reload_link = still.locator("noscript a, a:text('Reload')").first
        assert reload_link.get_attribute("href") == "/console/incidents?severity=SEV3"
        plain.close()

        # a phone: the list and an incident fit 390 px
        phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
        small = sign_in(phone, daemon.url, "sam", ROOT_TOKEN, then="/console/incidents")
        small.wait_for_selector(f"tr[data-incident='{acme}']")
        assert no_horizontal_scroll(small)
        small.screenshot(path=str(shots / "incidents-390px.png"), full_page=True)
        small.goto(f"{daemon.url}/console/incidents/{fatal}")
        assert no_horizontal_scroll(small)
        small.goto(f"{daemon.url}/console")
        assert no_horizontal_scroll(small)
        phone.close()
        operator.close()
        assert daemon.terminate()[0] == 0
