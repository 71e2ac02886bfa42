"""The probe, generic and Alertmanager hooks, against the daemon running in-process.

Tenants here: ``operator`` (a Standard Webhooks secret and a bearer token, the default
environment names), ``acme`` (a bearer token only, a name from the file) and ``bare``
(no hook credentials at all).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from actors.daemon import Daemon
from actors.topology import BATCH_CHUNK
from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError
from eyetok.standard_webhooks import new_secret, webhook_headers
from harness.peers.slack import FakeSlack
from tests.conftest import daemon_settings, start_daemon

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOOK_SECRET = new_secret()
HOOK_TOKEN = "hook-token-for-tests-0f9c2e"
ACME_TOKEN = "acme-token-for-tests-77ab10"
CONFIG = """
tenants:
  operator: {tier: operator}
  acme: {tier: team, hook_token_env: ACME_HOOK_TOKEN}
  bare: {tier: public}
"""
ENV = {
    "EYETOK_HOOK_SECRET": HOOK_SECRET,
    "EYETOK_HOOK_TOKEN": HOOK_TOKEN,
    "ACME_HOOK_TOKEN": ACME_TOKEN,
}

HOOKS = {
    "probe": "probe/verdict_down.json",
    "generic": "generic/high_firing.json",
    "alertmanager": "alertmanager/group_firing.json",
}
# A field of the wrong type in each hook's fixture, and the path the answer must name.
WRONG_TYPES = {
    "probe": (b'"asn": 13335', b'"asn": 13.5', "$.asn"),
    "generic": (b'"title": "Checkout', b'"title": 5, "x": "Checkout', "$.title"),
    "alertmanager": (b'"severity": "critical"', b'"severity": 1', "$.alerts[0].labels[...]"),
}


def body_of(hook: str) -> bytes:
    return (FIXTURES / HOOKS[hook]).read_bytes()


def signed(body: bytes, secret: str = HOOK_SECRET, *, at: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "content-type": "application/json",
        # a fresh id per message: a repeated id is a replay (tests/http/test_webhook_replays.py)
        **webhook_headers([secret], f"msg_{secrets.token_hex(8)}", timestamp, body),
    }


def bearer(token: str = HOOK_TOKEN) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {token}"}


async def _daemon(
    nursery: trio.Nursery, data_dir: Path, slack: FakeSlack, config: str = CONFIG
) -> Daemon:
    return await start_daemon(nursery, daemon_settings(data_dir, slack, config=config, **ENV))


@pytest.fixture
async def daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> AsyncIterator[Daemon]:
    instance = await _daemon(nursery, tmp_path / "data", fake_slack)
    yield instance
    instance.request_stop()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
        yield c


async def signals_table(daemon: Daemon, columns: str) -> list[tuple[Any, ...]]:
    assert daemon.store is not None
    assert daemon.topology is not None
    await daemon.topology.flush_history()
    rows: list[tuple[Any, ...]] = await daemon.store.read(
        lambda con: con.execute(f"SELECT {columns} FROM signals").fetchall()
    )
    return rows


# --- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_a_valid_standard_webhooks_signature_is_202(
    client: httpx.AsyncClient, hook: str
) -> None:
    body = body_of(hook)
    response = await client.post(f"/hooks/{hook}/operator", content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["accepted"] == len(answer["signals"]) >= 1
    for signal in answer["signals"]:
        assert set(signal) == {
            "signal_id",
            "incident_id",
            "severity",
            "sev_channel",
            "action",
            "rule",
        }
        assert signal["signal_id"].startswith("sig_")
        assert signal["action"] == "open"


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_a_valid_bearer_token_is_202(client: httpx.AsyncClient, hook: str) -> None:
    response = await client.post(f"/hooks/{hook}/operator", content=body_of(hook), headers=bearer())
    assert response.status_code == 202, response.text
    response = await client.post(
        f"/hooks/{hook}/acme", content=body_of(hook), headers=bearer(ACME_TOKEN)
    )
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_no_credentials_is_401_saying_what_to_send(
    client: httpx.AsyncClient, hook: str
) -> None:
    response = await client.post(f"/hooks/{hook}/operator", content=body_of(hook))
    assert response.status_code == 401
    assert response.json() == {
        "error": "missing credentials: send a Standard Webhooks signature (webhook-id, "
        "webhook-timestamp, webhook-signature) or Authorization: Bearer <token>"
    }
    response = await client.post(f"/hooks/{hook}/acme", content=body_of(hook))
    assert response.json() == {"error": "missing credentials: send Authorization: Bearer <token>"}


@pytest.mark.parametrize("hook", list(HOOKS))
@pytest.mark.parametrize(
    ("tenant", "headers", "reason"),
    [
        ("operator", bearer("not-the-token"), "wrong bearer token"),
        ("acme", bearer(HOOK_TOKEN), "wrong bearer token"),
        (
            "operator",
            {"authorization": f"Basic {HOOK_TOKEN}"},
            "Authorization is not 'Bearer <token>'",
        ),
        ("operator", "another-secret", "Standard Webhooks signature: no-valid-signature"),
        ("operator", "stale", "Standard Webhooks signature: stale-timestamp: "),
        ("operator", "tampered", "Standard Webhooks signature: no-valid-signature"),
        ("acme", "signed", "no webhook secret is configured (set EYETOK_HOOK_SECRET_ACME)"),
    ],
)
async def test_wrong_credentials_are_401_naming_the_problem(
    client: httpx.AsyncClient, hook: str, tenant: str, headers: Any, reason: str
) -> None:
    body = body_of(hook)
    sent = body
    kind, signed_at = headers, int(time.time()) - 600
    match headers:
        case "another-secret":
            headers = signed(body, new_secret())
        case "stale":
            headers = signed(body, at=signed_at)
        case "tampered":
            headers = signed(body)
            sent = body.replace(b"us-east-1", b"us-east-2").replace(b"production", b"staging")
            assert sent != body
        case "signed":
            headers = signed(body)
    response = await client.post(f"/hooks/{hook}/{tenant}", content=sent, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error.startswith(reason)
    if kind == "stale":  # the age by the daemon's own clock, read a moment after signing
        age, _, rest = error.removeprefix(reason).partition("s old")
        assert 600 <= int(age) <= int(time.time()) - signed_at
        assert rest == ", tolerance 300s"


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_a_tenant_with_no_hook_credentials_is_401_naming_what_to_configure(
    client: httpx.AsyncClient, hook: str
) -> None:
    body = body_of(hook)
    response = await client.post(f"/hooks/{hook}/bare", content=body, headers=signed(body))
    assert response.status_code == 401
    assert response.json() == {
        "error": "no hook credentials are configured for tenant 'bare': set "
        "EYETOK_HOOK_SECRET_BARE (a whsec_ Standard Webhooks secret) or "
        "EYETOK_HOOK_TOKEN_BARE (a bearer token)"
    }


# --- the other answers --------------------------------------------------------------------


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_malformed_json_is_400_naming_the_position(
    client: httpx.AsyncClient, hook: str
) -> None:
    body = body_of(hook)[:40]
    response = await client.post(f"/hooks/{hook}/operator", content=body, headers=signed(body))
    assert response.status_code == 400
    assert "malformed JSON at byte 40" in response.json()["error"]


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_a_wrong_type_is_400_naming_the_field(client: httpx.AsyncClient, hook: str) -> None:
    old, new, path = WRONG_TYPES[hook]
    body = body_of(hook).replace(old, new, 1)
    assert body != body_of(hook)
    response = await client.post(f"/hooks/{hook}/operator", content=body, headers=bearer())
    assert response.status_code == 400
    assert path in response.json()["error"]


# The server answers before reading the whole body; httpx then abandons its body stream.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("hook", list(HOOKS))
async def test_a_body_over_one_mebibyte_is_413(client: httpx.AsyncClient, hook: str) -> None:
    body = b'{"padding": "' + b"x" * (1024 * 1024) + b'"}'
    response = await client.post(f"/hooks/{hook}/operator", content=body, headers=bearer())
    assert response.status_code == 413
    assert "1 MiB" in response.json()["error"]


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_an_unknown_tenant_is_404(client: httpx.AsyncClient, hook: str) -> None:
    body = body_of(hook)
    response = await client.post(f"/hooks/{hook}/nobody", content=body, headers=signed(body))
    assert response.status_code == 404
    assert response.json() == {"error": "unknown tenant 'nobody'"}


@pytest.mark.parametrize("hook", list(HOOKS))
async def test_the_tenant_is_required_in_the_path(client: httpx.AsyncClient, hook: str) -> None:
    body = body_of(hook)
    response = await client.post(f"/hooks/{hook}", content=body, headers=signed(body))
    assert response.status_code == 404
    assert f"/hooks/{hook}/{{tenant}}" in response.json()["error"]
    assert (await client.get(f"/hooks/{hook}/operator")).status_code == 405


async def test_a_draining_daemon_answers_503_with_retry_after(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    daemon.gate.open = False
    body = body_of("alertmanager")
    response = await client.post("/hooks/alertmanager/operator", content=body, headers=bearer())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0


# --- what the signals do ------------------------------------------------------------------


async def test_an_alertmanager_group_opens_and_its_resolved_alert_resolves(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    firing = body_of("alertmanager")
    first = await client.post("/hooks/alertmanager/operator", content=firing, headers=bearer())
    assert first.status_code == 202
    opened = first.json()["signals"]
    assert first.json()["accepted"] == 2
    assert [(s["action"], s["severity"], s["rule"]) for s in opened] == [
        ("open", "critical", "fatal"),
        ("open", "low", "warning"),
    ]
    later = (FIXTURES / "alertmanager" / "group_firing_and_resolved.json").read_bytes()
    second = await client.post("/hooks/alertmanager/operator", content=later, headers=signed(later))
    assert second.status_code == 202
    resolved, repeated = second.json()["signals"]
    assert second.json()["accepted"] == 2
    assert resolved["action"] == "resolve"
    assert resolved["incident_id"] == opened[0]["incident_id"]
    assert repeated["action"] == "update"
    assert repeated["incident_id"] == opened[1]["incident_id"]
    rows = await signals_table(daemon, "signal_id, source, kind, dedup_key, incident_action")
    by_id = {row[0]: row[1:] for row in rows}
    assert len(by_id) == 4
    assert [by_id[s["signal_id"]] for s in (resolved, repeated)] == [
        ("alertmanager", "resolve", "am:8d1f6b0e3c2a4f57", "resolve"),
        ("alertmanager", "alert", "am:2b7e95c4a0d81f36", "update"),
    ]


async def test_a_probe_batch_journals_every_verdict_with_its_cluster_key(
    client: httpx.AsyncClient, daemon: Daemon
) -> None:
    batch = (FIXTURES / "probe" / "batch.json").read_bytes()
    response = await client.post("/hooks/probe/operator", content=batch, headers=signed(batch))
    assert response.status_code == 202
    answer = response.json()
    assert answer["accepted"] == 5
    assert [(s["severity"], s["rule"], s["action"]) for s in answer["signals"]] == [
        ("high", "synthetic-check-failure", "open"),
        ("high", "synthetic-check-failure", "open"),
        ("high", "synthetic-check-failure", "open"),
        # ok verdicts with nothing open for their key: a resolve of nothing (issue 13;
        # these were audit lines borrowing the info rule), opening and sending nothing.
        ("info", "resolve", "resolve"),
        ("info", "resolve", "resolve"),
    ]
    assert ["nothing to resolve" in s.get("note", "") for s in answer["signals"]] == [
        False,
        False,
        False,
        True,
        True,
    ]
    rows = await signals_table(daemon, "signal_id, source, dedup_key, cluster_key")
    by_id = {row[0]: row[1:] for row in rows}
    assert [by_id[s["signal_id"]] for s in answer["signals"]] == [
        ("probe", "probe:registry.npmjs.org:tls_handshake", "tls_handshake|13335|npm"),
        ("probe", "probe:registry.yarnpkg.com:TLS_Handshake", "tls_handshake|13335|npm"),
        ("probe", "probe:pypi.org:slow_first_byte", "slow_first_byte|54113|pypi"),
        ("probe", "probe:index.crates.io:dns_nxdomain", None),
        ("probe", "probe:proxy.golang.org:", None),
    ]


async def test_verdicts_for_one_key_apply_in_payload_order(client: httpx.AsyncClient) -> None:
    down = json.loads(body_of("probe"))
    verdicts = [down, down | {"verdict": "ok"}, down, down | {"verdict": "timeout"}]
    verdicts += [down | {"server": f"mirror-{i}.example"} for i in range(20)]
    body = json.dumps(verdicts).encode()
    response = await client.post("/hooks/probe/operator", content=body, headers=bearer())
    assert response.status_code == 202
    actions = [s["action"] for s in response.json()["signals"]]
    assert actions[:4] == ["open", "resolve", "open", "update"]
    assert actions[4:] == ["open"] * 20


async def test_generic_alerts_get_their_declared_severity(client: httpx.AsyncClient) -> None:
    batch = (FIXTURES / "generic" / "batch.json").read_bytes()
    response = await client.post("/hooks/generic/operator", content=batch, headers=signed(batch))
    assert response.status_code == 202
    assert [(s["severity"], s["sev_channel"] is not None) for s in response.json()["signals"]] == [
        ("critical", True),
        ("high", True),
        ("medium", True),
        ("low", True),
        ("info", False),
        ("low", True),
        ("high", True),
    ]
    resolved = (FIXTURES / "generic" / "high_resolved.json").read_bytes()
    response = await client.post("/hooks/generic/operator", content=resolved, headers=bearer())
    [signal] = response.json()["signals"]
    assert signal["action"] == "resolve"


async def test_a_full_pipeline_part_way_is_503_saying_how_many_were_accepted(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await _daemon(nursery, tmp_path / "data", fake_slack, CONFIG + "ingest_queue: 1\n")
    try:
        verdicts = [
            json.loads(body_of("probe")) | {"server": f"mirror-{i}.example"} for i in range(200)
        ]
        body = json.dumps(verdicts).encode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.bound_port}") as c:
            response = await c.post("/hooks/probe/operator", content=body, headers=bearer())
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        answer = response.json()
        assert answer["error"] == "ingest queue is full; retry shortly"
        assert answer["total"] == 200
        # The batch goes in chunks; the chunks the queue took are journalled whole (the one
        # handed straight to the waiting incidents actor, and the one its queue holds).
        assert 0 < answer["accepted"] < 200
        assert answer["accepted"] % BATCH_CHUNK == 0
        rows = await signals_table(daemon, "signal_id")
        assert len(rows) == answer["accepted"]
    finally:
        daemon.request_stop()


async def test_the_sentry_hook_is_unchanged_beside_them(client: httpx.AsyncClient) -> None:
    response = await client.post("/hooks/sentry/operator", content=b"{}")
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong Sentry-Hook-Signature"}
    assert (await client.post("/hooks/nagios/operator", content=b"{}")).status_code == 404


def test_hook_credentials_resolve_from_the_environment() -> None:
    config = parse_file_config(
        "tenants:\n  acme-eu: {tier: team}\n  beta: {tier: team, webhook_secret_env: BETA_WHSEC}\n"
    )
    settings = settings_from(
        config,
        {
            "EYETOK_HOOK_TOKEN": "op-token",
            "EYETOK_HOOK_SECRET_ACME_EU": HOOK_SECRET,
            "EYETOK_HOOK_SECRET_BETA": HOOK_SECRET,  # not read: the file names another
        },
    )
    operator, acme, beta = (settings.tenants[t] for t in ("operator", "acme-eu", "beta"))
    assert (operator.hook_secret, operator.hook_token) == (None, "op-token")
    assert (acme.hook_secret, acme.hook_token) == (HOOK_SECRET, None)
    assert (acme.hook_secret_env, acme.hook_token_env) == (
        "EYETOK_HOOK_SECRET_ACME_EU",
        "EYETOK_HOOK_TOKEN_ACME_EU",
    )
    assert (beta.hook_secret, beta.hook_secret_env) == (None, "BETA_WHSEC")


def test_a_malformed_hook_secret_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(parse_file_config(""), {"EYETOK_HOOK_SECRET": "not-a-whsec"})
    assert caught.value.field == "EYETOK_HOOK_SECRET"
    assert "whsec_" in caught.value.problem
