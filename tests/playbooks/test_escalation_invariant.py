"""The SEV3 escalation invariant, as a property: whatever the sequence of signals
(openings and repeats, quiet or louder), health-check verdicts, clicks (by humans, by
EyeTok's own identity, on any incident) and restarts, no incident opened as SEV3 is ever
posted louder without a human acknowledgement of that recommendation recorded (in the
playbooks ledger on disk, and audited) before the louder post was planned. Once promoted,
the incident itself is louder (the incidents actor's snapshot, moved through promote()):
its repeats are planned by the router to the louder channel's thread, never to SEV3's.

The real parts run: the incidents' decision (eyetok.incidents.decide) and promotion
(eyetok.escalation.promote, as the incidents actor applies it), the router's plan
and filter (actors.router.plan, Registry.hears), the playbooks actor with its ledger file,
the health check against a local endpoint on 127.0.0.1. Plus
:func:`eyetok.escalation.promote` refusing by itself."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from actors.router import plan
from eyetok.config import Settings
from eyetok.escalation import PromotionRefused, promote
from eyetok.incidents import IncidentKey, decide, louder
from eyetok.messages import (
    Acknowledgement,
    AuditRecorded,
    Incident,
    IncidentChanged,
    PlanDeliveries,
    Routing,
    SevChannel,
    Severity,
    Signal,
    SignalKind,
)
from eyetok.playbooks.ledger import PlaybookEvent
from harness.peers.platform import FakeService
from tests.conftest import daemon_settings
from tests.playbooks.rig import Rig, incident

CONFIG = """
tenants:
  operator:
    tier: operator
    policy:
      routes:
        SEV1: [{{sink: slack, target: "#sev1"}}]
        SEV2: [{{sink: slack, target: "#sev2"}}]
        SEV2.5: [{{sink: slack, target: "#sev25"}}]
        SEV3: [{{sink: slack, target: "#sev3"}}]
playbooks:
  - name: raxx-health
    match: {{sev: [SEV3]}}
    triage:
      - name: health
        action: {{kind: http.check, url: "{url}/healthz"}}
        escalate_if: {{to: SEV2, finding: [failed]}}
      - name: deep health
        action: {{kind: http.check, url: "{url}/deep", expect_json: {{path: db, equals: up}}}}
        escalate_if: {{to: SEV1}}
