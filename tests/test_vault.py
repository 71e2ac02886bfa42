"""Credentials from the vault: the real infisicalsdk client against a fake Infisical."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from eyetok import vault
from eyetok.errors import ConfigError
from tests.peers.infisical import FakeInfisical


@pytest.fixture
def infisical() -> Iterator[FakeInfisical]:
    with FakeInfisical() as peer:
        yield peer


def test_the_vault_stands_over_the_environment_and_says_where_each_came_from(
    infisical: FakeInfisical,
) -> None:
    infisical.put("SLACK_BOT_TOKEN", "xoxb-from-vault")
    infisical.put("EYETOK_ROOT_TOKEN", "root-from-vault")
    env = {
        **infisical.env(),
        "SLACK_BOT_TOKEN": "xoxb-from-env",
        "SLACK_SIGNING_SECRET": "signing-from-env",
    }
    loaded = vault.load(env)
    assert loaded.settings.sink_secrets["slack"] == "xoxb-from-vault"
    assert loaded.settings.root_token == "root-from-vault"
    assert loaded.settings.slack_signing_secret == "signing-from-env"  # not in the vault
    assert loaded.origins["SLACK_BOT_TOKEN"] == "vault"
    assert loaded.origins["EYETOK_ROOT_TOKEN"] == "vault"
    assert loaded.origins["SLACK_SIGNING_SECRET"] == "environment"
    assert loaded.origins["DATABASE_URL"] == "unset"
    assert infisical.logins == 1
    assert infisical.reads == 1


def test_another_folder_of_the_vault_is_not_read(infisical: FakeInfisical) -> None:
    infisical.put("SLACK_BOT_TOKEN", "xoxb-elsewhere", path="/Raxx/Other/")
    loaded = vault.load({**infisical.env(), "SLACK_BOT_TOKEN": "xoxb-env"})
    assert loaded.settings.sink_secrets["slack"] == "xoxb-env"
    assert loaded.origins["SLACK_BOT_TOKEN"] == "environment"


def test_the_vault_cannot_redirect_how_it_is_reached(infisical: FakeInfisical) -> None:
    infisical.put("INFISICAL_SITE_URL", "http://127.0.0.1:1")
    infisical.put("SLACK_BOT_TOKEN", "xoxb-v")
    loaded = vault.load(infisical.env())
    assert loaded.settings.sink_secrets["slack"] == "xoxb-v"
    assert loaded.vault == f"{infisical.base_url} /Raxx/Eyetok/"


def test_without_infisical_settings_the_environment_is_all(infisical: FakeInfisical) -> None:
    loaded = vault.load({"SLACK_BOT_TOKEN": "xoxb-env"})
    assert loaded.vault is None
    assert loaded.origins["SLACK_BOT_TOKEN"] == "environment"
    assert infisical.logins == 0


def test_a_refused_identity_is_a_config_error_naming_it(infisical: FakeInfisical) -> None:
    env = {**infisical.env(), "INFISICAL_CLIENT_SECRET": "wrong"}
    with pytest.raises(ConfigError, match="refused the machine identity") as caught:
        vault.load(env)
    assert caught.value.field == "INFISICAL_CLIENT_ID"
    assert "wrong" not in str(caught.value)


def test_an_unknown_project_is_a_config_error(infisical: FakeInfisical) -> None:
    env = {**infisical.env(), "INFISICAL_PROJECT_ID": "proj-nobody"}
    with pytest.raises(ConfigError, match="would not list") as caught:
        vault.load(env)
    assert caught.value.field == "INFISICAL_PROJECT_ID"


def test_half_the_settings_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="the vault needs") as caught:
        vault.load({"INFISICAL_CLIENT_ID": "x", "INFISICAL_SITE_URL": "http://127.0.0.1:9"})
    assert caught.value.field == "INFISICAL_CLIENT_SECRET"


def test_a_relative_secret_path_is_refused(infisical: FakeInfisical) -> None:
    with pytest.raises(ConfigError) as caught:
        vault.load({**infisical.env(), "INFISICAL_SECRET_PATH": "Raxx/Eyetok"})
    assert caught.value.field == "INFISICAL_SECRET_PATH"
