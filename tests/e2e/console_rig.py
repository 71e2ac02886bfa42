"""The console test rig: a signed-in page, the alerts and tokens the console tests send, and
checks on a page. The browser (Debian's Chromium driven by Playwright) and the screenshot
folder are the ``browser`` and ``shots`` fixtures of ``tests/e2e/conftest.py``."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from playwright.sync_api import BrowserContext, Page

from tests.conftest import FIXTURES
from tests.verify import ROOT_TOKEN

PHONE = {"width": 390, "height": 844}


def sign_in(
    context: BrowserContext,
    url: str,
    name: str,
    token: str,
    tenant: str = "",
    then: str = "",
    shot: Path | None = None,
) -> Page:
    """Sign in through the form, as a person would; the page lands on ``then``
    (``shot``: a screenshot of the sign-in page first)."""
    page = context.new_page()
    page.goto(f"{url}/console/login" + (f"?next={then}" if then else ""))
    page.fill("input[name=name]", name)
    page.fill("input[name=tenant]", tenant)
    page.fill("input[name=token]", token)
    if shot is not None:
        page.screenshot(path=str(shot))
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/console/login" not in page.url, page.content()
    return page


def sentry_alert(*, level: str, issue_id: str, title: str) -> bytes:
    """The fatal event-alert fixture, re-levelled and about another issue."""
    payload = json.loads((FIXTURES / "event_alert_fatal.json").read_text())
    event = payload["data"]["event"]
    event["level"], event["issue_id"], event["title"] = level, issue_id, title
    return json.dumps(payload).encode()


def tenant_token(url: str, tenant: str, label: str) -> str:
    answer = httpx.post(
        f"{url}/api/v1/tenants/{tenant}/tokens",
        json={"label": label},
        headers={"authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=15,
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["token"])


def no_horizontal_scroll(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def status_of(page: Page, url: str) -> int:
    """The HTTP status of ``url`` opened in ``page``."""
    answer = page.goto(url)
    assert answer is not None
    return answer.status
