"""The routines actor: what the operator's schedules and ``eyetok review`` ask for.

- ``ReviewDue`` (daily) and ``ReviewRequested`` (``GET /api/v1/review``): the notification
  stream of a window summarised by tenant, sink, severity and outcome; anomalies flagged
  (eyetok/review.py) and written to the anomaly journal once each; the daily one is posted
  to the operator.
- ``AnomalyNoteRequested``: the on-call's verdict on an anomaly, with who and when.
- ``DrillDue`` (monthly): picks the month's flavour (schedules/drills.py, the last drill
  on record breaking a tie), audits ``drill_started`` with it, runs the drill command
  (``routines.drill_command``, ``{scenario}`` the flavour's scenario) against this daemon
  as a subprocess and posts the receipt's summary to the operator. One drill at a time;
  it runs beside the inbox so a review is never stuck behind a drill.
- ``RotationReminderDue`` (quarterly): every credential EyeTok holds and its age.
- ``RetentionDue`` (daily): the history pruned to ``retention:`` (state/history/retention.py),
  the Postgres mirror too, beside the inbox; what went is audited (``history_pruned``,
  counts per table). A prune stopped by a restart is resumed when the actor starts.
- Credentials are fingerprinted (never stored) at start, on SIGHUP and on
  ``CredentialsReread``; a changed fingerprint is a rotation, recorded in the audit log.

Operator notices are outbox rows (``PlanDeliveries``) to ``delivery.operator_notices``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, assert_never

import trio

from eyetok import log
from eyetok.clock import Clock
from eyetok.digests import digest_value
from eyetok.errors import ConfigError, StateError
from eyetok.guard import scrub
from eyetok.messages import (
    AnomaliesFlagged,
    AnomalyNoted,
    AnomalyNoteRequested,
    AuditRecorded,
    CredentialsReread,
    Deliver,
    Destination,
    DrillDue,
    FlushHistory,
    HistoryMessage,
    Incident,
    IncidentAction,
    PlanDeliveries,
    Reply,
    RetentionDue,
    ReviewDue,
    ReviewRequested,
    RotationReminderDue,
    RoutinesMessage,
    Severity,
)
from eyetok.retention import Horizons, RetentionOptions
from eyetok.review import (
    Anomaly,
    NoteAnswer,
    Review,
    audit_events,
    bursts,
    failed_deliveries,
    summary,
)
from schedules.credentials import CredentialSeen, changed, rotation_reminder
from schedules.drills import Flavour, PastDrill, flavour_for
from state.history import retention
from state.history import routines as queries
from state.history.store import HistoryStore
from state.mirror.prune import prune_mirror

VERDICTS = ("benign", "escalate")
MAX_STDOUT = 1_000_000


@dataclass(frozen=True)
class RoutinesDeps:
    store: HistoryStore
    operator_tenant: str
    notices: Destination | None  # where the operator hears (None: logged only)
    review_window: timedelta
    drill_command: tuple[str, ...]
    drill_timeout_s: float
    local_url: Callable[[], str]  # this daemon, as the drill reaches it
    credentials: Callable[[], dict[str, str]]  # the credentials in use now
    reread_credentials: Callable[[], dict[str, str]]  # re-read them (SIGHUP)
    # re-read them from the vault and the environment and put them in use (SIGHUP);
    # without it, ``reread_credentials`` only records what changed
    reload_credentials: Callable[[str], Awaitable[dict[str, str]]] | None = None
    drill_zone: str = "America/New_York"  # the monthly-drill schedule's zone: its month
    retention: RetentionOptions = dataclasses.field(default_factory=RetentionOptions)
    mirror_dsn: str | None = None  # DATABASE_URL: the mirror follows the same policy
    mirror_tenants: Callable[[], tuple[str, ...]] = tuple  # whose mirror rows to prune
    watch_sighup: bool = True


def operator_notice(
    deps: RoutinesDeps, *, key: str, title: str, text: str, now: datetime, digest: bool = False
) -> Deliver | None:
    """An outbox row carrying ``text`` to the operator; ``key`` makes it idempotent;
    ``digest``: an operator digest, with ``Acknowledge`` (eyetok/digests.py)."""
    if deps.notices is None:
        return None
    hashed = hashlib.sha256(f"routine|{key}".encode()).hexdigest()
    delivery_id = "dlv_" + hashed[:24]
    incident = Incident(
        incident_id="rtn_" + hashed[:16],
        tenant=deps.operator_tenant,
        dedup_key=f"routine:{key}",
        title=title,
        severity=Severity.INFO,
        sev_channel=None,
        rule="routine",
        status="open",
        opened_at=now,
        last_seen_at=now,
        event_count=1,
    )
    return Deliver(
        delivery_id=delivery_id,
        tenant=deps.operator_tenant,
        destination=deps.notices,
        incident=incident,
        action=IncidentAction.OPEN,
        rule="routine",
        planned_at=now,
        received_at=now,
        notice=scrub(text),
        acknowledge=digest_value(delivery_id) if digest else None,
    )


def drill_argv(
    command: tuple[str, ...], url: str, *, scenario: str = "", slot: str = ""
) -> list[str]:
    port = url.rsplit(":", 1)[-1].rstrip("/")
    fields = {"{python}": sys.executable, "{url}": url, "{port}": port}
    fields |= {"{scenario}": scenario, "{slot}": slot}
    argv = []
    for part in command:
        for field, value in fields.items():
            part = part.replace(field, value)
        argv.append(part)
    return argv


def _receipts(stdout: str) -> list[dict[str, Any]]:
    """The JSON receipts a drill printed: one per line, or the whole output as one."""
    found = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and ("steps" in value or "scenario" in value):
                found.append(value)
    if not found:
        try:
            value = json.loads(stdout)
        except ValueError:
            return []
        if isinstance(value, dict):
            found.append(value)
    return found


def _failed(step: dict[str, Any]) -> bool:
    return str(step.get("verdict", "")).lower() in ("fail", "failed", "error")


def drill_summary(returncode: int, stdout: str, stderr: str) -> tuple[bool, str]:
    """(passed, the operator's one message) from a drill's exit status and receipt."""
    receipts = _receipts(stdout)
    if not receipts:
        last = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
        return False, (
            f":rotating_light: Monthly drill: no receipt (exit {returncode}). "
            f"Last line: {last[:300]}"
        )
    lines = []
    passed = returncode == 0
    for receipt in receipts:
        scenario = receipt.get("scenario", "?")
        steps = [s for s in receipt.get("steps", []) if isinstance(s, dict)]
        failed = [s for s in steps if _failed(s)]
        passed = passed and not failed
        ident = receipt.get("receipt_id") or receipt.get("id") or ""
        ref = f" (receipt `{ident}`)" if ident else ""
        if not failed and returncode == 0:
            lines.append(
                f":white_check_mark: Monthly drill `{scenario}` passed: {len(steps)} steps{ref}."
            )
            continue
        lines.append(
            f":rotating_light: Monthly drill `{scenario}` FAILED (exit {returncode}): "
            f"{len(failed)} of {len(steps)} steps failed{ref}."
        )
        for step in failed[:5]:
            lines.append(
                f"- step `{step.get('name', '?')}`: expected {step.get('expectation', '?')}; "
                f"observed {step.get('observation', '?')}"
            )
    return passed, "\n".join(lines)


async def run_routines(
    deps: RoutinesDeps,
    inbox: trio.MemoryReceiveChannel[RoutinesMessage],
    to_history: trio.MemorySendChannel[HistoryMessage],
    *,
    clock: Clock,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    logger = log.get("routines")
    store = deps.store
    drilling = False
    pruning = False

    async def flush() -> None:
        reply: Reply[bool] = Reply()
        await to_history.send(FlushHistory(reply=reply))
        await reply.wait()

    async def tell_operator(key: str, title: str, text: str, *, digest: bool = False) -> None:
        deliver = operator_notice(
            deps, key=key, title=title, text=text, now=clock.now(), digest=digest
        )
        if deliver is None:
            logger.warning("operator_notice_nowhere", routine=title, text=text)
            return
        await to_history.send(PlanDeliveries(origin=f"routine:{key}", deliveries=(deliver,)))

    async def audit(event: str, detail: dict[str, Any]) -> None:
        await to_history.send(
            AuditRecorded(
                at=clock.now(),
                tenant=deps.operator_tenant,
                event=event,
                detail=json.dumps(detail, sort_keys=True),
            )
        )

    async def review(since: datetime, until: datetime) -> Review:
        await flush()

        def read(con: Any) -> tuple[Any, ...]:
            return (
                queries.stream(con, since, until),
                queries.hourly_alerts(con, since, until),
                queries.baseline_alerts(con, since),
                queries.failed_deliveries(con, since, until),
                queries.anomalous_audit(con, since, until),
            )

        stream, hourly, baseline, failed, audited = await store.read(read)
        found: dict[str, Anomaly] = {}
        for anomaly in [*bursts(hourly, baseline), *failed_deliveries(failed)]:
            found.setdefault(anomaly.anomaly_id, anomaly)
        for anomaly in audit_events(audited):
            found.setdefault(anomaly.anomaly_id, anomaly)
        ids = list(found)
        known = await store.read(lambda con: queries.anomalies(con, ids))
        new = tuple(a for i, a in found.items() if i not in known)
        if new:
            await to_history.send(AnomaliesFlagged(anomalies=new, at=clock.now()))
            for a in new:
                logger.info(
                    "anomaly_flagged",
                    anomaly_id=a.anomaly_id,
                    kind=a.kind,
                    tenant=a.tenant,
                    detail=a.detail,
                )
        ordered = sorted(
            (known.get(i, a) for i, a in found.items()), key=lambda a: (a.occurred_at, a.kind)
        )
        return Review(
            since=since,
            until=until,
            notifications=sum(row.count for row in stream),
            stream=tuple(stream),
            anomalies=tuple(ordered),
        )

    async def note(message: AnomalyNoteRequested) -> NoteAnswer:
        if message.verdict not in VERDICTS:
            return NoteAnswer(ok=False, message=f"the verdict is one of {', '.join(VERDICTS)}")
        await flush()
        known = await store.read(lambda con: queries.anomalies(con, [message.anomaly_id]))
        if message.anomaly_id not in known:
            return NoteAnswer(ok=False, message=f"no anomaly {message.anomaly_id!r} on record")
        now = clock.now()
        await to_history.send(
            AnomalyNoted(
                anomaly_id=message.anomaly_id,
                verdict=message.verdict,
                note=message.note,
                by=message.by,
                at=now,
            )
        )
        await flush()
        noted = await store.read(lambda con: queries.anomalies(con, [message.anomaly_id]))
        anomaly = noted[message.anomaly_id]
        logger.info(
            "anomaly_noted",
            anomaly_id=anomaly.anomaly_id,
            verdict=message.verdict,
            by=message.by,
        )
        if message.verdict == "escalate":
            await tell_operator(
                f"escalate|{anomaly.anomaly_id}|{now.isoformat()}",
                "anomaly escalated",
                f":rotating_light: {message.by} escalated anomaly `{anomaly.anomaly_id}` "
                f"({anomaly.kind}, {anomaly.tenant}: {anomaly.detail}): {message.note}",
            )
        return NoteAnswer(
            ok=True, message=f"{message.verdict} noted by {message.by}", anomaly=anomaly
        )

    async def record_credentials(current: dict[str, str], why: str) -> None:
        await flush()
        on_record, _ = await store.read(queries.credentials_on_record)
        recorded = {
            name: CredentialSeen(credential=name, fingerprint=print_, first_seen=at)
            for name, (print_, at) in on_record.items()
        }
        for name, print_, rotated in changed(current, recorded):
            await audit(
                queries.CREDENTIAL_EVENT,
                {"credential": name, "fingerprint": print_, "rotated": rotated, "why": why},
            )
            logger.info("credential_seen", credential=name, rotated=rotated, why=why)

    async def reread(why: str) -> None:
        try:
            if deps.reload_credentials is not None:
                current = await deps.reload_credentials(why)
            else:
                current = deps.reread_credentials()
        except (ConfigError, StateError) as exc:  # the vault, or the secret store's key
            logger.error("credentials_not_reread", why=why, error=str(exc))
            return
        await record_credentials(current, why)

    async def remind_rotation(slot: datetime) -> None:
        await flush()
        on_record, since = await store.read(queries.credentials_on_record)
        recorded = {
            name: CredentialSeen(credential=name, fingerprint=print_, first_seen=at)
            for name, (print_, at) in on_record.items()
        }
        text = rotation_reminder(deps.credentials(), recorded, now=clock.now(), records_since=since)
        await tell_operator(f"rotation|{slot.isoformat()}", "credential rotation", text)

    async def flavour_of(slot: datetime) -> Flavour:
        await flush()
        last = await store.read(queries.last_monthly_drill)
        past = None if last is None else PastDrill(slot=last[0], scenario=last[1])
        return flavour_for(slot, deps.drill_zone, past)

    async def drill(slot: datetime) -> None:
        nonlocal drilling
        flavour = await flavour_of(slot)  # (a failure here crashes the actor: restarted)
        named = {"slot": slot.isoformat(), "scenario": flavour.scenario, "flavour": flavour.name}
        argv = drill_argv(
            deps.drill_command, deps.local_url(), scenario=flavour.scenario, slot=slot.isoformat()
        )
        await audit(queries.DRILL_STARTED, named)
        logger.info(
            "drill_started",
            **named,
            command=argv[1:8],
            why="the monthly drill is due; the month picks the flavour",
        )
        if not any("{scenario}" in part for part in deps.drill_command):
            logger.warning(
                "drill_flavour_not_passed",
                flavour=flavour.name,
                why="routines.drill_command has no {scenario}: the command picks what runs",
            )
        started = clock.now()
        try:
            with trio.move_on_after(deps.drill_timeout_s) as deadline:
                result = await trio.run_process(
                    argv, capture_stdout=True, capture_stderr=True, check=False
                )
            if deadline.cancelled_caught:
                passed = False
                text = (
                    f":rotating_light: Monthly drill ({flavour.name}) did not finish within "
                    f"{deps.drill_timeout_s:g} s; it was stopped."
                )
                returncode = -1
            else:
                returncode = result.returncode
                passed, text = drill_summary(
                    returncode,
                    result.stdout[:MAX_STDOUT].decode(errors="replace"),
                    result.stderr[-MAX_STDOUT:].decode(errors="replace"),
                )
        except OSError as exc:
            passed, returncode = False, -1
            text = (
                f":rotating_light: Monthly drill ({flavour.name}) could not start: "
                f"{exc.strerror or exc}"
            )
        finally:
            drilling = False
        seconds = (clock.now() - started).total_seconds()
        log_at = logger.info if passed else logger.error
        log_at(
            "drill_finished",
            **named,
            passed=passed,
            exit=returncode,
            seconds=round(seconds, 1),
        )
        await audit("drill_ran", {**named, "passed": passed, "exit": returncode})
        await tell_operator(f"drill|{slot.isoformat()}", "monthly drill", text)

    async def keep_history(slot: datetime | None) -> None:
        """Prune to the policy (``slot`` None: only resume a prune a restart stopped)."""
        nonlocal pruning
        try:
            report = await retention.prune(
                store, deps.retention, clock.now, resume_only=slot is None
            )
            mirrored = None
            if report is not None and deps.mirror_dsn is not None:
                mirrored = await _prune_mirror(deps, report.horizons)
        except StateError as exc:
            # e.g. retention.archive_dir cannot be written: nothing of the day is deleted
            # unexported; the run stays unfinished and is resumed at the next start
            logger.error("history_not_pruned", error=str(exc), why="the prune failed")
            await audit("history_not_pruned", {"error": str(exc)})
            return
        finally:
            pruning = False
        if report is None:
            return
        detail = {
            "run": report.run_id,
            "resumed": report.resumed,
            "removed": report.removed,
            "archived": report.archived,
            "mirror_removed": mirrored,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
            "free_bytes": report.free_bytes,
        }
        await audit("history_pruned", detail)
        logger.info("history_pruned", **detail, why="the retention policy's daily prune")

    async def watch_sighup(*, task_status: trio.TaskStatus[None]) -> None:
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                logger.info("signal_received", signal="SIGHUP", why="re-read credentials")
                await reread("SIGHUP")

    await record_credentials(deps.credentials(), "start")
    async with trio.open_nursery() as nursery:
        if deps.watch_sighup and threading.current_thread() is threading.main_thread():
            await nursery.start(watch_sighup)
        task_status.started()
        if deps.retention.enabled:
            pruning = True
            nursery.start_soon(keep_history, None)
        async for message in inbox:
            match message:
                case ReviewDue(slot=slot):
                    found = await review(slot - deps.review_window, slot)
                    text = summary(found)
                    await tell_operator(
                        f"review|{slot.isoformat()}", "daily review", text, digest=True
                    )
                case ReviewRequested(since=since, reply=reply):
                    reply.send(await review(since, clock.now()))
                case AnomalyNoteRequested():
                    message.reply.send(await note(message))
                case DrillDue(slot=slot):
                    if drilling:
                        logger.warning("drill_skipped", slot=slot.isoformat(), why="one is running")
                        continue
                    drilling = True
                    nursery.start_soon(drill, slot)
                case RotationReminderDue(slot=slot):
                    await remind_rotation(slot)
                case CredentialsReread(why=why):
                    await reread(why)
                case RetentionDue(slot=slot):
                    if not deps.retention.enabled or pruning:
                        why = "one is running" if pruning else "retention.enabled is false"
                        logger.info("history_prune_skipped", slot=slot.isoformat(), why=why)
                        continue
                    pruning = True
                    nursery.start_soon(keep_history, slot)
                case _:
                    assert_never(message)


async def _prune_mirror(deps: RoutinesDeps, horizons: Horizons) -> dict[str, int] | str:
    """The mirror's rows removed per table, or why not (Postgres down: next day's run)."""
    assert deps.mirror_dsn is not None
    try:
        return await trio.to_thread.run_sync(
            partial(
                prune_mirror,
                deps.mirror_dsn,
                horizons,
                deps.mirror_tenants(),
                batch_rows=deps.retention.batch_rows,
            )
        )
    except StateError as exc:
        log.get("routines").warning("mirror_not_pruned", error=str(exc), why="Postgres failed")
        return f"not pruned: {exc}"
