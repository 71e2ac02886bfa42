"""The secret store's pure parts: N=2 previous versions kept, a version folded into the
settings per sink type (a webhook's 30-day overlap), sealing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError
from eyetok.rotation import material
from eyetok.rotation.sealing import Sealer, SealError, new_key
from eyetok.standard_webhooks import new_secret
from state.history import credential_store as cs

T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)


def _v(version: int, state: str) -> cs.StoredVersion:
    return cs.StoredVersion(
        sink_id="hook",
        version=version,
        sink_type="webhook",
        tenant_id="operator",
        state=state,  # type: ignore[arg-type]
        sealed=b"x",
        created_at=T0,
        created_by="alice",
        changed_at=T0,
    )


def test_the_current_and_two_previous_versions_are_kept() -> None:
    rows = [_v(1, "previous"), _v(2, "previous"), _v(3, "previous"), _v(4, "current")]
    [dropped] = cs.kept(rows, "hook", T0)
    assert (dropped.version, dropped.state, dropped.sealed) == (1, "discarded", None)
    assert cs.kept(rows[1:], "hook", T0) == []


def test_a_webhook_signs_with_the_previous_secret_for_30_days_only() -> None:
    settings = settings_from(
        parse_file_config(
            "sinks:\n  slack: {type: slack}\n"
            "  hook: {type: webhook, url: 'https://hooks.example/x', secret_env: HS}\n"
        ),
        {"HS": new_secret()},
    )
    old, new = {"secret": new_secret()}, {"secret": new_secret()}
    during = material.in_use(settings, "hook", new, since=T0, previous=old, now=T0)
    config = during.sinks["hook"]
    assert during.sink_secrets["hook"] == new["secret"]
    assert config.previous_secret_env is not None  # type: ignore[union-attr]
    assert during.sink_env[config.previous_secret_env] == old["secret"]  # type: ignore[union-attr]
    later = T0 + timedelta(days=31)
    after = material.in_use(settings, "hook", new, since=T0, previous=old, now=later)
    assert after.sinks["hook"].previous_secret_env is None  # type: ignore[union-attr]


def test_a_slack_token_must_look_like_one() -> None:
    with pytest.raises(ConfigError):
        material.slack_material("not a token")
    assert material.slack_material("xoxb-1-2-abc") == {"token": "xoxb-1-2-abc"}


def test_sealed_values_open_only_with_their_key() -> None:
    sealed = Sealer(new_key()).seal({"token": "xoxb-secret"})
    assert b"xoxb" not in sealed
    with pytest.raises(SealError):
        Sealer(new_key()).open(sealed, what="version 1 of sink slack")
    with pytest.raises(ConfigError) as caught:
        Sealer("short")
    assert caught.value.field == "EYETOK_SECRETS_KEY"
