"""The routines actor with the real history actor on a DuckDB file: the review and its
anomaly journal, the on-call's verdicts, the drill consumer (a tiny fake drill command
run as a real subprocess), credential fingerprints and the rotation reminder."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import trio

from actors.history import HistoryDeps, run_history
from actors.routines import RoutinesDeps, drill_argv, drill_summary, run_routines
from eyetok import guard
from eyetok.clock import Clock, FixedClock, SystemClock
from eyetok.messages import (
    AnomalyNoteRequested,
    CredentialsReread,
    Deliver,
    Destination,
    DrillDue,
    FlushHistory,
    Incident,
    IncidentAction,
    Reply,
    ReviewDue,
    ReviewRequested,
    RotationReminderDue,
    SevChannel,
    Severity,
)
from eyetok.review import NoteAnswer, Review
from state.history.journal import (
    AuditRow,
    DeliveryRow,
    OutcomeRow,
    SignalRow,
    append_rows,
    delivery_row,
)
from state.history.store import HistoryStore
from state.history.wal import Journal

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOTICES = Destination(sink_id="slack", sink_type="slack", target="#eyetok-operator")


@dataclass
class Running:
    routines: trio.MemorySendChannel[Any]
    history: trio.MemorySendChannel[Any]
    delivered: trio.MemoryReceiveChannel[Deliver]
    store: HistoryStore

    async def ask(self, make: Callable[[Reply[Any]], Any]) -> Any:
        reply: Reply[Any] = Reply()
        await self.routines.send(make(reply))
        with trio.fail_after(30):
            return await reply.wait()

    async def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        reply: Reply[bool] = Reply()
        await self.history.send(FlushHistory(reply=reply))
        await reply.wait()
        rows: list[tuple[Any, ...]] = await self.store.read(
            lambda con: con.execute(sql, list(args)).fetchall()
        )
        return rows

    async def rows(self, sql: str, count: int) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` once there are ``count`` of them (another actor writes them)."""
        with trio.fail_after(10):
            while len(rows := await self.query(sql)) < count:  # noqa: ASYNC110 - polling
                await trio.sleep(0.02)
        return rows

    async def notice(self) -> Deliver:
        """The next operator notice handed to delivery (requeued outbox rows skipped)."""
        with trio.fail_after(30):
            while (deliver := await self.delivered.receive()).notice is None:
                pass
            return deliver


@asynccontextmanager
async def running(
    data: Path,
    clock: Clock,
    *,
    seed: list[msgspec.Struct] | None = None,
    credentials: dict[str, str] | None = None,
    reread: Callable[[], dict[str, str]] | None = None,
    drill: tuple[str, ...] = ("true",),
    drill_timeout_s: float = 60.0,
    watch_sighup: bool = False,
) -> AsyncIterator[Running]:
    store = HistoryStore(data / "history.duckdb")
    if seed:
        await store.write(lambda con: append_rows(con, seed))
    journal = Journal(data / "journal")
    history_tx, history_rx = trio.open_memory_channel[Any](1024)
    delivery_tx, delivery_rx = trio.open_memory_channel[Any](1024)
    mirror_tx, _mirror_rx = trio.open_memory_channel[Any](1024)
    routines_tx, routines_rx = trio.open_memory_channel[Any](16)
    held = dict(credentials or {})
    deps = RoutinesDeps(
        store=store,
        operator_tenant="operator",
        notices=NOTICES,
        review_window=timedelta(hours=24),
        drill_command=drill,
        drill_timeout_s=drill_timeout_s,
        local_url=lambda: "http://127.0.0.1:4321",
        credentials=lambda: held,
        reread_credentials=reread or (lambda: held),
        watch_sighup=watch_sighup,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(run_history, clock=clock),
                HistoryDeps(store=store, journal=journal),
                history_rx,
                delivery_tx,
                mirror_tx,
            )
            await nursery.start(partial(run_routines, clock=clock), deps, routines_rx, history_tx)
            yield Running(routines_tx, history_tx, delivery_rx, store)
            nursery.cancel_scope.cancel()
    finally:
        journal.close()
        store.close()


# --- the review ---------------------------------------------------------------------


