"""eyetok/access.py, the one authorisation function, as a table; the ``people:`` section's
typed errors; the README's example."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eyetok.access import (
    Action,
    Binding,
    Caller,
    Hat,
    JustificationRefused,
    Refused,
    Role,
    Roster,
    authorise,
    check_why,
    parse_for,
)
from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
ROSTER = Roster(
    bindings=(
        Binding(person="U0VIC", role=Role.VIEWER),
        Binding(person="U0CAROL", role=Role.RESPONDER, tenant="acme"),
        Binding(person="U0BOB", role=Role.ALERT_RULE_REVIEWER),
        Binding(person="U0ALICE", role=Role.ROOT_OPERATOR),
        Binding(person="U0ALICE", role=Role.TENANT_SCOPED_OPERATOR, tenant="acme"),
    ),
    people=frozenset({"U0VIC", "U0CAROL", "U0BOB", "U0ALICE"}),
)


def person(slack_id: str) -> Caller:
    return Caller(kind="person", id=slack_id)


def wearing(role: Role, tenant: str | None = None) -> Roster:
    hat = Hat(
        hat_id="hat_1",
        person="U0ALICE",
        role=role,
        tenant=tenant,
        since=NOW - timedelta(hours=1),
        until=NOW + timedelta(hours=1),
        why="cover for Sam",
    )
    return Roster(bindings=ROSTER.bindings, hats=(hat,), people=ROSTER.people)


@pytest.mark.parametrize(
    ("who", "action", "tenant", "needed"),
    [
        ("U0VIC", Action.VIEW, None, None),
        ("U0VIC", Action.ACKNOWLEDGE, "acme", Role.RESPONDER),
        ("U0CAROL", Action.ACKNOWLEDGE, "acme", None),
        ("U0CAROL", Action.ACKNOWLEDGE, "beta", Role.RESPONDER),  # bound to acme only
        ("U0CAROL", Action.VIEW, "acme", None),
        ("U0CAROL", Action.VIEW, "beta", Role.VIEWER),  # nor may she read beta's
        ("U0CAROL", Action.VIEW, None, Role.VIEWER),  # nor every tenant's at once
        ("U0CAROL", Action.CONFIGURE_TENANT, "acme", Role.TENANT_SCOPED_OPERATOR),
        ("U0BOB", Action.REVIEW_RULES, None, None),
        ("U0BOB", Action.OPERATE, None, Role.ROOT_OPERATOR),
        ("U0ALICE", Action.OPERATE, None, Role.ROOT_OPERATOR),  # held, not worn
        ("U0ALICE", Action.CONFIGURE_TENANT, "acme", Role.TENANT_SCOPED_OPERATOR),
        ("U0ALICE", Action.REVIEW_RULES, None, Role.ALERT_RULE_REVIEWER),
        ("U0NOBODY", Action.VIEW, None, Role.VIEWER),
    ],
)
def test_each_role_without_a_hat(
    who: str, action: Action, tenant: str | None, needed: Role | None
) -> None:
    if needed is None:
        assert authorise(person(who), action, tenant, ROSTER, NOW).via == "binding"
    else:
        with pytest.raises(Refused) as refused:
            authorise(person(who), action, tenant, ROSTER, NOW)
        assert refused.value.needed_role is needed
        assert str(needed) in refused.value.message


def test_hats_root_session_and_root_token() -> None:
    alice = person("U0ALICE")
    as_root = wearing(Role.ROOT_OPERATOR)
    assert authorise(alice, Action.OPERATE, None, as_root, NOW).via == "hat"
    for action in (Action.ACKNOWLEDGE, Action.CONFIGURE_TENANT):
        with pytest.raises(Refused, match="root_operator session is refused"):
            authorise(alice, action, "acme", as_root, NOW)
    for_acme = wearing(Role.TENANT_SCOPED_OPERATOR, "acme")
    assert authorise(alice, Action.CONFIGURE_TENANT, "acme", for_acme, NOW).role is (
        Role.TENANT_SCOPED_OPERATOR
    )
    with pytest.raises(Refused):
        authorise(alice, Action.CONFIGURE_TENANT, "beta", for_acme, NOW)
    with pytest.raises(Refused):  # the hat ran out
        authorise(alice, Action.CONFIGURE_TENANT, "acme", for_acme, NOW + timedelta(hours=2))
    root = Caller(kind="root_token", id="root")
    assert authorise(root, Action.OPERATE, None, ROSTER, NOW).via == "root_token"
    with pytest.raises(Refused, match="root token is for automation"):
        authorise(root, Action.ACKNOWLEDGE, "acme", ROSTER, NOW)
    with pytest.raises(Refused, match="not the root token"):
        authorise(root, Action.REVIEW_RULES, None, ROSTER, NOW)
    token = Caller(kind="tenant_token", id="tok_1", tenant="acme")
    assert authorise(token, Action.CONFIGURE_TENANT, "acme", ROSTER, NOW).via == "tenant_token"
    with pytest.raises(Refused):
        authorise(token, Action.CONFIGURE_TENANT, "beta", ROSTER, NOW)


def test_open_mode_allows_everything_as_before_roles() -> None:
    grant = authorise(
        Caller(kind="root_token", id="root"), Action.ACKNOWLEDGE, "acme", Roster(), NOW
    )
    assert grant.via == "open_mode"


@pytest.mark.parametrize("why", ["", "fix", "  fixing   ", "fix it", "!!! ... ???"])
def test_a_justification_is_a_sentence(why: str) -> None:
    with pytest.raises(JustificationRefused):
        check_why(why)


def test_durations() -> None:
    assert check_why("  cover for   X ") == "cover for X"
    assert parse_for("8h") == timedelta(hours=8)
    assert parse_for("90m") == timedelta(minutes=90)
    for bad in ("25h", "0h", "8", "8d", "-1h"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_for(bad)


TENANT = "people[0].roles[0].tenant"


@pytest.mark.parametrize(
    ("people", "field"),
    [
        ("[{slack_user_id: alice, roles: [{role: viewer}]}]", "people[0].slack_user_id"),
        ("[{slack_user_id: U0A, roles: [{role: tenant_scoped_operator}]}]", TENANT),
        ("[{slack_user_id: U0A, roles: [{role: root_operator, tenant: acme}]}]", TENANT),
        ("[{slack_user_id: U0A, roles: [{role: responder, tenant: nope}]}]", TENANT),
        ("[{slack_user_id: U0A, roles: [{role: janitor}]}]", "people[0].roles[0].role"),
        ("[{slack_user_id: U0A, roles: []}]", "people[0].roles"),
        ("[{slack_user_id: U0A, roles: [{role: viewer}], shoe: 9}]", "people[0].shoe"),
    ],
)  # fmt: skip
def test_the_people_section_names_the_culprit(people: str, field: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from(parse_file_config(f"tenants: {{acme: {{}}}}\npeople: {people}\n"), {})
    assert refused.value.field == field


def test_the_readme_example_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "people:" in b]
    settings = settings_from(parse_file_config("tenants: {acme: {}}\n" + example), {})
    assert [p.slack_user_id for p in settings.people] == ["U0ALICE", "U0BOB"]
