"""The digest reader through the daemon: the budget cap summary posted to ``#alerts-cap``
carries ``Acknowledge``; pressing it in Slack records the read receipt with who (name and
user id) and when, once; a forged press records nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import trio

from eyetok.clock import TrioWallClock
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, eventually
from tests.http.test_budgets_and_suppression import (
    BUDGET_CONFIG,
    HOOK_TOKEN,
    _alert,
    _anchor,
    _post,
    _start,
)
from tests.http.test_slack_interactions import AUTH, _pressed, _signed
from tests.verify import tenant_slack_token, tenant_team, verify_slack


def _buttons(post: Any) -> list[str]:
    return [
        element["value"]
        for block in post.blocks or []
        if block["type"] == "actions"
        for element in block["elements"]
    ]


async def test_the_cap_summary_is_acknowledged_from_slack(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    settings = daemon_settings(
        tmp_path,
        fake_slack,
        config=BUDGET_CONFIG,
        HOOK_TOKEN=HOOK_TOKEN,
        ACME_SLACK_TOKEN=tenant_slack_token(fake_slack, "acme"),
    )
    daemon = await _start(nursery, settings, TrioWallClock(_anchor()))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        await verify_slack(base, "acme-slack", team=tenant_team("acme"))
        for n in range(11):
            await _post(client, f"{base}/hooks/generic/acme", _alert(n))

        def cap_lines() -> list[Any]:
            return [p for p in fake_slack.posts if p.channel == "alerts-cap"]

        async def capped() -> bool:
            return len(cap_lines()) == 1

        await eventually(capped)
        [line] = cap_lines()
        [what] = _buttons(line)
        assert what.startswith("digest:dlv_")

        async def receipts() -> list[dict[str, Any]]:
            rows = await client.get(
                "/api/v1/audit", params={"event": "digest_acknowledged"}, headers=AUTH
            )
            return [json.loads(r["detail"]) | {"at": r["logged_at"]} for r in rows.json()["audit"]]

        body = _pressed(what)
        forged = await client.post(
            "/slack/interactions", content=body, headers=_signed(b"x" + body)
        )
        assert forged.status_code == 401
        assert await receipts() == []
        for _ in range(2):  # a double click: one receipt
            pressed = await client.post("/slack/interactions", content=body, headers=_signed(body))
            assert pressed.status_code == 200, pressed.text
        [receipt] = await receipts()
        assert receipt["what"] == what
        assert receipt["title"] == "budget cap summary"
        assert receipt["by"] == "slack:dana (U0DANA)"
        assert receipt["at"] is not None

        def rewrites() -> list[dict[str, Any]]:
            return [
                c.body
                for c in fake_slack.calls
                if c.method == "chat.update" and c.body.get("ts") == line.ts and c.error is None
            ]

        async def rewritten() -> bool:
            return len(rewrites()) == 1

        # the summary itself now says who read it and when, its button gone; its thread too
        await eventually(rewritten)
        [update] = rewrites()
        assert "Acknowledged by slack:dana (U0DANA) at" in update["text"]
        assert not [b for b in update["blocks"] if b["type"] == "actions"]

        async def told_in_thread() -> bool:
            said = [p.text or "" for p in fake_slack.posts if p.thread_ts == line.ts]
            return any("Acknowledged by slack:dana (U0DANA)" in text for text in said)

        await eventually(told_in_thread)
    daemon.request_stop()
