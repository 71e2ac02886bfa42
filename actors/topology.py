"""The one place channels are made and actors are wired.

    HTTP hooks --SignalReceived--> [incidents] --IncidentChanged--> [router]
        --JournalSignal--> [history] ==commit==> 202 answered; Deliver --> [suppression]
        --Deliver--> [mutes] --Deliver--> [budgets] --Deliver--> [delivery]
        --DeliveryFinished / AuditRecorded / PlanDeliveries--> [history]

    /slack/events (a thread reply) --ThreadMessageSeen--> [conversation]
        --AcknowledgeIncident / ResolveIncident--> [incidents]; --MuteTenant--> [mutes];
        answers (PlanDeliveries) and audit lines --> [history]
    a pressed Acknowledge on a digest --DigestRead--> [digests] --> [history]

Forward edges may block (that is the backpressure that ends in a 503 at the front door).
The back edges into history (from suppression, mutes, budgets and delivery) cannot
deadlock: suppression, mutes and budgets hand their history messages to a courier task
and never wait on history themselves, and the delivery dispatcher never blocks (it
hands work to its lanes), so history's outbound edge always drains. The conversation and
digests actors wait on history (a flush) but nothing waits on them in return.
The supervisor keeps every original channel end open for the life of the process; each
actor incarnation gets clones, so a restarted actor reads the same inbox.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import trio

from actors.access_asks import ask_people, people_role_book, thread_gate
from actors.budgets import BudgetsDeps, run_budgets
from actors.config_reload import and_review, apply_config_change, config_reviewer
from actors.conversation import ConversationDeps, run_conversation
from actors.credential_reload import credential_reloader
from actors.credential_versions import sealer_of
from actors.delivery import DeliveryDeps, run_delivery
from actors.digests import DigestsDeps, run_digests
from actors.history import HistoryDeps, run_history
from actors.incidents import IncidentsDeps, run_incidents
from actors.mirror import MirrorDeps, run_mirror
from actors.mutes import MuteMessage, MutesDeps, run_mutes
from actors.oncall import OncallDeps, run_oncall
from actors.people.actor import PeopleDeps, run_people
from actors.playbooks import PlaybooksDeps, run_playbooks
from actors.rotation import RotationDeps, run_rotation
from actors.router import RouterDeps, run_router
from actors.routines import RoutinesDeps, run_routines
from actors.scheduler import ScheduleCommand, SchedulerDeps, run_scheduler
from actors.sinks import build_sinks
from actors.sinks.base import Sink
from actors.sinks.slack.names import SlackNames
from actors.supervisor import ChildSpec, Restart
from actors.suppression import SuppressionDeps, run_suppression
from actors.tenants import TenantsDeps, run_tenants
from actors.ticket_trail import TicketTrailDeps, run_ticket_trail
from actors.verification.actor import VerificationDeps, run_verification
from eyetok.clock import Clock
from eyetok.config import Settings, load_settings
from eyetok.digests import CLUSTER, DigestRead, DigestReceipt
from eyetok.errors import OverloadedError
from eyetok.health import HealthBoard, SinkBoard
from eyetok.live_credentials import LiveCredentials
from eyetok.messages import (
    Accepted,
    AcknowledgeIncident,
    AnomalyNoteRequested,
    ApiAnswer,
    AuditRecorded,
    BudgetMessage,
    BudgetStanding,
    Deliver,
    DeliveryMessage,
    DrillDue,
    EmailLinkOpened,
    FlushHistory,
    HandshakeAnswer,
    HistoryMessage,
    Incident,
    IngestMessage,
    ListVerifications,
    MirrorMessage,
    OAuthCallback,
    OncallMessage,
    OncallSyncAnswer,
    OncallSyncRequested,
    PeopleMessage,
    PeopleRequest,
    PlaybookClick,
    PlaybookMessage,
    ProposalTenantAsked,
    Reply,
    ResolveIncident,
    RetentionDue,
    ReverifyDue,
    ReviewDue,
    ReviewRequested,
    RollBackRotation,
    RotateSink,
    RotationAnswer,
    RotationMessage,
    RotationReminderDue,
    RouterMessage,
    RoutinesMessage,
    ShowBudgets,
    Signal,
    SignalReceived,
    SignalsReceived,
    SlackMessageSeen,
    StartVerification,
    SuppressionRecorded,
    TenantRequest,
    TenantsMessage,
    VerificationMessage,
)
from eyetok.review import NoteAnswer, Review
from eyetok.thread_verbs import ThreadMessageSeen
from eyetok.verification import Verification
from schedules.credentials import credentials_of
from schedules.loader import Routine
from schedules.table import ScheduleEntry
from state.history import queries
from state.history.store import HistoryStore
from state.history.tenant_queries import TenantScope
from state.history.wal import Journal
from state.mirror.digest_receipts import DigestReceipts
from state.mirror.mutes import MutesMirror
from state.mirror.writer import MirrorWriter

JOURNAL_TIMEOUT_S = 10.0
BATCH_CHUNK = 64  # signals of a batch hook per pipeline message (and per commit at most)
PIPELINE_BUFFER = 1024


@dataclass
class Topology:
    """The channels (originals, held for the process's life) and the child specs."""

    children: list[ChildSpec]
    ingest: trio.MemorySendChannel[IngestMessage]
    channels: dict[str, trio.abc.AsyncResource]
    sinks: dict[str, Sink]
    store: HistoryStore
    clock: Clock
    operator_tenant: str
    health: HealthBoard | None = None
    durable: bool = False  # postgres durability: no 202 unless Postgres committed it too

    def durability_refusal(self) -> OverloadedError | None:
        """Postgres durability: why a signal cannot be made durable now (the mirror is not
        writing to Postgres), as the 503 the hooks answer; None when it can."""
        if not self.durable:
            return None
        restored = self.health.get("rehydration") if self.health is not None else None
        if restored is not None and restored.state != "ok":
            return OverloadedError(restored.detail + "; retry shortly", retry_after=5)
        mirror = self.health.get("mirror") if self.health is not None else None
        if mirror is not None and mirror.state == "ok":
            return None
        why = mirror.detail if mirror is not None else "the mirror has not started"
        return OverloadedError(
            f"postgres durability: nothing can be accepted while Postgres cannot commit it "
            f"({why}); retry shortly",
            retry_after=5,
        )

    async def submit(self, signal: Signal) -> Accepted:
        """Hand a signal to the pipeline and wait until it is journalled (and, in postgres
        durability, committed in Postgres)."""
        refusal = self.durability_refusal()
        if refusal is not None:
            raise refusal
        reply: Reply[Accepted] = Reply()
        try:
            self.ingest.send_nowait(SignalReceived(signal=signal, reply=reply))
        except trio.WouldBlock:
            raise OverloadedError("ingest queue is full; retry shortly", retry_after=1) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise OverloadedError("EyeTok is draining; retry shortly", retry_after=5) from None
        with trio.move_on_after(JOURNAL_TIMEOUT_S) as waited:
            accepted = await reply.wait()
        if waited.cancelled_caught:
            raise OverloadedError("the journal did not confirm in time; retry", retry_after=2)
        if accepted.not_durable is not None:
            raise _not_durable(accepted.not_durable)
        return accepted

    async def submit_batch(
        self, signals: Sequence[Signal]
    ) -> tuple[list[Accepted], OverloadedError | None]:
        """Hand a batch hook's signals to the pipeline in chunks of :data:`BATCH_CHUNK`
        (one message, one commit, one answer each) and wait until they are journalled.
        The answers in payload order, and why the rest was refused (a full ingest queue
        refuses the remaining chunks; the chunks handed over still complete)."""
        replies: list[Reply[tuple[Accepted, ...]]] = []
        refusal: OverloadedError | None = self.durability_refusal()
        if refusal is not None:
            return [], refusal
        for start in range(0, len(signals), BATCH_CHUNK):
            reply: Reply[tuple[Accepted, ...]] = Reply()
            chunk = tuple(signals[start : start + BATCH_CHUNK])
            try:
                self.ingest.send_nowait(SignalsReceived(signals=chunk, reply=reply))
            except trio.WouldBlock:
                refusal = OverloadedError("ingest queue is full; retry shortly", retry_after=1)
                break
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                refusal = OverloadedError("EyeTok is draining; retry shortly", retry_after=5)
                break
            replies.append(reply)
        accepted: list[Accepted] = []
        with trio.move_on_after(JOURNAL_TIMEOUT_S) as waited:
            for reply in replies:
                answers = await reply.wait()
                not_durable = next((a.not_durable for a in answers if a.not_durable), None)
                if not_durable is not None:
                    refusal = refusal or _not_durable(not_durable)
                else:
                    accepted.extend(answers)
        if waited.cancelled_caught and refusal is None:
            refusal = OverloadedError("the journal did not confirm in time; retry", retry_after=2)
        return accepted, refusal

    async def _ask_verification(self, make: Callable[[Reply[Any]], Any]) -> Any:
        return await self._ask("verification", make)

    async def _ask(self, actor: str, make: Callable[[Reply[Any]], Any]) -> Any:
        reply: Reply[Any] = Reply()
        channel = self.channels[actor]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(make(reply))
        with trio.fail_after(60):
            return await reply.wait()

    async def rotate(
        self, sink_id: str, sink_type: str, requested_by: str, token: str | None
    ) -> RotationAnswer:
        answer: RotationAnswer = await self._ask(
            "rotation",
            lambda r: RotateSink(
                sink_id=sink_id,
                sink_type=sink_type,
                requested_by=requested_by,
                token=token,
                reply=r,
            ),
        )
        return answer

    async def oncall_sync(self, requested_by: str) -> OncallSyncAnswer:
        if not any(child.name == "oncall" for child in self.children):
            return OncallSyncAnswer(
                status=503,
                message="no on-call sync is configured: set EYETOK_SCIM_URL, EYETOK_SCIM_TOKEN, "
                "PAGERDUTY_API_TOKEN, PAGERDUTY_SCHEDULE_ID and PAGERDUTY_FROM",
            )
        answer: OncallSyncAnswer = await self._ask(
            "oncall", lambda r: OncallSyncRequested(requested_by=requested_by, reply=r)
        )
        return answer

    async def roll_back(self, sink_id: str, requested_by: str) -> RotationAnswer:
        answer: RotationAnswer = await self._ask(
            "rotation",
            lambda r: RollBackRotation(sink_id=sink_id, requested_by=requested_by, reply=r),
        )
        return answer

    async def start_verification(self, sink_id: str, requested_by: str) -> HandshakeAnswer:
        answer: HandshakeAnswer = await self._ask_verification(
            lambda r: StartVerification(sink_id=sink_id, requested_by=requested_by, reply=r)
        )
        return answer

    async def slack_message(self, message: SlackMessageSeen) -> None:
        channel = self.channels["verification"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(message)

    async def email_link(self, token: str) -> HandshakeAnswer:
        answer: HandshakeAnswer = await self._ask_verification(
            lambda r: EmailLinkOpened(token=token, reply=r)
        )
        return answer

    async def oauth_callback(
        self, state: str, code: str | None, error: str | None
    ) -> HandshakeAnswer:
        answer: HandshakeAnswer = await self._ask_verification(
            lambda r: OAuthCallback(state=state, code=code, error=error, reply=r)
        )
        return answer

    async def verifications(self) -> tuple[Verification, ...]:
        found: tuple[Verification, ...] = await self._ask_verification(
            lambda r: ListVerifications(reply=r)
        )
        return found

    @property
    def history(self) -> trio.MemorySendChannel[HistoryMessage]:
        """The history actor's inbox (the drill desk journals receipts through it)."""
        history = self.channels["history"]
        assert isinstance(history, trio.MemorySendChannel)
        return history

    async def flush_history(self) -> None:
        """Wait until everything journalled so far is in the DuckDB tables."""
        reply: Reply[bool] = Reply()
        history = self.channels["history"]
        assert isinstance(history, trio.MemorySendChannel)
        await history.send(FlushHistory(reply=reply))
        await reply.wait()

    async def budgets(self) -> tuple[BudgetStanding, ...]:
        """Every tenant's budget this hour (tenants seen this hour, or with alerts held)."""
        reply: Reply[tuple[BudgetStanding, ...]] = Reply()
        budgets = self.channels["budgets"]
        assert isinstance(budgets, trio.MemorySendChannel)
        await budgets.send(ShowBudgets(reply=reply))
        with trio.fail_after(30):
            return await reply.wait()

    async def record(self, message: HistoryMessage) -> None:
        """Journal one history message (an acknowledgement, an audit line) and wait until
        it is in the tables."""
        history = self.channels["history"]
        assert isinstance(history, trio.MemorySendChannel)
        await history.send(message)
        await self.flush_history()

    async def suppressions(self) -> list[dict[str, Any]]:
        await self.flush_history()
        return await self.store.read(queries.suppressions)

    async def acknowledge_cluster(self, cluster_id: str, by: str) -> dict[str, Any] | None:
        """Record the operator's acknowledgement of a cluster's notice (audited)."""
        rows = await self.suppressions()
        row = next((r for r in rows if r["cluster_id"] == cluster_id), None)
        if row is None:
            return None
        if row["acked_at"] is None:
            await self.acknowledge_digest(CLUSTER + cluster_id, by)  # the notice's receipt
            now = self.clock.now()
            await self.record(
                SuppressionRecorded(
                    cluster_id=cluster_id,
                    event="acknowledged",
                    at=now,
                    cluster_key=str(row["cluster_key"]),
                    tenants=tuple(row["tenants"]),
                    active_tenants=int(row["active_tenants"]),
                    withheld=int(row["withheld"]),
                    by=by,
                )
            )
            await self.record(
                AuditRecorded(
                    at=now,
                    tenant=self.operator_tenant,
                    event="cluster_acknowledged",
                    detail=f"cluster {cluster_id} acknowledged by {by}",
                )
            )
            rows = await self.store.read(queries.suppressions)
            row = next(r for r in rows if r["cluster_id"] == cluster_id)
        return row

    async def acknowledge_digest(self, what: str, by: str) -> tuple[DigestReceipt | None, bool]:
        """A human read an operator digest (``digest:<id>``, ``cluster:<id>``): its receipt
        as it now stands (None: no such digest) and whether this read counted (False: read
        already), once audited."""
        reply: Reply[tuple[DigestReceipt | None, bool]] = Reply()
        channel = self.channels["digests"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(DigestRead(what=what, by=by, at=self.clock.now(), reply=reply))
        with trio.fail_after(60):
            return await reply.wait()

    async def acknowledge_incident(
        self,
        incident_id: str,
        by: str,
        *,
        by_id: str | None = None,
        tenants: tuple[str, ...] | None = None,
    ) -> tuple[Incident | None, bool]:
        """A human acknowledges an incident (a Slack button, ``eyetok ack``, PagerDuty): the
        incident as it now stands (None: no open incident has this id, or not of
        one of ``tenants``) and whether this was the acknowledgement that counted (False:
        acknowledged already). Answered once the acknowledgement is in the tables (audited,
        its deliveries planned)."""
        reply: Reply[tuple[Incident | None, bool]] = Reply()
        flushed: Reply[bool] = Reply()
        message = AcknowledgeIncident(
            incident_id=incident_id,
            by=by,
            by_id=by_id,
            tenants=tenants,
            at=self.clock.now(),
            reply=reply,
            flushed=flushed,
        )
        return await self._decided(message, reply, flushed)

    async def resolve_incident(
        self,
        incident_id: str,
        by: str,
        *,
        note: str = "",
        by_id: str | None = None,
        tenants: tuple[str, ...] | None = None,
    ) -> tuple[Incident | None, bool]:
        """A human resolves an incident (the Slack modal, PagerDuty): answered like
        :meth:`acknowledge_incident` once the resolve is in the tables."""
        reply: Reply[tuple[Incident | None, bool]] = Reply()
        flushed: Reply[bool] = Reply()
        message = ResolveIncident(
            incident_id=incident_id,
            by=by,
            by_id=by_id,
            tenants=tenants,
            note=note,
            at=self.clock.now(),
            reply=reply,
            flushed=flushed,
        )
        return await self._decided(message, reply, flushed)

    async def _decided(
        self,
        message: AcknowledgeIncident | ResolveIncident,
        reply: Reply[tuple[Incident | None, bool]],
        flushed: Reply[bool],
    ) -> tuple[Incident | None, bool]:
        await self.ingest.send(message)
        with trio.fail_after(30):
            incident, counted = await reply.wait()
            if incident is not None:
                await flushed.wait()
        if not counted:  # a click that changed nothing is recorded too: who, what, why not
            wanted = "acknowledge" if isinstance(message, AcknowledgeIncident) else "resolve"
            named = message.incident_id[:100]  # as sent: a click's value may be anything
            if incident is not None:
                why = f"acknowledged already, by {incident.acknowledged_by}"
            elif message.tenants is None:
                why = "no open incident has this id"
            else:
                among = ", ".join(message.tenants) or "none: no verified sink is there"
                why = f"no open incident of the tenants it may decide for ({among}) has this id"
            await self.record(
                AuditRecorded(
                    at=message.at,
                    tenant=incident.tenant if incident is not None else self.operator_tenant,
                    event="decision_not_applied",
                    detail=f"{message.by} asked to {wanted} {named}: {why}",
                    incident_id=named,
                )
            )
        return incident, counted

    async def playbook_click(self, action: str, target: str, by: str) -> str:
        """A human's playbook button (approve, reject, repropose, acknowledge_escalation):
        answered by the playbooks actor with one line saying what it did."""
        reply: Reply[str] = Reply()
        channel = self.channels["playbooks"]
        assert isinstance(channel, trio.MemorySendChannel)
        click = msgspec.convert(
            {"action": action, "target": target, "by": by, "at": self.clock.now()},
            PlaybookClick,
        )
        await channel.send(msgspec.structs.replace(click, reply=reply))
        with trio.fail_after(60):
            return await reply.wait()

    async def proposal_tenant(self, proposal_id: str) -> str | None:
        """The tenant of a playbook proposal's incident (None: no such proposal)."""
        reply: Reply[str] = Reply()
        channel = self.channels["playbooks"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(ProposalTenantAsked(proposal_id=proposal_id, reply=reply))
        with trio.fail_after(60):
            return await reply.wait() or None

    async def incidents(self, *, open_only: bool, tenant: str | None) -> list[Incident]:
        """Every tenant's incidents from the history, newest first (the operator's view)."""
        await self.flush_history()
        return await self.store.read(
            lambda con: queries.incidents(con, open_only=open_only, tenant=tenant)
        )

    def thread_message(self, message: ThreadMessageSeen) -> None:
        """Hand a human's thread reply to the conversation actor (a full inbox: the 503
        Slack retries later)."""
        channel = self.channels["conversation"]
        assert isinstance(channel, trio.MemorySendChannel)
        try:
            channel.send_nowait(message)
        except trio.WouldBlock:
            raise OverloadedError("thread replies queue is full; retry", retry_after=1) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise OverloadedError("EyeTok is draining; retry shortly", retry_after=5) from None

    async def _ask_routines(self, make: Callable[[Reply[Any]], Any]) -> Any:
        reply: Reply[Any] = Reply()
        channel = self.channels["routines"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(make(reply))
        with trio.fail_after(60):
            return await reply.wait()

    async def review(self, since: datetime) -> Review:
        """The notification stream since ``since``, its anomalies recorded."""
        found: Review = await self._ask_routines(lambda r: ReviewRequested(since=since, reply=r))
        return found

    async def note_anomaly(self, anomaly_id: str, verdict: str, note: str, by: str) -> NoteAnswer:
        answer: NoteAnswer = await self._ask_routines(
            lambda r: AnomalyNoteRequested(
                anomaly_id=anomaly_id, verdict=verdict, note=note, by=by, reply=r
            )
        )
        return answer

    async def tenant_call(
        self,
        credential: str,
        tenant: str,
        op: str,
        key: str = "",
        body: object = None,
        *,
        vouched: str = "",
    ) -> ApiAnswer:
        """One call on the tenant API, answered by the tenants actor (``vouched``: the
        people actor authorised the caller, who acts under this name)."""
        reply: Reply[ApiAnswer] = Reply()
        channel = self.channels["tenants"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(
            TenantRequest(
                credential=credential,
                tenant=tenant,
                op=op,
                key=key,
                body=body,
                reply=reply,
                vouched=vouched,
            )
        )
        with trio.fail_after(60):
            return await reply.wait()

    async def people_call(
        self, request_of: Callable[[Reply[ApiAnswer]], PeopleRequest]
    ) -> ApiAnswer:
        """One call for the people actor (who may do what), answered by it."""
        channel = self.channels["people"]
        assert isinstance(channel, trio.MemorySendChannel)
        return await ask_people(channel, request_of)

    async def apply_change(self, change: dict[str, Any]) -> ApiAnswer:
        """Apply a rule change a reviewer approved, in the names of both."""
        by = f"review:{change['proposed_by']}+{change['decided_by']} ({change['change_id']})"
        proposed = json.loads(change["proposed_json"])
        if change["kind"] == "config_file":
            return await apply_config_change(self.tenant_call, proposed, by)
        return await self.tenant_call("", change["tenant"], "put_routes", body=proposed, vouched=by)

    async def tenant_incidents(
        self, tenant: str, *, status: str | None, limit: int
    ) -> list[Incident]:
        """The tenant's incidents from the history (the caller is authorised already)."""
        scope = TenantScope(tenant)
        return await self.store.read(lambda con: scope.incidents(con, status=status, limit=limit))

    async def tenant_incident(self, tenant: str, incident_id: str) -> Incident | None:
        scope = TenantScope(tenant)
        return await self.store.read(lambda con: scope.incident(con, incident_id))

    def backlog(self) -> int:
        """Messages waiting in every pipeline channel (the drain waits for zero)."""
        total = 0
        for channel in self.channels.values():
            if isinstance(channel, trio.MemorySendChannel):
                total += channel.statistics().current_buffer_used
        return total


def _not_durable(reason: str) -> OverloadedError:
    return OverloadedError(
        f"postgres durability: journalled here but not committed in Postgres ({reason}); "
        "retry shortly",
        retry_after=5,
    )


def schedule_commands(
    entries: tuple[ScheduleEntry, ...],
    verification: trio.MemorySendChannel[VerificationMessage],
    routines: trio.MemorySendChannel[RoutinesMessage],
) -> tuple[ScheduleCommand, ...]:
    """What each routine's schedule sends when it fires, and to whom."""
    commands = []
    for entry in entries:
        make: Callable[[datetime], Any]
        to: trio.MemorySendChannel[Any]
        match Routine(entry.name):
            case Routine.REVERIFY:
                make, to = (lambda at: ReverifyDue(at=at)), verification
            case Routine.DAILY_REVIEW:
                make, to = (lambda at: ReviewDue(slot=at)), routines
            case Routine.MONTHLY_DRILL:
                make, to = (lambda at: DrillDue(slot=at)), routines
            case Routine.CREDENTIAL_ROTATION:
                make, to = (lambda at: RotationReminderDue(slot=at)), routines
            case Routine.RETENTION:
                make, to = (lambda at: RetentionDue(slot=at)), routines
        commands.append(ScheduleCommand(entry=entry, make=make, to=to))
    return tuple(commands)


def _child(
    name: str,
    actor: Callable[..., Awaitable[None]],
    deps: Any,
    *ends: Any,
    clock: Clock,
    restart: Restart = Restart.PERMANENT,
) -> ChildSpec:
    async def run(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        clones = [end.clone() for end in ends]
        try:
            await actor(deps, *clones, clock=clock, task_status=task_status)
        finally:
            for clone in clones:
                clone.close()

    return ChildSpec(name=name, run=run, restart=restart)


def build(
    settings: Settings,
    store: HistoryStore,
    journal: Journal,
    clock: Clock,
    *,
    health: HealthBoard | None = None,
    sink_board: SinkBoard | None = None,
    mirror_writer: MirrorWriter | None = None,
    local_url: Callable[[], str] | None = None,
    credentials: LiveCredentials | None = None,
) -> Topology:
    """The channels and children. ``mirror_writer`` (with ``DATABASE_URL``) adds the mirror.
    ``credentials``: the root token and Slack signing secret the HTTP app reads (SIGHUP
    swaps them in it)."""
    live = credentials or LiveCredentials.of(settings)
    ingest_tx, ingest_rx = trio.open_memory_channel[IngestMessage](settings.ingest_queue)
    router_tx, router_rx = trio.open_memory_channel[RouterMessage](PIPELINE_BUFFER)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](PIPELINE_BUFFER)
    suppression_tx, suppression_rx = trio.open_memory_channel[Deliver](PIPELINE_BUFFER)
    budgets_tx, budgets_rx = trio.open_memory_channel[BudgetMessage](PIPELINE_BUFFER)
    mutes_tx, mutes_rx = trio.open_memory_channel[MuteMessage](PIPELINE_BUFFER)
    conversation_tx, conversation_rx = trio.open_memory_channel[ThreadMessageSeen](64)
    digests_tx, digests_rx = trio.open_memory_channel[DigestRead](16)
    delivery_tx, delivery_rx = trio.open_memory_channel[DeliveryMessage](PIPELINE_BUFFER)
    verification_tx, verification_rx = trio.open_memory_channel[VerificationMessage](64)
    mirror_tx, mirror_rx = trio.open_memory_channel[MirrorMessage](PIPELINE_BUFFER)
    routines_tx, routines_rx = trio.open_memory_channel[RoutinesMessage](16)
    tenants_tx, tenants_rx = trio.open_memory_channel[TenantsMessage](64)
    rotation_tx, rotation_rx = trio.open_memory_channel[RotationMessage](8)
    oncall_tx, oncall_rx = trio.open_memory_channel[OncallMessage](8)
    playbooks_tx, playbooks_rx = trio.open_memory_channel[PlaybookMessage](64)
    people_tx, people_rx = trio.open_memory_channel[PeopleMessage](64)
    sinks = build_sinks(settings, clock)
    board = health or HealthBoard()
    durable = settings.durability == "postgres" and mirror_writer is not None
    children: list[ChildSpec] = []
    if mirror_writer is not None:
        # Started before history so that it stops after it and takes its final flush.
        children.append(
            _child(
                "mirror",
                run_mirror,
                MirrorDeps(
                    writer=mirror_writer,
                    status=board,
                    durable=durable,
                    # postgres durability: the hooks are closed while it is down
                    backoff_max_s=5.0 if durable else 30.0,
                ),
                mirror_rx,
                clock=clock,
            )
        )
    children += [
        _child(
            "history",
            run_history,
            HistoryDeps(
                store=store, journal=journal, mirrored=mirror_writer is not None, durable=durable
            ),
            history_rx,
            suppression_tx,
            mirror_tx,
            clock=clock,
        ),
        _child(
            "suppression",
            run_suppression,
            SuppressionDeps(
                store=store,
                options=settings.suppression,
                active_tenants=len(settings.tenants),
                operator_tenant=settings.operator_tenant,
                notices=settings.notices_destination(),
            ),
            suppression_rx,
            mutes_tx,
            history_tx,
            clock=clock,
        ),
        _child(
            "mutes",
            run_mutes,
            MutesDeps(
                store=store,
                mirror=MutesMirror(settings.database_url) if settings.database_url else None,
                tenants=tuple(settings.tenants),
            ),
            mutes_rx,
            budgets_tx,
            history_tx,
            clock=clock,
        ),
        _child(
            "budgets",
            run_budgets,
            BudgetsDeps(
                store=store,
                enabled=settings.budgets.enabled,
                caps={t: tenant.hourly_budget for t, tenant in settings.tenants.items()},
                tiers={t: tenant.tier for t, tenant in settings.tenants.items()},
                primary=settings.primary_destinations(),
                cap_notices=settings.cap_destination(),
                operator_tenant=settings.operator_tenant,
                settings=settings,
            ),
            budgets_rx,
            delivery_tx,
            history_tx,
            clock=clock,
        ),
        _child(
            "tenants",
            run_tenants,
            TenantsDeps(settings=settings, store=store),
            tenants_rx,
            history_tx,
            router_tx,
            delivery_tx,
            verification_tx,
            budgets_tx,
            clock=clock,
        ),
        _child(
            "people",
            run_people,
            PeopleDeps(
                people=settings.people,
                credentials=live,
                operator_tenant=settings.operator_tenant,
                store=store,
                tenants=frozenset(settings.tenants),
            ),
            people_rx,
            history_tx,
            clock=clock,
        ),
        _child(
            "delivery",
            run_delivery,
            DeliveryDeps(
                store=store,
                sinks=sinks,
                options=settings.delivery,
                operator_tenant=settings.operator_tenant,
                notices=settings.notices_destination(),
                tenants=frozenset(settings.tenants),
                tenant_destinations=settings.tenant_destinations(),
                settings=settings,
                health=health,
                sink_board=sink_board,
            ),
            delivery_rx,
            history_tx,
            clock=clock,
        ),
        _child(
            "verification",
            run_verification,
            VerificationDeps(
                settings=settings,
                store=store,
                sinks=sinks,
                public_url=settings.public_url,
                dns_server=settings.dns_resolver,
                txt_every_s=settings.verification.txt_every_s,
                txt_for_s=settings.verification.txt_for_s,
            ),
            verification_rx,
            history_tx,
            delivery_tx,
            clock=clock,
        ),
        _child(
            "rotation",
            run_rotation,
            RotationDeps(
                settings=settings,
                store=store,
                sealer=sealer_of(settings),
                database_url=settings.database_url,
                dns_server=settings.dns_resolver,
                txt_every_s=settings.verification.txt_every_s,
                txt_for_s=settings.verification.txt_for_s,
            ),
            rotation_rx,
            history_tx,
            tenants_tx,
            verification_tx,
            clock=clock,
        ),
        _child(
            "routines",
            run_routines,
            RoutinesDeps(
                store=store,
                operator_tenant=settings.operator_tenant,
                notices=settings.notices_destination(),
                review_window=timedelta(hours=settings.routines.review_window_h),
                drill_command=settings.routines.drill_command,
                drill_timeout_s=settings.routines.drill_timeout_s,
                retention=settings.retention,
                mirror_dsn=settings.database_url,
                mirror_tenants=lambda: (settings.operator_tenant, *settings.tenants),
                drill_zone=next(
                    e.zone for e in settings.schedules if e.name == Routine.MONTHLY_DRILL
                ),
                local_url=local_url or (lambda: f"http://127.0.0.1:{settings.port}"),
                credentials=lambda: credentials_of(settings),
                reread_credentials=lambda: credentials_of(load_settings()),
                reload_credentials=and_review(
                    credential_reloader(tenants_tx, store, clock, live), config_reviewer(people_tx)
                ),
            ),
            routines_rx,
            history_tx,
            clock=clock,
        ),
        _child(
            "scheduler",
            run_scheduler,
            SchedulerDeps(
                commands=schedule_commands(settings.schedules, verification_tx, routines_tx),
                store=store,
                operator_tenant=settings.operator_tenant,
            ),
            history_tx,
            clock=clock,
        ),
        _child(
            "playbooks",
            run_playbooks,
            PlaybooksDeps(
                settings=settings,
                ledger_path=settings.data_dir / "playbooks.jsonl",
                database_url=settings.database_url,
                incidents=ingest_tx,
            ),
            playbooks_rx,
            history_tx,
            clock=clock,
        ),
        _child(
            "router",
            run_router,
            RouterDeps(settings=settings, store=store, playbooks=playbooks_tx),
            router_rx,
            history_tx,
            clock=clock,
        ),
    ]
    if settings.freescout_link is not None:  # the ticket trail: an operator-side integration
        trail = TicketTrailDeps(
            store=store,
            settings=settings,
            link=settings.freescout_link,
            options=settings.freescout,
            health=board,
        )
        children.append(
            _child("ticket_trail", run_ticket_trail, trail, ingest_tx, history_tx, clock=clock)
        )
    children += [
        _child(
            "incidents",
            run_incidents,
            IncidentsDeps(settings=settings, store=store),
            ingest_rx,
            router_tx,
            clock=clock,
        ),
        _child(
            "digests",
            run_digests,
            DigestsDeps(
                settings=settings,
                store=store,
                mirror=DigestReceipts(settings.database_url, settings.operator_tenant)
                if settings.database_url
                else None,
                # new digests are looked for at least four times per escalation window
                rescan_s=min(
                    30.0,
                    settings.tenants[settings.operator_tenant].escalation.digest_escalate_s / 4,
                ),
            ),
            digests_rx,
            history_tx,
            clock=clock,
        ),
        _child(
            "conversation",
            run_conversation,
            ConversationDeps(
                settings=settings,
                store=store,
                may=thread_gate(people_tx),
                names=SlackNames(settings),
            ),
            conversation_rx,
            ingest_tx,
            mutes_tx,
            history_tx,
            clock=clock,
        ),
    ]
    if settings.oncall is not None:
        children.append(
            _child(
                "oncall",
                run_oncall,
                OncallDeps(
                    source=settings.oncall,
                    roles=people_role_book(
                        people_tx,
                        {p.slack_user_id: p.email for p in settings.people if p.email},
                    ),
                    operator_tenant=settings.operator_tenant,
                ),
                oncall_rx,
                history_tx,
                tenants_tx,
                clock=clock,
            )
        )
    return Topology(
        children=children,
        ingest=ingest_tx,
        channels={
            "ingest": ingest_tx,
            "router": router_tx,
            "history": history_tx,
            "suppression": suppression_tx,
            "budgets": budgets_tx,
            "mutes": mutes_tx,
            "conversation": conversation_tx,
            "digests": digests_tx,
            "delivery": delivery_tx,
            "mirror": mirror_tx,
            "verification": verification_tx,
            "routines": routines_tx,
            "tenants": tenants_tx,
            "rotation": rotation_tx,
            "oncall": oncall_tx,
            "playbooks": playbooks_tx,
            "people": people_tx,
        },
        sinks=sinks,
        store=store,
        clock=clock,
        operator_tenant=settings.operator_tenant,
        health=board,
        durable=durable,
    )
