"""The pure incident decision: open, update, resolve, audit, and the SEV3 escalation
invariant (design section 3): a SEV3 incident is never promoted by a louder repeat."""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from eyetok.incidents import RECENTLY_RESOLVED, IncidentKey, apply, decide, key_of, knows, louder
from eyetok.messages import (
    Incident,
    IncidentAction,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
)

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SEV1, SEV2, SEV2_5, SEV3 = SevChannel.SEV1, SevChannel.SEV2, SevChannel.SEV2_5, SevChannel.SEV3

HIGH = Routing(
    severity=Severity.HIGH,
    rule="error-new-unhandled-production",
    sev_channel=SEV2_5,
    business_hours=True,
)
HIGH_NIGHT = Routing(
    severity=Severity.HIGH, rule="heroku-h12", sev_channel=SEV2, business_hours=False
)
CRITICAL = Routing(severity=Severity.CRITICAL, rule="fatal", sev_channel=SEV1, business_hours=True)
MEDIUM = Routing(
    severity=Severity.MEDIUM,
    rule="error-regression-or-performance",
    sev_channel=SEV3,
    business_hours=True,
)
LOW = Routing(severity=Severity.LOW, rule="warning", sev_channel=SEV3, business_hours=True)
INFO = Routing(
    severity=Severity.INFO, rule="info-debug-audit", sev_channel=None, business_hours=True
)


def signal(at: datetime = T0, **fields: Any) -> Signal:
    base: dict[str, Any] = {
        "signal_id": f"sig-{at.isoformat()}",
        "tenant": "operator",
        "source": "sentry",
        "resource": "event_alert",
        "action": "triggered",
        "kind": SignalKind.ALERT,
        "dedup_key": "6120458391",
        "title": "KeyError: 'settlement_account'",
        "received_at": at,
        "url": "https://sentry.io/organizations/raxx/issues/6120458391/",
        "culprit": "/api/v1/orders",
        "environment": "production",
        "project": "raptor",
    }
    return Signal(**(base | fields))


def resolve_signal(at: datetime, **fields: Any) -> Signal:
    return signal(at, resource="issue", action="resolved", kind=SignalKind.RESOLVE, **fields)


def ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"inc_{next(counter):04d}"


def step(
    incidents: dict[IncidentKey, Incident],
    sig: Signal,
    routing: Routing,
    new_id: Callable[[], str],
) -> tuple[IncidentAction, Incident | None]:
    action, incident = decide(incidents, sig, routing, new_id=new_id)
    apply(incidents, action, incident)
    return action, incident


def test_a_first_signal_opens_an_incident() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    action, incident = step(incidents, signal(), HIGH, ids())
    assert action is IncidentAction.OPEN
    assert incident is not None
    assert incident.incident_id == "inc_0001"
    assert (incident.tenant, incident.dedup_key) == ("operator", "6120458391")
    assert (incident.severity, incident.sev_channel, incident.rule) == (
        Severity.HIGH,
        SEV2_5,
        "error-new-unhandled-production",
    )
    assert incident.status == "open"
    assert incident.opened_at == incident.last_seen_at == T0
    assert incident.event_count == 1
    assert incident.resolved_at is None
    assert incident.escalation_recommended is None
    assert (incident.url, incident.culprit, incident.environment, incident.project) == (
        "https://sentry.io/organizations/raxx/issues/6120458391/",
        "/api/v1/orders",
        "production",
        "raptor",
    )
    assert incidents == {("operator", "6120458391"): incident}


def test_the_default_incident_id_is_fresh_each_time() -> None:
    _, first = decide({}, signal(), HIGH)
    _, second = decide({}, signal(), HIGH)
    assert first is not None
    assert second is not None
    assert first.incident_id.startswith("inc_")
    assert first.incident_id != second.incident_id


def test_a_repeat_updates_the_open_incident() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    _, opened = step(incidents, signal(T0), HIGH, new_id)
    later = T0 + timedelta(minutes=7)
    action, updated = step(incidents, signal(later, title="a new title"), HIGH, new_id)
    assert action is IncidentAction.UPDATE
    assert opened is not None
    assert updated is not None
    assert updated.incident_id == opened.incident_id
    assert updated.event_count == 2
    assert updated.last_seen_at == later
    assert updated.opened_at == T0
    assert updated.title == opened.title  # the snapshot keeps what it opened with
    assert updated.status == "open"
    assert incidents[key_of(signal())] == updated
    assert len(incidents) == 1


def test_a_third_repeat_counts_three() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    for minute in range(3):
        _, incident = step(incidents, signal(T0 + timedelta(minutes=minute)), HIGH, new_id)
    assert incident is not None
    assert incident.event_count == 3
    assert incident.last_seen_at == T0 + timedelta(minutes=2)