def _signal(n: int, tenant: str, at: datetime) -> SignalRow:
    return SignalRow(
        signal_id=f"sig_{tenant}_{n}",
        tenant=tenant,
        source="probe",
        resource="probe",
        action="failing",
        kind="alert",
        dedup_key=f"{tenant}-{n}",
        title="probe failing",
        level="error",
        received_at=at,
        journalled_at=at,
        severity="high",
        rule="r",
        sev_channel="SEV2",
        business_hours=True,
        incident_action="open",
        incident_id=f"inc_{tenant}",
        cluster_key=None,
        signal_json="{}",
        incident_json=None,
    )


def _delivery(delivery_id: str, tenant: str, sink: str, at: datetime) -> DeliveryRow:
    severity = Severity.CRITICAL if tenant == "globex" else Severity.HIGH
    incident = Incident(
        incident_id=f"inc_{tenant}",
        tenant=tenant,
        dedup_key="probe",
        title="probe failing",
        severity=severity,
        sev_channel=SevChannel.SEV2,
        rule="r",
        status="open",
        opened_at=at,
        last_seen_at=at,
        event_count=1,
    )
    deliver = Deliver(
        delivery_id=delivery_id,
        tenant=tenant,
        destination=Destination(sink_id=sink, sink_type="webhook", target="https://h.example/x"),
        incident=incident,
        action=IncidentAction.OPEN,
        rule="r",
        planned_at=at,
        received_at=at,
    )
    return delivery_row(deliver, origin="sig")


def _outcome(delivery_id: str, outcome: str, at: datetime, detail: str = "") -> OutcomeRow:
    return OutcomeRow(
        delivery_id=delivery_id,
        outcome=outcome,
        attempts=1,
        latency_ms=12.0,
        finished_at=at,
        detail=detail,
        external_ref="",
        thread_ref="",
    )


def _audit(event: str, tenant: str, at: datetime, detail: str) -> AuditRow:
    return AuditRow(
        logged_at=at, tenant=tenant, event=event, detail=detail, incident_id=None, signal_id=None
    )


def _hour_ago(hours: int, minute: int) -> datetime:
    """``minute`` minutes into the hour that started ``hours`` hours before NOW."""
    return NOW - timedelta(hours=hours) + timedelta(minutes=minute)


def _stream() -> list[msgspec.Struct]:
    """A day of history and the week before it."""
    rows: list[msgspec.Struct] = []
    window = NOW - timedelta(hours=24)
    week = [window - timedelta(hours=h + 0.5) for h in range(168)]
    # steady: one alert an hour all week; three in one hour today (3x its mean: not above)
    rows += [_signal(i, "steady", at) for i, at in enumerate(week)]
    rows += [_signal(1000 + i, "steady", _hour_ago(5, i)) for i in range(3)]
    # acme: the same week, four in one hour today (above 3x)
    rows += [_signal(i, "acme", at) for i, at in enumerate(week)]
    rows += [_signal(1000 + i, "acme", _hour_ago(3, i)) for i in range(4)]
    # noisy: silent all week, twelve in an hour (flagged) and two in another (below the floor)
    rows += [_signal(i, "noisy", _hour_ago(2, i)) for i in range(12)]
    rows += [_signal(100 + i, "noisy", _hour_ago(10, i)) for i in range(2)]
    # deliveries: one delivered, one dead, two refused, one pending; one dead last week
    at = NOW - timedelta(hours=1)
    rows += [
        _delivery("dlv_ok", "acme", "acme-hook", at),
        _outcome("dlv_ok", "delivered", at),
        _delivery("dlv_dead", "globex", "globex-hook", at),
        _outcome("dlv_dead", "dead", at, "gave up after 8 attempts: HTTP 503"),
        _delivery("dlv_unverified", "acme", "acme-hook", at),
        _outcome("dlv_unverified", "refused_unverified", at, "sink not verified: pending"),
        _delivery("dlv_refused", "acme", "acme-hook", at),
        _outcome("dlv_refused", "refused", at, "HTTP 410 from 10.0.0.7"),
        _delivery("dlv_pending", "acme", "acme-hook", at),
        _delivery("dlv_old", "globex", "globex-hook", NOW - timedelta(days=3)),
        _outcome("dlv_old", "dead", NOW - timedelta(days=3), "old"),
    ]
    rows += [
        _audit("cluster_fired", "operator", at, "dns_nxdomain|as13335|npm: 31 tenants"),
        _audit("budget_capped", "acme", at, "10 admitted this hour; the rest held"),
        _audit("budget_reset", "acme", NOW - timedelta(minutes=30), "new hour"),
        _audit("budget_capped", "acme", NOW - timedelta(days=2), "before the window"),
    ]
    return rows


