"""The operator API the drill harness uses, against the daemon in-process: what became
of alerts (notifications, audit), routing explained at an instant, and the receipts kept
in DuckDB's ``drill_receipts``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
import trio

from actors.daemon import Daemon
from eyetok.receipts import Receipt, Step, encode_receipt
from harness.peers.slack import FakeSlack
from tests.conftest import fixture_body, signed_headers
from tests.verify import ROOT_TOKEN

AUTH = {"authorization": f"Bearer {ROOT_TOKEN}"}


def _receipt(verdict: str = "fail") -> Receipt:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    return Receipt(
        receipt_id="drill_test_1",
        scenario="single-tenant-outage",
        tenant="drill",
        daemon_url="http://127.0.0.1:1",
        daemon_version="0.1.0",
        started_at=at,
        finished_at=at,
        verdict="fail",
        steps=(
            Step(
                scenario="single-tenant-outage",
                name="alert-reaches-four-sinks",
                expectation="four sinks within 90 s",
                observation="three",
                verdict="fail",
                latency_ms=90000.0,
                delivery_ids=("dlv_1",),
            ),
        ),
        delivery_ids=("dlv_1",),
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/about"),
        ("GET", "/api/v1/notifications"),
        ("GET", "/api/v1/audit"),
        ("POST", "/api/v1/explain"),
        ("POST", "/api/v1/drills/receipts"),
        ("GET", "/api/v1/drills/receipts"),
    ],
)
async def test_the_drill_api_needs_the_root_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_about_names_the_version_the_tenants_and_the_notices(
    client: httpx.AsyncClient,
) -> None:
    about = (await client.get("/api/v1/about", headers=AUTH)).json()
    assert about["version"] == "0.1.0"
    assert about["operator_tenant"] == "operator"
    assert about["operator_notices"] == "slack:#eyetok-operator"
    assert about["cap_notices"] == "slack:#alerts-cap"
    assert about["suppression_hold_s"] == 60.0
    assert about["tenants"] == [
        {
            "tenant": "operator",
            "tier": "operator",
            "hourly_budget": None,
            "primary_sink": "slack",
            "sinks": [{"sink_id": "slack", "sink_type": "slack"}],
        }
    ]
    assert about["faults"] == []


async def test_a_receipt_is_journalled_into_drill_receipts(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    receipt = _receipt()
    posted = await client.post(
        "/api/v1/drills/receipts", content=encode_receipt(receipt), headers=AUTH
    )
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"receipt_id": "drill_test_1", "table": "drill_receipts"}
    assert daemon.store is not None
    [row] = await daemon.store.read(
        lambda con: con.execute(
            "SELECT receipt_id, scenario, tenant, verdict, failed_steps, daemon_version, "
            "receipt_json FROM drill_receipts"
        ).fetchall()
    )
    assert row[:6] == (
        "drill_test_1",
        "single-tenant-outage",
        "drill",
        "fail",
        "single-tenant-outage/alert-reaches-four-sinks",
        "0.1.0",
    )
    assert json.loads(row[6])["steps"][0]["delivery_ids"] == ["dlv_1"]
    listed = (await client.get("/api/v1/drills/receipts", headers=AUTH)).json()["receipts"]
    assert [r["receipt_id"] for r in listed] == ["drill_test_1"]
    assert listed[0]["receipt"]["steps"][0]["observation"] == "three"


async def test_a_malformed_receipt_is_refused_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    body = json.loads(encode_receipt(_receipt()))
    body["steps"][0]["verdict"] = "maybe"
    answer = await client.post("/api/v1/drills/receipts", json=body, headers=AUTH)
    assert answer.status_code == 400
    assert "$.steps[0].verdict" in answer.json()["error"]


async def test_notifications_and_audit_show_what_became_of_an_alert(
    client: httpx.AsyncClient, fake_slack: FakeSlack
) -> None:
    since = datetime.now(UTC).isoformat()
    body = fixture_body("event_alert_fatal")
    opened = (await client.post("/hooks/sentry", content=body, headers=signed_headers(body))).json()
    await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
    rows: list[dict[str, object]] = []
    for _ in range(200):
        answer = await client.get(
            "/api/v1/notifications", params={"tenant": "operator", "since": since}, headers=AUTH
        )
        rows = answer.json()["notifications"]
        if rows and rows[0]["status"] == "delivered":
            break
        await trio.sleep(0.02)
    [row] = rows
    assert (row["incident_id"], row["sink_id"], row["target"]) == (
        opened["incident_id"],
        "slack",
        "#raxx-ops-alert-SEV1",
    )
    assert (row["status"], row["action"], row["notice"]) == ("delivered", "open", None)
    assert row["external_ref"] == fake_slack.posts[0].ts
    later = await client.get(
        "/api/v1/notifications", params={"since": "2999-01-01T00:00:00Z"}, headers=AUTH
    )
    assert later.json()["notifications"] == []
    bad = await client.get("/api/v1/notifications", params={"since": "yesterday"}, headers=AUTH)
    assert bad.status_code == 400
    info = fixture_body("event_alert_info")
    await client.post("/hooks/sentry", content=info, headers=signed_headers(info))
    audit = (
        await client.get("/api/v1/audit", params={"event": "signal_audit_only"}, headers=AUTH)
    ).json()
    assert [a["tenant"] for a in audit["audit"]] == ["operator"]


async def test_explain_answers_through_the_api(client: httpx.AsyncClient) -> None:
    verdict = {
        "server": "x.synthetic",
        "verdict": "down",
        "error_kind": "http_503",
        "asn": 64512,
        "registry": "drill",
        "region": "local",
        "observed_at": "2026-11-01T01:30:00-05:00",
    }
    asked = {"tenant": "operator", "hook": "probe", "at": "2026-11-01T01:30:00-05:00"}
    answer = await client.post("/api/v1/explain", json=asked | {"body": verdict}, headers=AUTH)
    assert answer.status_code == 200, answer.text
    [seen] = answer.json()["explanations"]
    assert (seen["sev_channel"], seen["local_time"]) == ("SEV2", "2026-11-01T01:30:00-05:00")
    # It does not consult what the daemon knows, and says so rather than claim more.
    assert seen["assumed"] == "new to EyeTok"
    missing = await client.post("/api/v1/explain", json=asked, headers=AUTH)
    assert missing.status_code == 400
    unknown = await client.post(
        "/api/v1/explain", json=asked | {"tenant": "nobody", "body": verdict}, headers=AUTH
    )
    assert unknown.status_code == 404