def test_decide_does_not_touch_the_map() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    action, incident = decide(incidents, signal(), HIGH, new_id=ids())
    assert action is IncidentAction.OPEN
    assert incident is not None
    assert incidents == {}


def test_resolve_returns_a_resolved_snapshot_and_removes_it() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    _, opened = step(incidents, signal(T0), HIGH, new_id)
    done = T0 + timedelta(hours=1)
    # The resolve's own routing does not matter: the incident keeps its severity.
    action, resolved = step(incidents, resolve_signal(done), MEDIUM, new_id)
    assert action is IncidentAction.RESOLVE
    assert opened is not None
    assert resolved is not None
    assert resolved.incident_id == opened.incident_id
    assert resolved.status == "resolved"
    assert resolved.resolved_at == done
    assert resolved.last_seen_at == done
    assert (resolved.severity, resolved.sev_channel) == (Severity.HIGH, SEV2_5)
    assert resolved.event_count == 1
    assert incidents == {}


def test_resolving_an_unknown_key_is_a_resolve_of_nothing() -> None:
    # A resolve is a resolve (issue 13): reported as such, with no incident, rather than
    # as an audit line; it opens nothing and (no incident: no plan) sends nothing.
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), HIGH, new_id)
    before = dict(incidents)
    action, incident = step(incidents, resolve_signal(T0, dedup_key="999"), HIGH, new_id)
    assert action is IncidentAction.RESOLVE
    assert incident is None
    assert incidents == before


def test_a_resolve_for_another_tenant_resolves_nothing() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), HIGH, new_id)
    action, incident = step(incidents, resolve_signal(T0, tenant="acme"), HIGH, new_id)
    assert (action, incident) == (IncidentAction.RESOLVE, None)
    assert list(incidents) == [("operator", "6120458391")]


def test_info_is_audited_and_leaves_the_map_alone() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    assert step(incidents, signal(), INFO, new_id) == (IncidentAction.AUDIT, None)
    assert incidents == {}
    # An info repeat of an open incident does not update it either.
    _, opened = step(incidents, signal(), HIGH, new_id)
    before = dict(incidents)
    later = signal(T0 + timedelta(minutes=5))
    assert step(incidents, later, INFO, new_id) == (IncidentAction.AUDIT, None)
    assert incidents == before
    assert opened is not None
    assert incidents[key_of(later)].event_count == 1


def test_a_resolve_still_resolves_when_its_routing_is_info() -> None:
    # Resolve-type webhooks (metric alert resolved) normalise to level info.
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), MEDIUM, new_id)
    action, incident = step(incidents, resolve_signal(T0), INFO, new_id)
    assert action is IncidentAction.RESOLVE
    assert incident is not None
    assert incident.status == "resolved"
    assert incidents == {}


# --- the SEV3 escalation invariant -----------------------------------------------------


def test_a_louder_repeat_of_a_sev3_incident_only_recommends() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    _, opened = step(incidents, signal(T0), MEDIUM, new_id)
    assert opened is not None
    assert opened.sev_channel is SEV3

    _, updated = step(incidents, signal(T0 + timedelta(minutes=1)), HIGH_NIGHT, new_id)
    assert updated is not None
    assert updated.sev_channel is SEV3
    assert updated.severity is Severity.MEDIUM
    assert updated.rule == "error-regression-or-performance"
    assert updated.escalation_recommended is SEV2
    assert updated.event_count == 2

    # Louder still: the recommendation rises, the channel does not.
    _, updated = step(incidents, signal(T0 + timedelta(minutes=2)), CRITICAL, new_id)
    assert updated is not None
    assert (updated.sev_channel, updated.severity) == (SEV3, Severity.MEDIUM)
    assert updated.escalation_recommended is SEV1

    # Quieter again: the recommendation does not fall back.
    _, updated = step(incidents, signal(T0 + timedelta(minutes=3)), HIGH, new_id)
    assert updated is not None
    assert updated.escalation_recommended is SEV1
    assert updated.sev_channel is SEV3
    assert incidents[key_of(signal())] == updated


def test_a_sev2_5_recommendation_is_overtaken_by_sev2() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), LOW, new_id)
    _, updated = step(incidents, signal(), HIGH, new_id)
    assert updated is not None
    assert updated.escalation_recommended is SEV2_5
    _, updated = step(incidents, signal(), HIGH_NIGHT, new_id)
    assert updated is not None
    assert updated.escalation_recommended is SEV2
    assert updated.sev_channel is SEV3


@pytest.mark.parametrize("routing", [MEDIUM, LOW], ids=["medium", "low"])
def test_an_equally_quiet_repeat_recommends_nothing(routing: Routing) -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), MEDIUM, new_id)
    _, updated = step(incidents, signal(), routing, new_id)
    assert updated is not None
    assert updated.escalation_recommended is None
    assert updated.sev_channel is SEV3