async def test_the_review_flags_each_anomaly_once_and_keeps_verdicts(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    async with running(tmp_path, clock, seed=_stream()) as actor:
        review: Review = await actor.ask(
            lambda r: ReviewRequested(since=NOW - timedelta(hours=24), reply=r)
        )
        assert review.notifications == 5
        stream = {(s.tenant, s.sink_id, s.severity, s.outcome): s.count for s in review.stream}
        assert stream == {
            ("acme", "acme-hook", "high", "delivered"): 1,
            ("acme", "acme-hook", "high", "pending"): 1,
            ("acme", "acme-hook", "high", "refused"): 1,
            ("acme", "acme-hook", "high", "refused_unverified"): 1,
            ("globex", "globex-hook", "critical", "dead"): 1,
        }
        found = sorted((a.kind, a.tenant, a.subject) for a in review.anomalies)
        noisy_hour = NOW - timedelta(hours=2)
        assert [(k, t) for k, t, _ in found] == [
            ("budget_cap", "acme"),
            ("burst", "acme"),
            ("burst", "noisy"),
            ("dead", "globex"),
            ("refused", "acme"),
            ("refused", "acme"),
            ("suppression", "operator"),
        ]
        assert ("burst", "noisy", f"noisy@{noisy_hour.isoformat()}") in found
        assert {s for k, _, s in found if k in ("dead", "refused")} == {
            "dlv_dead",
            "dlv_unverified",
            "dlv_refused",
        }
        assert all(a.verdict is None for a in review.anomalies)

        again: Review = await actor.ask(
            lambda r: ReviewRequested(since=NOW - timedelta(hours=24), reply=r)
        )
        assert [a.anomaly_id for a in again.anomalies] == [a.anomaly_id for a in review.anomalies]
        assert await actor.query("SELECT count(*) FROM anomalies") == [(7,)]

        dead = next(a for a in review.anomalies if a.kind == "dead")
        clock.set(NOW + timedelta(minutes=5))
        answer: NoteAnswer = await actor.ask(
            lambda r: AnomalyNoteRequested(
                anomaly_id=dead.anomaly_id,
                verdict="benign",
                note="globex's receiver was in maintenance",
                by="alice",
                reply=r,
            )
        )
        assert answer.ok, answer.message
        assert answer.anomaly is not None
        assert answer.anomaly.verdict == "benign"
        assert answer.anomaly.noted_by == "alice"
        assert answer.anomaly.noted_at == NOW + timedelta(minutes=5)
        rows = await actor.query(
            "SELECT verdict, note, noted_by FROM anomaly_journal WHERE anomaly_id = ?",
            dead.anomaly_id,
        )
        assert rows == [("benign", "globex's receiver was in maintenance", "alice")]
        later: Review = await actor.ask(
            lambda r: ReviewRequested(since=NOW - timedelta(hours=24), reply=r)
        )
        assert next(a for a in later.anomalies if a.kind == "dead").verdict == "benign"

        unknown: NoteAnswer = await actor.ask(
            lambda r: AnomalyNoteRequested(
                anomaly_id="anm_0000000000000000", verdict="benign", note="x", by="a", reply=r
            )
        )
        assert not unknown.ok
        assert "no anomaly" in unknown.message

        cap = next(a for a in review.anomalies if a.kind == "budget_cap")
        escalated: NoteAnswer = await actor.ask(
            lambda r: AnomalyNoteRequested(
                anomaly_id=cap.anomaly_id,
                verdict="escalate",
                note="raise acme's tier",
                by="bob",
                reply=r,
            )
        )
        assert escalated.ok
        notice = await actor.notice()
        assert notice.tenant == "operator"
        assert notice.destination == NOTICES
        assert notice.notice is not None
        assert "bob escalated anomaly" in notice.notice
        assert "raise acme's tier" in notice.notice


async def test_the_daily_review_is_posted_to_the_operator(tmp_path: Path) -> None:
    async with running(tmp_path, FixedClock(NOW), seed=_stream()) as actor:
        await actor.routines.send(ReviewDue(slot=NOW))
        notice = await actor.notice()
        text = notice.notice
        assert text is not None
        assert text.startswith(":mag: Daily review 2026-11-19 12:00 to 2026-11-20 12:00 UTC")
        assert "5 notifications (1 dead, 1 delivered, 1 pending, 1 refused" in text
        assert "7 anomalies, 7 without a verdict" in text
        assert "10.0.0.7" not in text  # upstream addresses scrubbed
        guard.check({"text": text}, tenant="operator", tenants=["acme"], operator_tenant="operator")
        outbox = await actor.query(
            "SELECT tenant, sink_id, target, status FROM notifications WHERE delivery_id = ?",
            notice.delivery_id,
        )
        assert outbox == [("operator", "slack", "#eyetok-operator", "pending")]
        flagged = await actor.query("SELECT count(*) FROM anomalies")
        assert flagged == [(7,)]


# --- the drill consumer ------------------------------------------------------------

_RECEIPT = """
import json, sys
steps = [
    {"name": "alert-reaches-slack", "verdict": "pass", "expectation": "within 90 s",
     "observation": "2.1 s", "latency_ms": 2100},
    {"name": "suppression-silent", "verdict": "%s", "expectation": "no cluster notice",
     "observation": "%s", "latency_ms": 0},
    {"name": "incident-resolves", "verdict": "pass", "expectation": "resolved",
     "observation": "resolved", "latency_ms": 900},
]
print("starting the drill against", sys.argv[1], file=sys.stderr)
print(json.dumps({"scenario": sys.argv[2], "receipt_id": "rcpt_42",
                  "url": sys.argv[1], "steps": steps}))
sys.exit(%d)
"""


async def test_the_monthly_drill_runs_the_command_and_posts_the_receipt(tmp_path: Path) -> None:
    passing = (sys.executable, "-c", _RECEIPT % ("pass", "silent", 0), "{url}", "{scenario}")
    async with running(tmp_path, SystemClock(), drill=passing) as actor:
        slot = datetime(2027, 1, 6, 15, tzinfo=UTC)  # January: the single-tenant outage
        await actor.routines.send(DrillDue(slot=slot))
        notice = await actor.notice()
        assert notice.notice == (
            ":white_check_mark: Monthly drill `single-tenant-outage` passed: 3 steps "
            "(receipt `rcpt_42`)."
        )
        rows = await actor.query(
            "SELECT event, detail FROM audit_log WHERE event LIKE 'drill_%' ORDER BY logged_at"
        )
        named = {
            "slot": slot.isoformat(),
            "scenario": "single-tenant-outage",
            "flavour": "single-tenant outage",
        }
        assert [(event, json.loads(detail)) for event, detail in rows] == [
            ("drill_started", named),
            ("drill_ran", {**named, "passed": True, "exit": 0}),
        ]

    failing = (
        sys.executable,
        "-c",
        _RECEIPT % ("fail", "a cluster notice", 1),
        "{url}",
        "{scenario}",
    )
    async with running(tmp_path / "2", SystemClock(), drill=failing) as actor:
        await actor.routines.send(DrillDue(slot=datetime(2027, 2, 3, 15, tzinfo=UTC)))
        text = (await actor.notice()).notice
        assert text is not None
        assert "`registry-wide-outage` FAILED (exit 1): 1 of 3 steps failed (receipt" in text
        assert "step `suppression-silent`: expected no cluster notice; observed a cluster" in text


async def test_a_drill_without_a_receipt_or_past_its_time_is_a_failure(tmp_path: Path) -> None:
    garbage = (sys.executable, "-c", "import sys; print('Traceback: boom'); sys.exit(2)")
    async with running(tmp_path, SystemClock(), drill=garbage) as actor:
        await actor.routines.send(DrillDue(slot=datetime(2026, 12, 1, 15, tzinfo=UTC)))
        text = (await actor.notice()).notice
        assert (
            text
            == ":rotating_light: Monthly drill: no receipt (exit 2). Last line: Traceback: boom"
        )
    stuck = (sys.executable, "-c", "import time; time.sleep(60)")
    async with running(tmp_path / "2", SystemClock(), drill=stuck, drill_timeout_s=0.5) as actor:
        await actor.routines.send(DrillDue(slot=datetime(2026, 12, 1, 15, tzinfo=UTC)))
        text = (await actor.notice()).notice
        assert text == (
            ":rotating_light: Monthly drill (budget exhaustion) did not finish within 0.5 s; "
            "it was stopped."
        )


def test_the_receipt_summary_reads_every_scenario_of_an_all_run() -> None:
    lines = "\n".join(
        json.dumps({"scenario": name, "steps": [{"name": "s", "verdict": verdict}]})
        for name, verdict in (("single-tenant-outage", "pass"), ("dst-edge", "fail"))
    )
    passed, text = drill_summary(1, "the harness says hello\n" + lines, "")
    assert not passed
    assert "`single-tenant-outage`" in text
    assert "`dst-edge` FAILED (exit 1): 1 of 1 steps failed" in text


# --- credentials --------------------------------------------------------------------


async def test_credentials_are_fingerprinted_and_their_age_reminded(tmp_path: Path) -> None:
    clock = FixedClock(datetime(2026, 1, 2, 12, tzinfo=UTC))
    held = {"SLACK_BOT_TOKEN": "xoxb-first", "EYETOK_ROOT_TOKEN": "root-token-value"}
    rotated = {**held, "SLACK_BOT_TOKEN": "xoxb-second"}
    sql = "SELECT detail FROM audit_log WHERE event = 'credential_seen' ORDER BY logged_at"
    async with running(tmp_path, clock, credentials=held) as actor:
        first = [json.loads(d) for (d,) in await actor.query(sql)]
    assert sorted(r["credential"] for r in first) == ["EYETOK_ROOT_TOKEN", "SLACK_BOT_TOKEN"]
    assert all(r["why"] == "start" and not r["rotated"] for r in first)

    clock.set(datetime(2026, 2, 1, 12, tzinfo=UTC))
    async with running(tmp_path, clock, credentials=held, reread=lambda: rotated) as actor:
        assert len(await actor.query(sql)) == 2  # a restart with the same values: nothing new
        await actor.routines.send(CredentialsReread(why="SIGHUP"))
        rows = [json.loads(d) for (d,) in await actor.rows(sql, 3)]
        assert len(rows) == 3
        assert rows[-1]["credential"] == "SLACK_BOT_TOKEN"
        assert rows[-1]["rotated"] is True
        raw = await actor.query("SELECT string_agg(detail, ' ') FROM audit_log")
        assert "xoxb-" not in raw[0][0]
        assert "root-token-value" not in raw[0][0]

    clock.set(datetime(2026, 4, 14, 14, tzinfo=UTC))
    async with running(tmp_path, clock, credentials=rotated) as actor:
        await actor.routines.send(RotationReminderDue(slot=clock.now()))
        text = (await actor.notice()).notice
    assert text is not None
    assert text.startswith(":key: Quarterly credential rotation")
    assert "EyeTok holds 2 credentials" in text
    lines = text.splitlines()[1:]
    assert lines == [
        "- EYETOK_ROOT_TOKEN: at least 102 days (in use since 2026-01-02)",
        "- SLACK_BOT_TOKEN: 72 days (in use since 2026-02-01)",
    ]


async def test_sighup_rereads_the_credentials(tmp_path: Path) -> None:
    held = {"SLACK_BOT_TOKEN": "xoxb-first"}
    rotated = {"SLACK_BOT_TOKEN": "xoxb-second"}
    sql = "SELECT detail FROM audit_log WHERE event = 'credential_seen'"
    async with running(
        tmp_path, SystemClock(), credentials=held, reread=lambda: rotated, watch_sighup=True
    ) as actor:
        os.kill(os.getpid(), signal.SIGHUP)
        rows = await actor.rows(sql, 2)
        assert json.loads(rows[-1][0])["why"] == "SIGHUP"


def test_the_default_drill_command_runs_the_months_flavour_through_the_cli() -> None:
    from eyetok.cli import _parser
    from eyetok.config import parse_file_config, settings_from

    command = settings_from(parse_file_config(""), {}).routines.drill_command
    slot = datetime(2027, 2, 3, 15, tzinfo=UTC)
    argv = drill_argv(
        command, "http://127.0.0.1:4321", scenario="registry-wide-outage", slot=slot.isoformat()
    )
    assert argv[:3] == [sys.executable, "-m", "eyetok.cli"]
    args = _parser().parse_args(argv[3:])
    assert (args.command, args.scenario, args.url) == (
        "drill",
        "registry-wide-outage",
        "http://127.0.0.1:4321",
    )
    assert args.monthly_slot == slot
    assert args.json
