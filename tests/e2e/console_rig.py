"""The console test rig: Debian's Chromium driven by Playwright for Python (no browser is
downloaded), a signed-in page, and screenshots under one temporary folder."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import FIXTURES
from tests.verify import ROOT_TOKEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="eyetok-console-shots-"))
    print(f"console screenshots: {folder}")
    return folder


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
