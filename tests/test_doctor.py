"""``eyetok doctor``: every capability ready or naming what unlocks it."""

from __future__ import annotations

from pathlib import Path

from psycopg.conninfo import make_conninfo

from eyetok import doctor
from eyetok.config import parse_file_config, settings_from
from eyetok.onboarding import find_postgres_problem
from tests.pg import app_role

EVERYTHING = {
    "SENTRY_CLIENT_SECRET": "sentry-secret",
    "SLACK_BOT_TOKEN": "xoxb-test",
    "EYETOK_ROOT_TOKEN": "root",
    "SLACK_SIGNING_SECRET": "signing",
    "EYETOK_PUBLIC_URL": "https://eyetok.example.com",
}


def _checks(env: dict[str, str], config: str = "", **kwargs: object) -> list[doctor.Check]:
    settings = settings_from(parse_file_config(config), env)
    return doctor.diagnose(settings, environ=env, **kwargs)  # type: ignore[arg-type]


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.capability: c for c in checks}


def test_a_fresh_install_names_every_variable_the_main_job_needs() -> None:
    checks = _checks({})
    assert not doctor.main_job_ready(checks)
    missing = {c.capability: c.unlock for c in checks if c.essential and not c.ready}
    assert set(missing) == {
        "sentry-ingest:operator",
        "sink:slack",
        "operator-api",
        "slack-handshake",
    }
    assert "SENTRY_CLIENT_SECRET" in str(missing["sentry-ingest:operator"])
    assert "SLACK_BOT_TOKEN" in str(missing["sink:slack"])
    assert "EYETOK_ROOT_TOKEN" in str(missing["operator-api"])
    assert "SLACK_SIGNING_SECRET" in str(missing["slack-handshake"])
    assert "/slack/events" in str(missing["slack-handshake"])
    text = "\n".join(doctor.lines(checks))
    assert text.endswith("Sentry -> Slack cannot work yet: 4 MISSING above; do what each -> says.")


def test_with_the_readme_variables_the_main_job_is_ready() -> None:
    checks = _checks(EVERYTHING)
    assert doctor.main_job_ready(checks)
    named = _by_name(checks)
    assert named["slack-handshake"].detail.endswith("https://eyetok.example.com/slack/events")
    assert "public-url" not in named
    assert doctor.lines(checks)[-1] == "Sentry -> Slack: ready."
    # the optional parts say what unlocks them, without blocking the main job
    assert named["sev1-sop-link"].unlock == "set EYETOK_SOP_URL to the Emergency SOP runbook"
    assert "EYETOK_HOOK_TOKEN" in str(named["other-hooks:operator"].unlock)
    assert "DATABASE_URL" in str(named["postgres-mirror"].unlock)


def test_an_unverified_slack_sink_blocks_the_main_job_and_names_the_command() -> None:
    not_yet = _checks(EVERYTHING, verifications={"slack": "never verified"})
    assert not doctor.main_job_ready(not_yet)
    handshake = _by_name(not_yet)["handshake:slack"]
    assert handshake.essential
    assert handshake.unlock == "python3 -m uv run eyetok verify slack (on the running daemon)"
    live = _checks(EVERYTHING, verifications={"slack": None})
    assert doctor.main_job_ready(live)
    assert _by_name(live)["handshake:slack"].detail == "verified: deliverable"


def test_a_data_dir_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    problem = doctor.find_data_dir_problem(blocker / "data")
    assert problem is not None
    assert str(blocker / "data") in problem
    checks = _checks(EVERYTHING, data_dir_problem=problem)
    assert not doctor.main_job_ready(checks)
    assert "EYETOK_DATA_DIR" in str(_by_name(checks)["data-dir"].unlock)
    assert doctor.find_data_dir_problem(tmp_path / "fresh" / "data") is None


def test_other_tenants_and_sinks_name_their_own_variables() -> None:
    config = """
sinks:
  slack: {type: slack}
  acme-hook:
    {type: webhook, tenant: acme, url: "https://hooks.acme.example/x", secret_env: ACME_WHSEC}
tenants:
  acme: {tier: team, sentry_secret_env: ACME_SENTRY_SECRET}
"""
    named = _by_name(_checks(EVERYTHING, config))
    assert named["sentry-ingest:acme"].unlock == "set ACME_SENTRY_SECRET"
    assert "ACME_WHSEC" in str(named["sink:acme-hook"].unlock)
    assert not named["sink:acme-hook"].essential
    assert "EYETOK_HOOK_TOKEN_ACME" in str(named["other-hooks:acme"].unlock)


def test_on_a_dyno_without_postgres_the_wiped_disk_is_said() -> None:
    # DYNO alone refuses to start (postgres durability needs DATABASE_URL, test_config);
    # an operator who says the disk is fine anyway is still told what a restart wipes.
    named = _by_name(_checks({**EVERYTHING, "DYNO": "web.1", "EYETOK_DURABILITY": "disk"}))
    assert "wiped on every restart" in named["postgres-mirror"].detail


def test_setup_status_is_one_log_line_of_what_is_missing() -> None:
    status = doctor.setup_status(_checks({"SENTRY_CLIENT_SECRET": "s"}))
    assert status["main_job_ready"] is False
    assert "sentry-ingest:operator" in status["ready"]  # type: ignore[operator]
    missing = status["missing"]
    assert isinstance(missing, dict)
    assert "set SLACK_BOT_TOKEN" in missing["sink:slack"]


def test_the_doctor_tries_the_postgres_role(pg_dsn: str) -> None:
    with app_role(pg_dsn) as dsn:
        assert find_postgres_problem(dsn) is None
        named = _by_name(_checks({**EVERYTHING, "DATABASE_URL": dsn}))
        assert named["postgres-mirror"].ready
    superuser = find_postgres_problem(pg_dsn)
    assert superuser is not None
    assert superuser.endswith(
        "is a superuser or BYPASSRLS: row-level security would not keep tenants apart"
    )
    nobody = make_conninfo(pg_dsn, user="eyetok_nobody_x")
    refused = find_postgres_problem(nobody)
    assert refused is not None
    assert refused.startswith("cannot connect: ")
    assert 'role "eyetok_nobody_x" does not exist' in refused
    checks = _checks({**EVERYTHING, "DATABASE_URL": nobody}, postgres_problem=refused)
    mirror = _by_name(checks)["postgres-mirror"]
    assert not mirror.ready
    assert "fix DATABASE_URL" in str(mirror.unlock)
    assert doctor.main_job_ready(checks)  # routing goes on without the mirror
