"""Configuration: the embedded default, field paths in every ConfigError, the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from eyetok.business_hours import ET_BUSINESS_HOURS
from eyetok.config import (
    OPERATOR_TENANT,
    SINK_TYPES,
    FileConfig,
    Settings,
    load_settings,
    parse_file_config,
    settings_from,
)
from eyetok.errors import ConfigError
from eyetok.messages import SevChannel
from eyetok.policy import Route
from eyetok.sinks.slack import SlackSinkConfig

DEFAULT_CHANNELS = {
    SevChannel.SEV1: "#raxx-ops-alert-SEV1",
    SevChannel.SEV2: "#raxx-ops-alert-SEV2",
    SevChannel.SEV2_5: "#raxx-ops-alert-SEV2.5",
    SevChannel.SEV3: "#raxx-ops-alert-SEV3",
}


def config_error(text: str, env: dict[str, str] | None = None) -> ConfigError:
    """The ConfigError that parsing ``text`` (and resolving it with ``env``) raises."""
    with pytest.raises(ConfigError) as caught:
        settings_from(parse_file_config(text), env or {})
    return caught.value


# --- the embedded default --------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: settings_from(FileConfig(), {}),
        lambda: settings_from(parse_file_config(""), {}),
        lambda: settings_from(parse_file_config("# only a comment\n"), {}),
        lambda: load_settings({}),
    ],
    ids=["FileConfig()", "empty-text", "comment-only", "load_settings"],
)
def test_an_empty_environment_gives_the_operator_default(make: Callable[[], Settings]) -> None:
    settings = make()
    assert settings.port == 8080
    assert settings.operator_tenant == OPERATOR_TENANT == "operator"
    assert list(settings.tenants) == ["operator"]
    operator = settings.tenants["operator"]
    assert operator.tier == "operator"
    assert operator.sentry_secret is None
    assert operator.policy.business_hours == ET_BUSINESS_HOURS
    assert {
        channel: [(r.sink, r.target) for r in routes]
        for channel, routes in operator.policy.routes.items()
    } == {channel: [("slack", name)] for channel, name in DEFAULT_CHANNELS.items()}
    assert settings.sinks == {"slack": SlackSinkConfig()}
    assert settings.sink_types() == {"slack": "slack"}
    assert settings.sink_secrets == {}
    assert settings.configured_sinks() == []
    assert settings.slack.oncall_user is None
    assert settings.data_dir == Path(".eyetok")
    assert settings.database_url is None
    assert settings.log_level == "info"


# --- every ConfigError names its field -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("bogus: 1\n", "bogus", "unknown field `bogus`"),
        ("tenants:\n  acme:\n    colour: red\n", "tenants.acme.colour", "unknown field `colour`"),
        (
            "tenants:\n  alpha: {}\n  beta:\n    tier: gold\n    colour: red\n",
            "tenants.beta.colour",
            "unknown field `colour`",
        ),
        (
            "tenants:\n  acme:\n    policy:\n      routes:\n        SEV1:\n"
            "          - sink: slack\n            target: '#x'\n            extra: 1\n",
            "tenants.acme.policy.routes.SEV1[0].extra",
            "unknown field `extra`",
        ),
        ("slack:\n  oncall: U1\n", "slack.oncall", "unknown field `oncall`"),
        ("sinks:\n  chat:\n    type: slack\n    colour: x\n", "sinks.chat.colour", "colour"),
        ("ingest_queue: lots\n", "ingest_queue", "Expected `int`, got `str`"),
        ("tenants:\n  acme:\n    tier: [1, 2]\n", "tenants.acme.tier", "Expected `str`"),
        ("delivery:\n  max_age_s: many\n", "delivery.max_age_s", "Expected `float`"),
        ("tenants: [acme]\n", "tenants", "Expected `object`"),
        ("log_level: loud\n", "log_level", "loud"),
        (
            "tenants:\n  acme:\n    policy:\n      routes:\n        SEV9: []\n",
            "tenants.acme.policy.routes",
            "SEV9",
        ),
        ("tenants:\n  Acme: {}\n", "tenants.Acme", "tenant ids"),
        ("ingest_queue: 0\n", "ingest_queue", "at least 1"),
        ("- just\n- a list\n", "config", "mapping"),
        ("tenants: [\n", "config", "YAML"),
    ],
    ids=[
        "unknown-top-level-key",
        "unknown-tenant-key",
        "unknown-key-in-second-tenant",
        "unknown-route-key",
        "unknown-slack-key",
        "unknown-sink-key",
        "wrong-type-top-level",
        "wrong-type-in-tenant",
        "wrong-type-nested",
        "tenants-not-a-mapping",
        "bad-log-level",
        "unknown-channel",
        "bad-tenant-id",
        "empty-ingest-queue",
        "not-a-mapping",
        "not-yaml",
    ],
)
def test_a_config_error_names_the_field(text: str, field: str, needle: str) -> None:
    error = config_error(text)
    assert error.field == field
    assert needle in error.problem
    assert str(error).startswith(f"config {field}: ")


def test_a_route_to_a_missing_sink_names_the_route() -> None:
    error = config_error(
        "sinks:\n  slack: {type: slack}\n  acme-slack: {type: slack, tenant: acme}\n"
        "tenants:\n  acme:\n    policy:\n      routes:\n        SEV2:\n"
        "          - sink: acme-slack\n            target: '#ok'\n"
        "          - sink: pager\n            target: routing-key\n"
    )
    assert error.field == "tenants.acme.policy.routes.SEV2[1].sink"
    assert "'pager'" in error.problem
    assert "slack" in error.problem


def test_routes_may_name_a_configured_sink() -> None:
    settings = settings_from(
        parse_file_config(
            "sinks:\n  slack:\n    type: slack\n"
            "  ops:\n    type: slack\n    token_env: OPS_TOKEN\n    tenant: acme\n"
            "tenants:\n  acme:\n    policy:\n      routes:\n        SEV1:\n"
            "          - sink: ops\n            target: '#acme-sev1'\n"
        ),
        {"OPS_TOKEN": "xoxb-ops"},
    )
    assert settings.sinks == {
        "slack": SlackSinkConfig(),
        "ops": SlackSinkConfig(token_env="OPS_TOKEN", tenant="acme"),
    }
    assert settings.sink_secrets == {"ops": "xoxb-ops"}
    assert settings.configured_sinks() == ["ops"]
    assert settings.tenants["acme"].policy.routes == {
        SevChannel.SEV1: (Route(sink="ops", target="#acme-sev1"),)
    }
    # Configured sinks replace the default one; the operator's default policy still routes
    # to "slack", so a file without a "slack" sink is an error named on the operator's route.
    with pytest.raises(ConfigError) as caught:
        settings_from(
            parse_file_config("sinks:\n  ops:\n    type: slack\n"),
            {},
        )
    assert caught.value.field.startswith("tenants.operator.policy.routes.SEV")
    assert caught.value.field.endswith("[0].sink")


@pytest.mark.parametrize(
    ("acme_sink", "env"),
    [
        ("{type: slack, tenant: acme}", {}),  # SLACK_BOT_TOKEN: the operator's variable
        ("{type: slack, tenant: acme, token_env: ACME_T}", {"ACME_T": "xoxb-operator"}),
    ],
)
def test_a_tenant_slack_sink_on_the_operators_bot_token_is_refused(
    acme_sink: str, env: dict[str, str]
) -> None:
    text = f"sinks:\n  slack: {{type: slack}}\n  acme-slack: {acme_sink}\ntenants:\n  acme: {{}}\n"
    with pytest.raises(ConfigError) as caught:
        settings_from(parse_file_config(text), {"SLACK_BOT_TOKEN": "xoxb-operator", **env})
    assert caught.value.field == "sinks.acme-slack.token_env"
    assert "operator's workspace" in caught.value.problem
    # its own workspace's token is fine; a drill tenant is the operator's own
    own = text.replace(acme_sink, "{type: slack, tenant: acme, token_env: ACME_T}")
    settings_from(parse_file_config(own), {"SLACK_BOT_TOKEN": "xoxb-op", "ACME_T": "xoxb-acme"})
    drill = text.replace("acme: {}", "acme: {tier: drill}")
    settings_from(parse_file_config(drill), {"SLACK_BOT_TOKEN": "xoxb-operator", **env})


@pytest.mark.parametrize("port", ["abc", "", "80.5", "70000", "-1", "65536"])
def test_a_bad_port_names_port(port: str) -> None:
    error = config_error("", {"PORT": port})
    assert error.field == "PORT"
    assert repr(port) in error.problem or port in error.problem


@pytest.mark.parametrize("port", ["0", "8080", "65535"])
def test_a_good_port_is_read(port: str) -> None:
    assert settings_from(FileConfig(), {"PORT": port}).port == int(port)


def test_an_unknown_sink_type_lists_the_allowed_types() -> None:
    error = config_error("sinks:\n  text:\n    type: sms\n")
    assert error.field == "sinks.text.type"
    assert "sms" in error.problem
    for sink_type in SINK_TYPES:
        assert sink_type in error.problem
    assert SINK_TYPES == ("slack", "webhook", "email", "pagerduty")


def test_a_bad_business_window_in_a_tenant_is_a_config_error() -> None:
    error = config_error(
        "tenants:\n  acme:\n    policy:\n      business_hours:\n        zone: Mars/Base\n"
    )
    assert error.field.endswith("business_hours.zone")
    assert "Mars/Base" in error.problem


def test_a_tenant_business_window_is_parsed() -> None:
    settings = settings_from(
        parse_file_config(
            "tenants:\n  uk:\n    policy:\n      business_hours:\n"
            "        zone: Europe/London\n        start: '09:00'\n        end: '17:00'\n"
        ),
        {},
    )
    window = settings.tenants["uk"].policy.business_hours
    assert (window.zone, window.start, window.end) == ("Europe/London", "09:00", "17:00")
    assert set(settings.tenants) == {"uk", "operator"}


# --- the environment -------------------------------------------------------------------


def test_the_on_call_user_and_sentry_secret_are_read_from_the_environment() -> None:
    settings = settings_from(
        FileConfig(),
        {"EYETOK_ONCALL_SLACK_USER": "U0ONCALL", "SENTRY_CLIENT_SECRET": "s3cret"},
    )
    assert settings.slack.oncall_user == "U0ONCALL"
    assert settings.tenants["operator"].sentry_secret == "s3cret"


def test_the_environment_overrides_the_file_on_call_user() -> None:
    config = parse_file_config("slack:\n  oncall_user: UFILE\n")
    assert settings_from(config, {}).slack.oncall_user == "UFILE"
    assert settings_from(config, {"EYETOK_ONCALL_SLACK_USER": "UENV"}).slack.oncall_user == "UENV"


def test_an_empty_secret_is_no_secret() -> None:
    settings = settings_from(FileConfig(), {"SENTRY_CLIENT_SECRET": ""})
    assert settings.tenants["operator"].sentry_secret is None


def test_each_tenant_reads_its_own_sentry_secret() -> None:
    config = parse_file_config(
        "tenants:\n  acme-co: {}\n  beta:\n    sentry_secret_env: BETA_SENTRY\n"
    )
    settings = settings_from(
        config,
        {
            "SENTRY_CLIENT_SECRET": "operator-secret",
            "SENTRY_CLIENT_SECRET_ACME_CO": "acme-secret",
            "BETA_SENTRY": "beta-secret",
        },
    )
    assert settings.tenants["operator"].sentry_secret == "operator-secret"
    assert settings.tenants["acme-co"].sentry_secret == "acme-secret"
    assert settings.tenants["beta"].sentry_secret == "beta-secret"


def test_other_environment_variables_are_read() -> None:
    settings = settings_from(
        FileConfig(),
        {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_API_URL": "http://127.0.0.1:9999/api/",
            "EYETOK_DATA_DIR": "/var/lib/eyetok",
            "EYETOK_LOG_LEVEL": "debug",
            "DATABASE_URL": "postgresql://localhost/eyetok",
        },
    )
    assert settings.sink_secrets == {"slack": "xoxb-1"}
    assert settings.configured_sinks() == ["slack"]
    assert settings.slack_api_url == "http://127.0.0.1:9999/api/"
    assert settings.data_dir == Path("/var/lib/eyetok")
    assert settings.log_level == "debug"
    assert settings.database_url == "postgresql://localhost/eyetok"


def test_load_settings_reads_the_file_named_by_eyetok_config(tmp_path: Path) -> None:
    path = tmp_path / "eyetok.yaml"
    path.write_text("operator_tenant: ops\ningest_queue: 16\n")
    settings = load_settings({"EYETOK_CONFIG": str(path), "PORT": "9090"})
    assert settings.operator_tenant == "ops"
    assert list(settings.tenants) == ["ops"]
    assert settings.tenants["ops"].tier == "operator"
    assert settings.ingest_queue == 16
    assert settings.port == 9090


def test_load_settings_names_the_file_in_its_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"EYETOK_CONFIG": str(tmp_path / "absent.yaml")})
    assert caught.value.field == "EYETOK_CONFIG"
    assert "absent.yaml" in caught.value.problem

    path = tmp_path / "broken.yaml"
    path.write_text("tenants: [\n")
    with pytest.raises(ConfigError) as caught:
        load_settings({"EYETOK_CONFIG": str(path)})
    assert caught.value.field == str(path)


def test_every_tenant_gets_its_tiers_hourly_budget_from_the_registry() -> None:
    from eyetok.config import load_tier_defaults

    assert load_tier_defaults() == {
        "public": 50,
        "author": 200,
        "team": 1000,
        "enterprise": 5000,
        "drill": 10,
        "operator": None,
    }
    settings = settings_from(
        parse_file_config("tenants:\n  acme: {tier: team}\n  newcomer: {}\n  d: {tier: drill}\n"),
        {},
    )
    budgets = {t: (v.tier, v.hourly_budget) for t, v in settings.tenants.items()}
    assert budgets == {
        "acme": ("team", 1000),
        "newcomer": ("public", 50),
        "d": ("drill", 10),
        "operator": ("operator", None),
    }


def test_an_unknown_tier_stops_start_up_naming_the_tenant() -> None:
    error = config_error("tenants:\n  acme: {tier: gold}\n")
    assert error.field == "tenants.acme.tier"
    assert "gold" in error.problem
    assert "enterprise" in error.problem


# --- delivery: ages and the hold ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "needle"),
    [
        ("delivery: {unverified_hold_s: 0}\n", "delivery.unverified_hold_s", "positive"),
        ("delivery: {max_age_s: -1}\n", "delivery.max_age_s", "positive"),
        ("delivery: {max_backoff_s: .nan}\n", "delivery.max_backoff_s", "positive"),
        (
            "delivery: {max_age_s: 900, notice_max_age_s: 600}\n",
            "delivery.notice_max_age_s",
            "outlive the failures it reports",
        ),
        ("slack: {request_timeout_s: 30}\n", "slack.request_timeout_s", "at most 10"),
        ("delivery: {max_attempts: 8}\n", "delivery.max_attempts", "unknown field"),
    ],
)
def test_bad_delivery_ages_are_refused_naming_the_field(text: str, field: str, needle: str) -> None:
    error = config_error(text)
    assert error.field == field
    assert needle in error.problem


def test_operator_notices_are_retried_four_times_as_long_unless_told() -> None:
    default = settings_from(parse_file_config(""), {}).delivery
    assert (default.max_age_s, default.notices_max_age_s(), default.unverified_hold_s) == (
        900.0,
        3600.0,
        86_400.0,
    )
    longer = settings_from(parse_file_config("delivery: {max_age_s: 1200}\n"), {}).delivery
    assert longer.notices_max_age_s() == 4800.0
    told = "delivery: {max_age_s: 60, notice_max_age_s: 7200}\n"
    assert settings_from(parse_file_config(told), {}).delivery.notices_max_age_s() == 7200.0
    slack = settings_from(parse_file_config("slack: {request_timeout_s: 2.5}\n"), {}).slack
    assert slack.request_timeout_s == 2.5


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "disk"),
        ({"DATABASE_URL": "postgresql://x/y"}, "disk"),  # a persistent disk: the journal
        ({"DYNO": "web.1", "DATABASE_URL": "postgresql://x/y"}, "postgres"),
        ({"DYNO": "web.1", "EYETOK_DURABILITY": "disk"}, "disk"),  # said so explicitly
        ({"EYETOK_DURABILITY": "Postgres", "DATABASE_URL": "postgresql://x/y"}, "postgres"),
    ],
)
def test_durability_defaults_to_postgres_only_on_a_dyno(env: dict[str, str], expected: str) -> None:
    assert load_settings(env).durability == expected


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"DYNO": "web.1"}, "DYNO is set"),
        ({"EYETOK_DURABILITY": "postgres"}, "needs DATABASE_URL"),
        ({"EYETOK_DURABILITY": "tape"}, "'tape' is not disk or postgres"),
    ],
)
def test_durability_that_cannot_hold_is_refused_at_start(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    assert refused.value.field == "EYETOK_DURABILITY"
    assert says in str(refused.value)
