"""The Sentry hook's answers, against the daemon running in-process on a free port."""

from __future__ import annotations

import httpx
import pytest

from actors.daemon import Daemon
from eyetok.sources import sentry
from harness.peers.slack import FakeSlack
from tests.conftest import SECRET, fixture_body


def signed(
    body: bytes, resource: str | None = "event_alert", secret: str = SECRET
) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "sentry-hook-signature": sentry.sign(body, secret),
    }
    if resource:
        headers["sentry-hook-resource"] = resource
    return headers


async def test_a_signed_fatal_event_is_accepted_and_posted_to_sev1(
    client: httpx.AsyncClient, fake_slack: FakeSlack
) -> None:
    body = fixture_body("event_alert_fatal")
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 202
    answer = response.json()
    assert set(answer) >= {"signal_id", "incident_id", "severity", "sev_channel"}
    assert answer["severity"] == "critical"
    assert answer["sev_channel"] == "SEV1"
    assert answer["incident_id"].startswith("inc_")
    import trio

    [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1)
    assert post.channel == "raxx-ops-alert-SEV1"
    assert answer["incident_id"] in str(post.blocks)
    assert "Emergency SOP" in str(post.blocks)


async def test_the_tenant_path_reaches_the_same_hook(client: httpx.AsyncClient) -> None:
    body = fixture_body("event_alert_warning")
    response = await client.post("/hooks/sentry/operator", content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json()["sev_channel"] == "SEV3"


async def test_the_legacy_plugin_payload_needs_no_resource_header(
    client: httpx.AsyncClient,
) -> None:
    body = fixture_body("legacy_fatal")
    response = await client.post("/hooks/sentry", content=body, headers=signed(body, None))
    assert response.status_code == 202
    assert response.json()["rule"] == "fatal"


async def test_info_is_audit_only(client: httpx.AsyncClient, daemon: Daemon) -> None:
    body = fixture_body("event_alert_info")
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json() == {
        "signal_id": response.json()["signal_id"],
        "incident_id": None,
        "severity": "info",
        "sev_channel": None,
        "action": "audit",
        "rule": "info-debug-audit",
    }
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows = await daemon.store.read(
        lambda con: con.execute(
            "SELECT event, signal_id FROM audit_log WHERE signal_id IS NOT NULL"
        ).fetchall()
    )
    assert rows == [("signal_audit_only", response.json()["signal_id"])]


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing or wrong Sentry-Hook-Signature"),
        ({"sentry-hook-signature": "00" * 32}, "missing or wrong Sentry-Hook-Signature"),
    ],
)
async def test_a_missing_or_wrong_signature_is_401(
    client: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    body = fixture_body("event_alert_fatal")
    response = await client.post(
        "/hooks/sentry", content=body, headers={"sentry-hook-resource": "event_alert", **headers}
    )
    assert response.status_code == 401
    assert response.json() == {"error": reason}


async def test_a_body_signed_with_another_secret_is_401(client: httpx.AsyncClient) -> None:
    body = fixture_body("event_alert_fatal")
    response = await client.post(
        "/hooks/sentry", content=body, headers=signed(body, secret="not-the-secret")
    )
    assert response.status_code == 401


async def test_malformed_json_is_400_naming_the_position(client: httpx.AsyncClient) -> None:
    body = b'{"action": "triggered", "data": {'
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["error"]


async def test_a_wrong_type_is_400_naming_the_field(client: httpx.AsyncClient) -> None:
    body = fixture_body("event_alert_fatal").replace(b'"level": "fatal"', b'"level": 5', 1)
    assert b'"level": 5' in body
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 400
    assert "level" in response.json()["error"]


async def test_an_unknown_resource_is_400(client: httpx.AsyncClient) -> None:
    body = fixture_body("event_alert_fatal")
    response = await client.post(
        "/hooks/sentry", content=body, headers=signed(body, "installation")
    )
    assert response.status_code == 400
    assert "installation" in response.json()["error"]


# The server answers before reading the whole body; httpx then abandons its body stream.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_body_over_one_mebibyte_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"padding": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 413


async def test_an_unknown_tenant_is_404(client: httpx.AsyncClient) -> None:
    body = fixture_body("event_alert_fatal")
    response = await client.post("/hooks/sentry/nobody", content=body, headers=signed(body))
    assert response.status_code == 404
    assert response.json() == {"error": "unknown tenant 'nobody'"}


async def test_get_on_a_hook_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/hooks/sentry")
    assert response.status_code == 405


async def test_a_draining_daemon_answers_503_with_retry_after(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    daemon.gate.open = False
    body = fixture_body("event_alert_fatal")
    response = await client.post("/hooks/sentry", content=body, headers=signed(body))
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["accepting"] is False


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "alive"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["actors"] == {
        "history": True,
        "suppression": True,
        "mutes": True,
        "budgets": True,
        "tenants": True,
        "people": True,
        "delivery": True,
        "verification": True,
        "rotation": True,
        "routines": True,
        "scheduler": True,
        "playbooks": True,
        "router": True,
        "incidents": True,
        "digests": True,
        "conversation": True,
    }