"""

ROUTES = {
    SevChannel.SEV1: "#sev1",
    SevChannel.SEV2: "#sev2",
    SevChannel.SEV2_5: "#sev25",
    SevChannel.SEV3: "#sev3",
}
_SEVERITY = {
    SevChannel.SEV1: Severity.CRITICAL,
    SevChannel.SEV2: Severity.HIGH,
    SevChannel.SEV2_5: Severity.HIGH,
    SevChannel.SEV3: Severity.MEDIUM,
}
KEYS = ("a", "b")
# people press more often than anything else does, so that sequences reach promotions
PEOPLE = (
    "slack:dana (U0DANA)",
    "slack:erin (U0ERIN)",
    "slack:dana (U0DANA)",
    "eyetok:playbook:raxx-health",
    "",
)

signal_op = st.tuples(
    st.just("signal"),
    st.sampled_from(KEYS),
    st.sampled_from([SevChannel.SEV3, SevChannel.SEV3, SevChannel.SEV2, SevChannel.SEV1]),
)
health_op = st.tuples(
    st.just("health"),
    st.sampled_from([200, 503, 503]),
    st.sampled_from(["up", "down", "down"]),
)
click_op = st.tuples(st.just("click"), st.sampled_from(KEYS), st.sampled_from(PEOPLE))
restart_op = st.tuples(st.just("restart"))
operations = st.lists(st.one_of(signal_op, health_op, click_op, restart_op), max_size=14)


@pytest.fixture(scope="module")
def service() -> Iterator[FakeService]:
    with FakeService() as running:
        yield running


def _signal(key: str, channel: SevChannel, n: int) -> tuple[Signal, Routing]:
    signal = Signal(
        signal_id=f"sig_{n}",
        tenant="operator",
        source="sentry",
        resource="event_alert",
        action="triggered",
        kind=SignalKind.ALERT,
        dedup_key=key,
        title=f"problem {key}",
        received_at=datetime(2026, 12, 4, 20, 0, n % 60, tzinfo=UTC),
    )
    routing = Routing(
        severity=_SEVERITY[channel], rule="prop", sev_channel=channel, business_hours=False
    )
    return signal, routing


def _recorded_acks(ledger: Path, pressed: set[tuple[str, str]]) -> set[tuple[str, SevChannel]]:
    """The acknowledgements in the ledger on disk; each must be a press this sequence
    made (that incident, that person): EyeTok never records one by itself."""
    if not ledger.exists():
        return set()
    events = [
        msgspec.json.decode(line, type=PlaybookEvent) for line in ledger.read_bytes().splitlines()
    ]
    acks = [e for e in events if e.event == "escalation_acknowledged" and e.to is not None]
    for ack in acks:
        assert (ack.incident.incident_id, ack.by) in pressed, f"unpressed ack {ack}"
    return {(e.incident.incident_id, e.to) for e in acks if e.to is not None}


def _check(
    history: list[Any], sev3_opened: set[str], ledger: Path, pressed: set[tuple[str, str]]
) -> int:
    """Every louder post of a SEV3-opened incident follows its audited acknowledgement
    and is backed by the ledger on disk (a human's press); the number of louder posts."""
    acked_on_disk = _recorded_acks(ledger, pressed)
    audited: set[str] = set()
    loud = 0
    for message in history:
        if isinstance(message, AuditRecorded) and message.event == (
            "playbook_escalation_acknowledged"
        ):
            assert message.incident_id is not None
            audited.add(message.incident_id)
        if not isinstance(message, PlanDeliveries):
            continue
        for deliver in message.deliveries:
            inc = deliver.incident
            if inc.incident_id not in sev3_opened:
                continue
            if deliver.destination.target == "#sev3" and inc.sev_channel is SevChannel.SEV3:
                continue
            loud += 1
            assert inc.sev_channel is not None
            assert inc.incident_id in audited, f"{inc.incident_id} posted louder unacknowledged"
            assert (inc.incident_id, inc.sev_channel) in acked_on_disk
    return loud


def _event(what: str) -> None:
    """Counted in hypothesis' statistics (when run under it)."""
    if currently_in_test_context():
        event(what)


def _triaged(rig: Rig, incident_id: str) -> bool:
    return rig.audited("playbook_triage_ran", incident_id) == 2


async def _drive(ops: list[tuple[Any, ...]], settings_: Settings, ledger: Path, svc: Any) -> int:
    """Run ``ops``, checking the invariant after each; the repeats planned after their
    incident's promotion (each to the louder channel only)."""
    history: list[Any] = []
    open_incidents: dict[IncidentKey, Incident] = {}
    sev3_opened: set[str] = set()
    pressed: set[tuple[str, str]] = set()  # (incident id, who) of every press by a person
    ids = (f"inc_{n}" for n in itertools.count())
    rig: Rig | None = None
    promoted: dict[str, SevChannel] = {}  # incident id -> the channel it was moved to
    taken = 0  # promotions the incidents actor's part has taken in
    followed = 0

    def take_promotions() -> None:
        """What the incidents actor does with the playbooks actor's promotions (a restart
        sends them again: those refuse, changing nothing)."""
        nonlocal taken
        assert rig is not None
        for message in rig.promotions[taken:]:
            ack = message.acknowledgement
            key = next(k for k, i in open_incidents.items() if i.incident_id == ack.incident_id)
            try:
                open_incidents[key] = promote(open_incidents[key], ack.to, ack)
            except PromotionRefused:
                assert promoted.get(ack.incident_id) is not None
                continue
            promoted[ack.incident_id] = ack.to
        taken = len(rig.promotions)

    async with trio.open_nursery() as nursery:
        rig = Rig(settings_, ledger, history=history)
        await rig.start(nursery)
        for n, op in enumerate(ops):
            take_promotions()
            match op:
                case ("signal", key, channel):
                    signal, routing = _signal(key, channel, n)
                    action, inc = decide(open_incidents, signal, routing, new_id=lambda: next(ids))
                    assert inc is not None
                    open_incidents[(inc.tenant, inc.dedup_key)] = inc
                    if inc.event_count == 1 and inc.sev_channel is SevChannel.SEV3:
                        sev3_opened.add(inc.incident_id)
                    change = IncidentChanged(
                        signal=signal, routing=routing, action=action, incident=inc
                    )
                    # the router's own plan for it (a repeat goes to the incident's channel)
                    planned = plan(change, settings_)
                    history.append(PlanDeliveries(origin=signal.signal_id, deliveries=planned))
                    if inc.incident_id in promoted:  # a repeat follows to the louder thread
                        _event("repeat after promotion")
                        followed += 1
                        louder_target = ROUTES[promoted[inc.incident_id]]
                        assert {d.destination.target for d in planned} == {louder_target}
                    if settings_.playbooks.hears(change):
                        await rig.tell(change)
                    if inc.event_count == 1 and inc.sev_channel is SevChannel.SEV3:
                        # both checks of the playbook report before the next step
                        await rig.until(partial(_triaged, rig, inc.incident_id))
                case ("health", status, db):
                    svc.health = (status, {"db": db})
                case ("click", key, who):
                    inc = open_incidents.get(("operator", key))
                    target = inc.incident_id if inc is not None else f"inc_{key}"
                    before = _check(history, sev3_opened, ledger, pressed)
                    if who.startswith("slack:"):
                        pressed.add((target, who))
                    said = await rig.click("acknowledge_escalation", target, who)
                    await rig.settle()
                    if said.startswith("escalated to"):
                        _event("promoted")
                        assert who.startswith("slack:")
                        assert _check(history, sev3_opened, ledger, pressed) > before
                case ("restart",):
                    rig.kill()
                    rig, taken = Rig(settings_, ledger, history=history), 0
                    await rig.start(nursery)
                    await rig.settle()  # it sends its promotions again
                case _:
                    raise AssertionError(op)
            await rig.settle()
            _check(history, sev3_opened, ledger, pressed)
        rig.kill()
    return followed


# acknowledged, promoted, then repeats: before and after a restart
PROMOTED_THEN_REPEATED: list[tuple[Any, ...]] = [
    ("health", 503, "up"),
    ("signal", "a", SevChannel.SEV3),
    ("click", "a", "slack:dana (U0DANA)"),
    ("signal", "a", SevChannel.SEV3),
    ("restart",),
    ("signal", "a", SevChannel.SEV1),
    ("click", "a", "slack:erin (U0ERIN)"),
    ("signal", "a", SevChannel.SEV3),
]


@example(ops=PROMOTED_THEN_REPEATED)
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_no_sev3_incident_is_posted_louder_without_a_recorded_acknowledgement(
    ops: list[tuple[Any, ...]], service: FakeService, tmp_path_factory: pytest.TempPathFactory
) -> None:
    service.health = (200, {"db": "up"})
    ledger = tmp_path_factory.mktemp("ledger") / "playbooks.jsonl"
    config = CONFIG.format(url=service.base_url)
    settings_ = daemon_settings(ledger.parent, None, config=config)
    trio.run(_drive, ops, settings_, ledger, service)


def test_repeats_follow_a_promotion_to_the_louder_thread(
    service: FakeService, tmp_path: Path
) -> None:
    service.health = (200, {"db": "up"})
    ledger = tmp_path / "playbooks.jsonl"
    settings_ = daemon_settings(tmp_path, None, config=CONFIG.format(url=service.base_url))
    # the three repeats after dana's acknowledgement all go to #sev2 (erin's press finds
    # nothing left to acknowledge); a restart in between changes nothing
    assert trio.run(_drive, PROMOTED_THEN_REPEATED, settings_, ledger, service) == 3


def test_promote_refuses_without_a_matching_human_acknowledgement() -> None:
    quiet = incident("inc_q", channel=SevChannel.SEV3, rule="warning")
    at = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    with pytest.raises(PromotionRefused, match="no recorded acknowledgement"):
        promote(quiet, SevChannel.SEV2, None)
    other = Acknowledgement(incident_id="inc_other", to=SevChannel.SEV2, by="slack:d", at=at)
    with pytest.raises(PromotionRefused, match="not -> SEV2"):
        promote(quiet, SevChannel.SEV2, other)
    wrong_level = Acknowledgement(incident_id="inc_q", to=SevChannel.SEV1, by="slack:d", at=at)
    with pytest.raises(PromotionRefused):
        promote(quiet, SevChannel.SEV2, wrong_level)
    by_eyetok = Acknowledgement(incident_id="inc_q", to=SevChannel.SEV2, by="eyetok:x", at=at)
    with pytest.raises(PromotionRefused, match="a human's"):
        promote(quiet, SevChannel.SEV2, by_eyetok)
    human = Acknowledgement(incident_id="inc_q", to=SevChannel.SEV2, by="slack:d (U0D)", at=at)
    promoted = promote(quiet, SevChannel.SEV2, human)
    assert promoted.sev_channel is SevChannel.SEV2
    assert promoted.severity is Severity.HIGH
    assert louder(promoted.sev_channel, quiet.sev_channel)
    loud = incident("inc_l", channel=SevChannel.SEV1)
    ack = Acknowledgement(incident_id="inc_l", to=SevChannel.SEV2, by="slack:d (U0D)", at=at)
    with pytest.raises(PromotionRefused, match="not louder"):
        promote(loud, SevChannel.SEV2, ack)