def test_a_louder_repeat_of_a_sev2_incident_is_not_a_sev3_recommendation() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    step(incidents, signal(), HIGH_NIGHT, new_id)
    _, updated = step(incidents, signal(), CRITICAL, new_id)
    assert updated is not None
    assert (updated.sev_channel, updated.severity) == (SEV2, Severity.HIGH)
    assert updated.escalation_recommended is None


def test_louder_orders_the_channels() -> None:
    order = [SEV3, SEV2_5, SEV2, SEV1]
    for quieter, loud in itertools.pairwise(order):
        assert louder(loud, quieter)
        assert not louder(quieter, loud)
    assert louder(SEV3, None)
    assert not louder(None, SEV3)
    assert not louder(SEV2, SEV2)


# --- re-opening ------------------------------------------------------------------------


def test_a_reopen_after_resolve_gets_a_new_incident_id() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    new_id = ids()
    _, first = step(incidents, signal(T0), HIGH, new_id)
    step(incidents, resolve_signal(T0 + timedelta(minutes=30)), HIGH, new_id)
    reopened_at = T0 + timedelta(hours=2)
    action, second = step(incidents, signal(reopened_at), HIGH, new_id)
    assert action is IncidentAction.OPEN
    assert first is not None
    assert second is not None
    assert second.incident_id != first.incident_id
    assert second.incident_id == "inc_0002"
    assert second.event_count == 1
    assert second.opened_at == reopened_at
    assert second.status == "open"
    assert second.resolved_at is None
    assert incidents == {key_of(signal()): second}


def test_apply_ignores_audits_and_keys_by_tenant_and_dedup_key() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    apply(incidents, IncidentAction.AUDIT, None)
    assert incidents == {}
    new_id = ids()
    step(incidents, signal(), HIGH, new_id)
    step(incidents, signal(tenant="acme"), HIGH, new_id)
    step(incidents, signal(dedup_key="metric:7:42"), MEDIUM, new_id)
    assert set(incidents) == {
        ("operator", "6120458391"),
        ("acme", "6120458391"),
        ("operator", "metric:7:42"),
    }
    assert len({i.incident_id for i in incidents.values()}) == 3


def test_snapshots_are_immutable() -> None:
    _, incident = decide({}, signal(), HIGH, new_id=ids())
    assert incident is not None
    with pytest.raises(AttributeError):
        incident.event_count = 5  # type: ignore[misc]
    replaced = msgspec.structs.replace(incident, event_count=5)
    assert incident.event_count == 1
    assert replaced.event_count == 5


# --- what EyeTok knows (issue 13: "new" means new to EyeTok) ---------------------------


def test_eyetok_knows_open_and_recently_resolved_keys() -> None:
    incidents: dict[IncidentKey, Incident] = {}
    resolved: dict[IncidentKey, datetime] = {}
    new_id = ids()
    key = key_of(signal())
    assert not knows(incidents, resolved, key, T0)
    action, opened = decide(incidents, signal(), HIGH, new_id=new_id)
    apply(incidents, action, opened, resolved)
    assert knows(incidents, resolved, key, T0)
    done_at = T0 + timedelta(minutes=30)
    action, closed = decide(incidents, resolve_signal(done_at), HIGH, new_id=new_id)
    apply(incidents, action, closed, resolved)
    assert incidents == {}
    assert resolved == {key: done_at}
    assert knows(incidents, resolved, key, done_at + RECENTLY_RESOLVED)
    assert not knows(incidents, resolved, key, done_at + RECENTLY_RESOLVED + timedelta(seconds=1))
    assert not knows(incidents, resolved, ("acme", key[1]), done_at)


def test_an_open_incident_keeps_one_copy_of_the_strings_incidents_repeat() -> None:
    """Issue 20 item 2: a burst keeps thousands of incidents open; each decoded payload
    brings its own copy of the culprit, environment, project and level, and the incident
    keeps the shared one (the title, URL and key are its own)."""

    def decoded(text: str) -> str:
        return "".join(list(text))  # a fresh string object, as a payload's decoding makes

    opened = []
    for n in range(2):
        fresh = signal(
            dedup_key=f"issue-{n}",
            tenant=decoded("operator"),
            culprit=decoded("app.payments in settle"),
            environment=decoded("production"),
            project=decoded("payments"),
            level=decoded("error"),
        )
        action, incident = decide({}, fresh, HIGH)
        assert action is IncidentAction.OPEN
        assert incident is not None
        opened.append(incident)
    first, second = opened
    for name in ("tenant", "culprit", "environment", "project", "level"):
        assert getattr(first, name) is getattr(second, name), name
    assert first.dedup_key != second.dedup_key
    # no garbage-collector header or traversal for what cannot form a cycle
    assert not gc.is_tracked(first)
