"""The tenant API's pure parts: tokens kept as hashes, what a tenant may write, and the
settings its writes produce."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.messages import SevChannel, TenantToken
from eyetok.policy import Route
from eyetok.tenant_api import (
    TenantApiError,
    TenantOverlay,
    live_tokens,
    match_token,
    new_token,
    parse_routes,
    parse_sink,
    token_hash,
    with_overlays,
)

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BASE = settings_from(
    parse_file_config(
        """
sinks:
  slack: {type: slack}
  beta-slack: {type: slack, tenant: beta, token_env: BETA_SLACK_TOKEN}
tenants:
  acme: {tier: team}
  acme-x: {tier: team}
  beta: {tier: team}
"""
    ),
    {"ACME_WHSEC": "whsec_" + "A" * 32, "ACME_X_WHSEC": "x", "SLACK_BOT_TOKEN": "xoxb-op"},
)


def record(token: str, tenant: str = "acme", token_id: str = "tok_1") -> TenantToken:
    return TenantToken(
        token_id=token_id,
        tenant=tenant,
        token_hash=token_hash(token),
        issued_at=AT,
        issued_by="root",
    )


def test_tokens_are_kept_as_hashes_and_matched_only_while_live() -> None:
    token = new_token()
    assert token.startswith("etk_")
    assert len(token) > 40
    kept = record(token)
    assert token not in kept.token_hash
    assert len(kept.token_hash) == 64
    assert match_token(token, [record("etk_other", token_id="tok_0"), kept]) == kept
    assert match_token(token + "x", [kept]) is None
    rows = [kept, record("etk_2", token_id="tok_2")]
    rows.append(
        TenantToken(
            token_id="tok_1",
            tenant="acme",
            token_hash=kept.token_hash,
            issued_at=AT,
            issued_by="root",
            revoked_at=AT,
        )
    )
    assert set(live_tokens(rows)) == {"tok_2"}
    assert match_token(token, live_tokens(rows).values()) is None


def test_a_tenant_names_only_its_own_sinks_and_environment() -> None:
    hook = {"type": "webhook", "url": "https://hooks.acme.example/x", "secret_env": "ACME_WHSEC"}
    assert parse_sink("acme", "acme.hook", hook, BASE).tenant == "acme"
    for sink_id, body, status, field in (
        ("beta.hook", hook, 403, "sink_id"),
        ("acme.hook", {**hook, "tenant": "beta"}, 403, "tenant"),
        ("acme.hook", {**hook, "secret_env": "ACME_X_WHSEC"}, 400, "secret_env"),  # acme-x's
        ("acme.hook", {**hook, "secret_env": "SLACK_BOT_TOKEN"}, 400, "secret_env"),
        ("slack", {"type": "slack"}, 400, "sink_id"),
        ("acme.sms", {"type": "sms"}, 400, "type"),
    ):
        with pytest.raises(TenantApiError) as refused:
            parse_sink("acme", sink_id, body, BASE)
        assert (refused.value.status, refused.value.field) == (status, field), (sink_id, body)
    assert parse_sink("acme-x", "acme-x.hook", {**hook, "secret_env": "ACME_X_WHSEC"}, BASE)


def test_routes_name_only_the_tenants_own_sinks() -> None:
    sinks = dict(BASE.sinks)
    with pytest.raises(TenantApiError) as refused:
        parse_routes("acme", {"routes": {"SEV1": [{"sink": "beta-slack", "target": "#x"}]}}, sinks)
    assert refused.value.cross_tenant
    assert refused.value.field == "routes.SEV1[0].sink"
    with pytest.raises(TenantApiError) as refused:
        parse_routes("acme", {"routes": {"SEV1": [{"sink": "nowhere", "target": "#x"}]}}, sinks)
    assert not refused.value.cross_tenant


def test_overlays_add_the_tenants_sinks_and_routes_and_nothing_of_anothers() -> None:
    hook = parse_sink(
        "acme",
        "acme.hook",
        {"type": "webhook", "url": "https://hooks.acme.example/x", "secret_env": "ACME_WHSEC"},
        BASE,
    )
    routes = {SevChannel.SEV1: (Route(sink="acme.hook", target="acme"),)}
    smuggled = {SevChannel.SEV1: (Route(sink="beta-slack", target="#x"),)}
    settings = with_overlays(
        BASE,
        {
            "acme": TenantOverlay(sinks={"acme.hook": hook}, routes=routes),
            "beta": TenantOverlay(sinks={"beta.evil": hook}, routes=smuggled),  # acme's config
            "gone": TenantOverlay(routes=routes),
        },
    )
    assert settings.sinks["acme.hook"] == hook
    assert "beta.evil" not in settings.sinks
    assert settings.sink_secrets["acme.hook"] == "whsec_" + "A" * 32
    assert settings.tenants["acme"].policy.routes == routes
    assert settings.tenants["beta"].policy.routes == smuggled  # its own sink: kept
    assert "gone" not in settings.tenants
    assert BASE.tenants["acme"].policy.routes == {}  # the file's settings are untouched
