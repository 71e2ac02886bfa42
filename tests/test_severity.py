"""The canonical severity table (design section 2): every row, the default rule, rule order,
and every recorded Sentry fixture routed through ``sentry.normalise`` and ``classify``."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec.structs import replace

from eyetok import severity as severity_module
from eyetok.messages import Routing, SevChannel, Severity, Signal, SignalKind
from eyetok.recognisers import Recognisers
from eyetok.severity import (
    CANONICAL_RULES,
    DEFAULT_RULE,
    Condition,
    Facts,
    Rule,
    classify,
    facts_of,
    match_rule,
    sev_channel_for,
    why,
)
from eyetok.sources import sentry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sentry"

# Tuesday 2026-11-24 10:00 EST: inside ET business hours.
IN_HOURS = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
# Monday 2026-11-23 22:00 EST: outside ET business hours.
OUT_OF_HOURS = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

CRITICAL, HIGH, MEDIUM, LOW, INFO = (
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
    Severity.INFO,
)
SEV1, SEV2, SEV2_5, SEV3 = SevChannel.SEV1, SevChannel.SEV2, SevChannel.SEV2_5, SevChannel.SEV3


def signal(**fields: Any) -> Signal:
    """A hand-built signal: an error in production nothing special is known about."""
    base: dict[str, Any] = {
        "signal_id": "sig-1",
        "tenant": "operator",
        "source": "sentry",
        "resource": "event_alert",
        "action": "triggered",
        "kind": SignalKind.ALERT,
        "dedup_key": "4242",
        "title": "KeyError: 'settlement_account'",
        "received_at": IN_HOURS,
        "level": "error",
        "environment": "production",
    }
    return Signal(**(base | fields))


# The error that the "high" row names: new, unhandled, production, users affected.
NEW_UNHANDLED_PROD: dict[str, Any] = {
    "level": "error",
    "is_new": True,
    "unhandled": True,
    "environment": "production",
    "users_affected": 3,
}


# --- the table, row by row -------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"level": "fatal"},
        {"level": "fatal", "environment": "staging"},
        {"level": "fatal", "environment": ""},
        {"level": "fatal", "unhandled": False, "users_affected": 0},
        {"level": "fatal", "is_regression": True, "is_metric_alert": True},
    ],
    ids=["production", "staging", "no-environment", "handled-no-users", "regression-metric"],
)
@pytest.mark.parametrize("at", [IN_HOURS, OUT_OF_HOURS], ids=["in-hours", "out-of-hours"])
def test_fatal_in_any_scope_is_critical_sev1(fields: dict[str, Any], at: datetime) -> None:
    routing = classify(signal(received_at=at, **fields))
    assert routing.rule == "fatal"
    assert routing.severity is CRITICAL
    assert routing.sev_channel is SEV1


@pytest.mark.parametrize(
    ("at", "channel", "business"),
    [(IN_HOURS, SEV2_5, True), (OUT_OF_HOURS, SEV2, False)],
    ids=["in-hours", "out-of-hours"],
)
@pytest.mark.parametrize("environment", ["production", "prod", "Production"])
def test_new_unhandled_production_error_with_users_is_high(
    at: datetime, channel: SevChannel, business: bool, environment: str
) -> None:
    routing = classify(
        signal(received_at=at, **(NEW_UNHANDLED_PROD | {"environment": environment}))
    )
    assert routing.rule == "error-new-unhandled-production"
    assert routing.severity is HIGH
    assert routing.sev_channel is channel
    assert routing.business_hours is business


@pytest.mark.parametrize(
    "fields",
    [
        {"is_regression": True},
        {"is_performance": True},
        {"is_metric_alert": True, "resource": "metric_alert", "action": "critical"},
        {"is_metric_alert": True, "is_performance": True},
        # A Sentry metric alert's warning trigger is no level: it normalises to error
        # like its critical one, a performance alert either way (issue 13).
        {"is_metric_alert": True, "resource": "metric_alert", "action": "warning"},
        # A regression is medium even when it is unhandled, in production, with users.
        {"is_regression": True, "unhandled": True, "users_affected": 4},
    ],
    ids=[
        "regression",
        "performance",
        "metric-alert",
        "perf-metric-alert",
        "metric-alert-warning",
        "unhandled-regression",
    ],
)
@pytest.mark.parametrize("at", [IN_HOURS, OUT_OF_HOURS], ids=["in-hours", "out-of-hours"])
def test_error_regression_performance_or_metric_alert_is_medium_sev3(
    fields: dict[str, Any], at: datetime
) -> None:
    routing = classify(signal(received_at=at, **({"level": "error"} | fields)))
    assert routing.rule == "error-regression-or-performance"
    assert routing.severity is MEDIUM
    assert routing.sev_channel is SEV3


@pytest.mark.parametrize(
    "fields",
    # A metric alert at level warning is an Alertmanager alert labelled warning by its
    # author; Sentry's metric alerts carry no level (their warning trigger normalises
    # to error, issue 13), see the fixture table below.
    [{}, NEW_UNHANDLED_PROD | {"level": "warning"}, {"is_metric_alert": True}],
    ids=["plain", "new-unhandled-prod", "metric-alert-warning"],
)
@pytest.mark.parametrize("at", [IN_HOURS, OUT_OF_HOURS], ids=["in-hours", "out-of-hours"])
def test_warning_is_low_sev3(fields: dict[str, Any], at: datetime) -> None:
    routing = classify(signal(received_at=at, **(fields | {"level": "warning"})))
    assert routing.rule == "warning"
    assert routing.severity is LOW
    assert routing.sev_channel is SEV3


@pytest.mark.parametrize("level", ["info", "debug"])
@pytest.mark.parametrize("at", [IN_HOURS, OUT_OF_HOURS], ids=["in-hours", "out-of-hours"])
def test_info_and_debug_are_audit_only(level: str, at: datetime) -> None:
    routing = classify(signal(received_at=at, **(NEW_UNHANDLED_PROD | {"level": level})))
    assert routing.rule == "info-debug-audit"
    assert routing.severity is INFO
    assert routing.sev_channel is None


@pytest.mark.parametrize(
    ("mark", "rule", "severity", "in_hours", "out_of_hours"),
    [
        ("h12", "heroku-h12", HIGH, SEV2_5, SEV2),
        ("paper_gate", "paper-gate-breach", CRITICAL, SEV1, SEV1),
        ("synthetic_check", "synthetic-check-failure", HIGH, SEV2_5, SEV2),
        ("declared_high", "declared-high", HIGH, SEV2_5, SEV2),
    ],
)
def test_recognised_marks(
    mark: str, rule: str, severity: Severity, in_hours: SevChannel, out_of_hours: SevChannel
) -> None:
    # An otherwise unremarkable (handled, no users, not new) error: only the mark decides.
    fields = {"marks": frozenset({mark}), "unhandled": False, "users_affected": 0}
    day = classify(signal(received_at=IN_HOURS, **fields))
    night = classify(signal(received_at=OUT_OF_HOURS, **fields))
    assert (day.rule, day.severity, day.sev_channel) == (rule, severity, in_hours)
    assert (night.rule, night.severity, night.sev_channel) == (rule, severity, out_of_hours)


# --- the named default rule ------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        NEW_UNHANDLED_PROD | {"unhandled": False},
        NEW_UNHANDLED_PROD | {"unhandled": None},
        NEW_UNHANDLED_PROD | {"environment": "staging"},
        NEW_UNHANDLED_PROD | {"environment": ""},
        NEW_UNHANDLED_PROD | {"users_affected": 0},
        NEW_UNHANDLED_PROD | {"users_affected": None},
        NEW_UNHANDLED_PROD | {"is_new": False},
        NEW_UNHANDLED_PROD | {"level": "notice"},
        NEW_UNHANDLED_PROD | {"level": ""},
        {"level": "critical-ish", "is_regression": True, "is_metric_alert": True},
    ],
    ids=[
        "handled",
        "unhandled-unknown",
        "staging",
        "no-environment",
        "zero-users",
        "users-unknown",
        "not-new",
        "unknown-level",
        "empty-level",
        "unknown-level-regression",
    ],
)
@pytest.mark.parametrize("at", [IN_HOURS, OUT_OF_HOURS], ids=["in-hours", "out-of-hours"])
def test_cases_the_table_does_not_name_fall_to_the_default_rule(
    fields: dict[str, Any], at: datetime
) -> None:
    routing = classify(signal(received_at=at, **fields))
    assert routing.rule == "default"
    assert routing.severity is MEDIUM
    assert routing.sev_channel is SEV3


def test_the_default_rule_is_named_and_outside_the_table() -> None:
    assert DEFAULT_RULE.name == "default"
    assert DEFAULT_RULE.severity is MEDIUM
    assert DEFAULT_RULE not in CANONICAL_RULES
    assert match_rule(facts_of(signal(level="notice")), ()) is DEFAULT_RULE
    assert match_rule(facts_of(signal(level="fatal")), rules=()) is DEFAULT_RULE


def test_every_rule_has_a_distinct_name() -> None:
    names = [rule.name for rule in CANONICAL_RULES]
    assert len(set(names)) == len(names)
    assert "default" not in names


# --- rule order: first match wins ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "rule", "severity"),
    [
        ({"level": "fatal", "marks": frozenset({"h12"})}, "fatal", CRITICAL),
        ({"level": "fatal", "marks": frozenset({"synthetic_check"})}, "fatal", CRITICAL),
        (
            {"level": "error", "marks": frozenset({"h12", "paper_gate"})},
            "paper-gate-breach",
            CRITICAL,
        ),
        (
            {"level": "error", "marks": frozenset({"h12", "synthetic_check"})},
            "heroku-h12",
            HIGH,
        ),
        # A mark outranks the level: an H12 logged at warning or info is still high.
        ({"level": "warning", "marks": frozenset({"h12"})}, "heroku-h12", HIGH),
        ({"level": "info", "marks": frozenset({"paper_gate"})}, "paper-gate-breach", CRITICAL),
        # A regression is not new, whatever else it shows (issue 13: the payload saying
        # "seen before" wins), so the "high" error row does not take it.
        (NEW_UNHANDLED_PROD | {"is_regression": True}, "error-regression-or-performance", MEDIUM),
    ],
    ids=[
        "fatal-beats-h12",
        "fatal-beats-synthetic",
        "paper-gate-beats-h12",
        "h12-beats-synthetic",
        "h12-beats-warning",
        "paper-gate-beats-info",
        "regression-is-not-new",
    ],
)
def test_the_first_matching_rule_wins(
    fields: dict[str, Any], rule: str, severity: Severity
) -> None:
    routing = classify(signal(**fields))
    assert routing.rule == rule
    assert routing.severity is severity


def test_custom_rules_are_read_in_order() -> None:
    warning_rule = next(r for r in CANONICAL_RULES if r.name == "warning")
    fatal_rule = next(r for r in CANONICAL_RULES if r.name == "fatal")
    loud = msgspec.structs.replace(warning_rule, name="warning-is-loud", severity=HIGH)
    routing = classify(signal(level="warning", received_at=OUT_OF_HOURS), rules=(loud,))
    assert (routing.rule, routing.severity, routing.sev_channel) == ("warning-is-loud", HIGH, SEV2)
    assert match_rule(facts_of(signal(level="fatal")), (warning_rule, fatal_rule)) is fatal_rule


# --- every recorded Sentry payload, end to end -----------------------------------------

# fixture -> (rule, severity, channel at IN_HOURS, channel at OUT_OF_HOURS)
FIXTURE_ROUTING: dict[str, tuple[str, Severity, SevChannel | None, SevChannel | None]] = {
    "event_alert_fatal": ("fatal", CRITICAL, SEV1, SEV1),
    "legacy_fatal": ("fatal", CRITICAL, SEV1, SEV1),
    "event_alert_error_new_unhandled_prod": ("error-new-unhandled-production", HIGH, SEV2_5, SEV2),
    "event_alert_h12": ("heroku-h12", HIGH, SEV2_5, SEV2),
    "event_alert_paper_gate": ("paper-gate-breach", CRITICAL, SEV1, SEV1),
    "event_alert_synthetic": ("synthetic-check-failure", HIGH, SEV2_5, SEV2),
    "issue_unresolved_regression": ("error-regression-or-performance", MEDIUM, SEV3, SEV3),
    "metric_alert_critical": ("error-regression-or-performance", MEDIUM, SEV3, SEV3),
    # A metric alert is a performance alert whichever trigger fired (issue 13; it was
    # "warning"/low when the trigger was read as Sentry's event level).
    "metric_alert_warning": ("error-regression-or-performance", MEDIUM, SEV3, SEV3),
    "event_alert_warning": ("warning", LOW, SEV3, SEV3),
    "event_alert_info": ("info-debug-audit", INFO, None, None),
    "event_alert_debug": ("info-debug-audit", INFO, None, None),
    # The rows the table does not name.
    "event_alert_error_handled": ("default", MEDIUM, SEV3, SEV3),
    # New to EyeTok (nothing open or recently resolved for its issue), unhandled, in
    # production, with a user: high (issue 13; it fell to the default rule when "new"
    # needed an explicit flag in the payload).
    "error_created": ("error-new-unhandled-production", HIGH, SEV2_5, SEV2),
    "legacy_error": ("default", MEDIUM, SEV3, SEV3),
    # Issue webhooks carry no environment, so "production" cannot be shown.
    "issue_created": ("default", MEDIUM, SEV3, SEV3),
    # Resolve-type webhooks match the resolve rule (issue 13; they used to borrow the
    # rule of their level): their incident, if any, decides where the resolve goes.
    "issue_resolved": ("resolve", INFO, None, None),
    "issue_ignored": ("resolve", INFO, None, None),
    "metric_alert_resolved": ("resolve", INFO, None, None),
}


def _fixture_signal(name: str, at: datetime) -> Signal:
    path = FIXTURES / f"{name}.json"
    headers_path = FIXTURES / f"{name}.headers.json"
    headers = json.loads(headers_path.read_text()) if headers_path.exists() else {}
    resource = {k.lower(): v for k, v in headers.items()}.get("sentry-hook-resource")
    return sentry.normalise(
        path.read_bytes(),
        resource,
        tenant="operator",
        signal_id=f"fixture-{name}",
        received_at=at,
        recognisers=Recognisers(),
    )


def test_the_table_covers_the_original_fixtures() -> None:
    # The whole labelled corpus (60+ shapes, three clock points) is tests/test_corpus.py.
    payloads = {
        p.name.removesuffix(".json")
        for p in FIXTURES.glob("*.json")
        if not p.name.endswith(".headers.json")
    }
    assert set(FIXTURE_ROUTING) <= payloads


@pytest.mark.parametrize(
    ("name", "rule", "severity", "in_hours", "out_of_hours"),
    [(name, *expected) for name, expected in FIXTURE_ROUTING.items()],
    ids=list(FIXTURE_ROUTING),
)
def test_fixture_routing(
    name: str,
    rule: str,
    severity: Severity,
    in_hours: SevChannel | None,
    out_of_hours: SevChannel | None,
) -> None:
    day = classify(_fixture_signal(name, IN_HOURS))
    night = classify(_fixture_signal(name, OUT_OF_HOURS))
    assert (day.rule, day.severity, day.sev_channel) == (rule, severity, in_hours)
    assert (night.rule, night.severity, night.sev_channel) == (rule, severity, out_of_hours)
    assert day.business_hours is True
    assert night.business_hours is False


# --- "new" means new to EyeTok (issue 13) ------------------------------------------------

UNSAID = NEW_UNHANDLED_PROD | {"is_new": None}


def test_an_issue_the_payload_does_not_call_new_is_new_when_eyetok_does_not_know_it() -> None:
    assert classify(signal(**UNSAID)).rule == "error-new-unhandled-production"
    assert classify(signal(**UNSAID), known=False).severity is HIGH


def test_an_issue_eyetok_knows_is_not_new() -> None:
    routing = classify(signal(**UNSAID), known=True)
    assert (routing.rule, routing.severity) == ("default", MEDIUM)


def test_the_payload_outranks_what_eyetok_knows() -> None:
    # Said new (an issue "created"): new even if a key is known.
    assert classify(signal(**NEW_UNHANDLED_PROD), known=True).severity is HIGH
    # Said seen before: not new even if EyeTok never saw it.
    said_old = NEW_UNHANDLED_PROD | {"is_new": False}
    assert classify(signal(**said_old), known=False).rule == "default"


# --- why, and why not a louder rule (issue 13) -----------------------------------------


def test_why_names_the_rule_what_held_and_the_first_failure_of_each_louder_rule() -> None:
    explained = why(facts_of(signal(**(UNSAID | {"environment": "staging"}))))
    assert explained.rule == "default"
    assert explained.held == ()
    misses = [str(m) for m in explained.louder_misses]
    assert misses == [
        'fatal: level is "error"',
        "paper-gate-breach: not paper_gate",
        "heroku-h12: not h12",
        "synthetic-check-failure: not synthetic_check",
        "declared-high: not declared_high",
        "heroku-h10: not heroku_h10",
        "heroku-r15: not heroku_r15",
        "heroku-crashed: not heroku_crashed",
        'error-new-unhandled-production: environment is "staging"',
    ]


def test_why_of_a_match_lists_the_conditions_that_held() -> None:
    explained = why(facts_of(signal(**UNSAID)))
    assert explained.rule == "error-new-unhandled-production"
    assert explained.held == (
        'level is "error"',
        "new to EyeTok",
        "unhandled",
        'environment is "production"',
        "3 users affected",
    )
    assert [m.rule for m in explained.louder_misses] == [
        "fatal",
        "paper-gate-breach",
        "heroku-h10",
        "heroku-r15",
    ]


def test_why_says_a_known_issue_is_not_new_and_which_fact_said_so() -> None:
    explained = why(facts_of(signal(**UNSAID), known=True))
    miss = next(m for m in explained.louder_misses if m.rule.startswith("error-new"))
    assert miss.failed == "known to EyeTok (an open or recently resolved incident)"
    regression = why(facts_of(signal(**(UNSAID | {"is_regression": True}))))
    assert regression.rule == "error-regression-or-performance"
    assert regression.held == ('level is "error"', "a regression")


def test_a_metric_alert_explains_itself() -> None:
    explained = why(facts_of(signal(is_metric_alert=True, resource="metric_alert")))
    assert (explained.rule, explained.held) == (
        "error-regression-or-performance",
        ('level is "error"', "a metric alert"),
    )


def _every_facts() -> list[Facts]:
    """Facts across every value the canonical conditions read (a product of small sets)."""
    grid = itertools.product(
        (False, True),  # resolves
        ("fatal", "error", "warning", "info", ""),
        (frozenset(), frozenset({"h12"}), frozenset({"paper_gate", "heroku_h27"})),
        (False, True),  # is_new
        (None, False, True),  # unhandled
        ("Production", "staging"),
        (None, 0, 3),  # users affected
        (False, True),  # is_regression
        (False, True),  # is_metric_alert / is_performance
    )
    return [
        Facts(
            resolves=r,
            level=level,
            marks=marks,
            is_new=new,
            novelty="",
            unhandled=unhandled,
            environment=env,
            users_affected=users,
            is_regression=regression,
            is_metric_alert=other,
            is_performance=not other,
        )
        for r, level, marks, new, unhandled, env, users, regression, other in grid
    ]


def test_holds_says_what_the_checks_say_for_every_rule() -> None:
    """``holds`` (the fast path of every classification) agrees with ``checks`` (the
    words of ``why``), including the nested ``any_of`` and an empty one."""
    conditions = [rule.when for rule in CANONICAL_RULES] + [Condition(any_of=())]
    for facts in _every_facts():
        for condition in conditions:
            assert condition.holds(facts) == all(ok for ok, _ in condition.checks(facts))


def test_classify_remembers_a_rule_per_table_and_answers_as_the_table_does() -> None:
    """``classify`` remembers the rule each combination of facts got, per rule table: the
    first and the remembered answer are what a pass over the table gives, across every
    fact the rules read, for the canonical table and a custom one; a flood of distinct
    combinations forgets them (bounded) and still answers alike."""
    custom = (
        Rule(
            name="staging-quiet", severity=LOW, when=Condition(environments=frozenset({"staging"}))
        ),
        *CANONICAL_RULES,
    )
    grid = itertools.product(
        (SignalKind.ALERT, SignalKind.RESOLVE),
        ("fatal", "error", "warning", "info"),
        (frozenset(), frozenset({"h12"}), frozenset({"declared_high"})),
        (None, False, True),  # is_new as the payload says
        (False, True),  # known to EyeTok
        (None, True),  # unhandled
        ("production", "staging"),
        (None, 0, 3),  # users affected
        (False, True),  # is_regression, is_metric_alert, is_performance together
    )
    for kind, level, marks, new, known, unhandled, env, users, flag in grid:
        s = signal(
            kind=kind,
            level=level,
            marks=marks,
            is_new=new,
            unhandled=unhandled,
            environment=env,
            users_affected=users,
            is_regression=flag,
            is_metric_alert=flag,
            is_performance=not flag,
        )
        for rules in (CANONICAL_RULES, custom):
            expected = match_rule(facts_of(s, known=known), rules)
            for at in (IN_HOURS, OUT_OF_HOURS):
                channel, business = sev_channel_for(expected.severity, at)
                for _ in range(2):  # decided, then remembered
                    routing = classify(replace(s, received_at=at), known=known, rules=rules)
                    assert routing == Routing(
                        severity=expected.severity,
                        rule=expected.name,
                        sev_channel=channel,
                        business_hours=business,
                    )
    remembered = severity_module._MATCHED[id(CANONICAL_RULES)][1]
    assert 0 < len(remembered) <= severity_module._MATCHED_MAX
    for users in range(severity_module._MATCHED_MAX + 10):
        assert classify(signal(users_affected=users, **NEW_UNHANDLED_PROD_NO_USERS)).rule == (
            "error-new-unhandled-production" if users else "default"
        )
    assert len(remembered) <= severity_module._MATCHED_MAX


NEW_UNHANDLED_PROD_NO_USERS = {k: v for k, v in NEW_UNHANDLED_PROD.items() if k != "users_affected"}
