"""Every message EyeTok's actors exchange, and the signal they carry.

Messages are frozen msgspec Structs. Names are facts (``SignalAccepted``) or commands
(``Deliver``). A message that asks for an answer carries a ``reply`` return address
(a :class:`Reply`), as an Erlang ``call`` carries the caller's pid: the address is not
state, it is where the answer goes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import msgspec
import trio

from eyetok.access import Caller
from eyetok.review import Anomaly, NoteAnswer, Review
from eyetok.verification import HandshakeEvent, PendingHandshake, Verification, VerificationStatus

if TYPE_CHECKING:  # eyetok.config imports this module; a message only carries Settings
    from eyetok.config import Settings


class Severity(enum.StrEnum):
    """The canonical severity of ADR-0091."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class SevChannel(enum.StrEnum):
    """The loudness a severity gets at a given time (design section 3)."""

    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV2_5 = "SEV2.5"
    SEV3 = "SEV3"


class SignalKind(enum.StrEnum):
    """Whether a signal raises (or re-raises) a problem or says it is over."""

    ALERT = "alert"
    RESOLVE = "resolve"


class IncidentAction(enum.StrEnum):
    """What a signal did to its incident."""

    OPEN = "open"
    UPDATE = "update"
    RESOLVE = "resolve"
    AUDIT = "audit"


class Signal(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One inbound alert, normalised from whatever source sent it.

    ``received_at`` is stamped once at ingest and carried everywhere after.
    ``marks`` are the recognisers that matched (``h12``, ``paper_gate``,
    ``synthetic_check``); the severity rules read them.
    """

    signal_id: str
    tenant: str
    source: str  # "sentry", later "probe", "generic", "alertmanager"
    resource: str  # sentry: event_alert | metric_alert | issue | error | legacy
    action: str  # the source's own verb: triggered, created, resolved, critical ...
    kind: SignalKind
    dedup_key: str
    title: str
    received_at: datetime
    level: str = "error"  # fatal | error | warning | info | debug
    message: str = ""
    culprit: str = ""
    url: str = ""
    project: str = ""
    environment: str = ""
    is_new: bool | None = None  # None: the payload does not say (EyeTok decides)
    is_regression: bool = False
    unhandled: bool | None = None
    users_affected: int | None = None
    is_metric_alert: bool = False
    is_performance: bool = False
    tags: tuple[tuple[str, str], ...] = ()
    marks: frozenset[str] = frozenset()
    cluster_key: str | None = None
    # the signed Standard Webhooks message it came in: its webhook-id and how many signals
    # it carried ("" and 0: not signed); a restart remembers recent ids from these
    webhook_id: str = ""
    webhook_signals: int = 0


class Routing(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The severity decision for one signal: which rule matched and how loud it is."""

    severity: Severity
    rule: str
    sev_channel: SevChannel | None  # None: audit log only
    business_hours: bool


class Incident(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A snapshot of an incident as its owner (the incidents actor) last saw it.

    Untracked by the garbage collector (``gc=False``): its fields are strings, numbers,
    enums and datetimes, which cannot form a cycle, and a burst keeps thousands open."""

    incident_id: str
    tenant: str
    dedup_key: str
    title: str
    severity: Severity
    sev_channel: SevChannel | None
    rule: str
    status: str  # open | acknowledged | resolved
    opened_at: datetime
    last_seen_at: datetime
    event_count: int
    resolved_at: datetime | None = None
    url: str = ""
    culprit: str = ""
    environment: str = ""
    project: str = ""
    level: str = "error"
    escalation_recommended: SevChannel | None = None
    # SEV1's human loop (timers are state, not tasks: they are derived from these)
    acknowledged_by: str | None = None  # "slack:<name> (<user id>)", "cli:<name>"
    acknowledged_at: datetime | None = None
    renotified_at: datetime | None = None  # the one re-notification was planned
    escalated_at: datetime | None = None  # the one escalation to the secondary was planned
    # the incident's FreeScout conversation, once the ticket trail opened it
    freescout_conversation_id: int | None = None
    # who decided, as the system they used names them ("slack:U0DANA", "pagerduty:PLH1HKV")
    acknowledged_by_id: str | None = None
    resolved_by: str | None = None  # a human resolve (a Slack modal, PagerDuty); None: a signal
    resolved_by_id: str | None = None
    resolution_note: str | None = None


class Destination(msgspec.Struct, frozen=True, kw_only=True):
    """Where one delivery goes: a configured sink and a target inside it."""

    sink_id: str
    sink_type: str
    target: str  # Slack channel name, webhook URL, address, routing key


T = TypeVar("T")


class Reply(Generic[T]):
    """A one-shot return address: the asker waits, one actor answers once."""

    __slots__ = ("_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None

    def send(self, value: T) -> None:
        if self._event.is_set():
            return
        self._value = value
        self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        assert self._value is not None
        return self._value


class Accepted(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The answer ingest gives once a signal is durably journalled."""

    signal_id: str
    incident_id: str | None
    severity: Severity
    sev_channel: SevChannel | None
    action: IncidentAction
    rule: str
    # Postgres durability only: why the signal, journalled here, is not (surely) committed
    # in Postgres; the hook answers 503 with Retry-After instead of 202 (None: durable).
    not_durable: str | None = None


# --- tenant-scoped configuration (the tenant API) ---------------------------------------


class TenantToken(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's API token as EyeTok keeps it: only the SHA-256 of the token, never the
    token. A row with ``revoked_at`` set revokes the token with that ``token_id``."""

    token_id: str  # public handle (for listing and revoking), not a secret
    tenant: str
    token_hash: str  # sha256 hex of the token
    issued_at: datetime
    issued_by: str
    label: str = ""
    revoked_at: datetime | None = None
    revoked_by: str = ""


class TenantConfigEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One change a tenant (or root) made to the tenant's configuration through the API:
    a sink written or removed (``kind`` "sink", ``key`` the sink id) or the routes
    replaced (``kind`` "routes", ``key`` "routes"). ``value_json`` is the sink config or
    the routes as JSON; empty when removed."""

    tenant: str
    kind: str  # sink | routes
    key: str
    value_json: str
    recorded_at: datetime
    recorded_by: str  # "token:<token_id>" or "root"


class TenantRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Journal tenant tokens and configuration entries; answer ``reply`` after the commit
    (the API answers only once the change is durable)."""

    tokens: tuple[TenantToken, ...] = ()
    entries: tuple[TenantConfigEntry, ...] = ()
    reply: Reply[bool] | None = None


class TenantConfigChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A tenant's sinks or routes changed through the API: route, verify and deliver by
    ``settings`` from now on (the file's configuration with every tenant's API changes).
    ``sinks`` are the sink ids written or removed."""

    settings: Settings
    tenant: str
    sinks: tuple[str, ...] = ()


class ApiAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the tenant API answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, object]


class TenantRequest(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One call on the tenant API, for the tenants actor: ``credential`` is the bearer
    token as presented; ``tenant`` the tenant in the path; ``op`` what is asked
    (list_sinks, put_sink, delete_sink, get_routes, put_routes, issue_token, list_tokens,
    revoke_token, authorise); ``key`` the sink or token id; ``body`` the decoded JSON."""

    credential: str
    tenant: str
    op: str
    reply: Reply[ApiAnswer]
    key: str = ""
    body: object = None
    # set only by EyeTok itself once the people actor authorised the caller (a person's
    # grant, or a rule change a reviewer approved): the tenants actor acts as this name
    vouched: str = ""


PeopleOp = Literal[
    "authorise",
    "whoami",
    "people",
    "bind",
    "unbind",
    "issue_token",
    "switch",
    "end",
    "propose",
    "propose_config",
    "changes",
    "approve",
    "reject",
    "applied",
]


class PeopleRequest(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One call for the people actor (actors/people/). The caller is ``caller`` when the
    tenants actor has identified it already (a tenant token), else the bearer
    ``credential`` (the root token or a person's token) or ``slack_user`` (a request Slack
    signed). ``action`` and ``tenant`` are what ``authorise`` checks; ``key`` the person or
    change id; ``body`` the decoded JSON."""

    op: PeopleOp
    reply: Reply[ApiAnswer]
    credential: str = ""
    slack_user: str = ""
    caller: Caller | None = None
    action: str = ""
    tenant: str | None = None
    key: str = ""
    body: object = None


# --- inbox of the incidents actor ------------------------------------------------------


class SignalReceived(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Ingest hands a normalised signal to the incidents actor and waits on ``reply``."""

    signal: Signal
    reply: Reply[Accepted] | None = None


class SignalsReceived(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A batch hook hands a chunk of its signals over at once (one message, one answer,
    one journal commit); they are decided in order, so a "down" then "ok" for one server
    opens and then resolves."""

    signals: tuple[Signal, ...]
    reply: Reply[tuple[Accepted, ...]] | None = None


class AcknowledgeIncident(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human acknowledged an incident (a Slack button, ``eyetok ack``). The answer is the
    incident as it now stands (None: no open incident has this id) and whether this
    acknowledgement was the one that counted (False: it was acknowledged already)."""

    incident_id: str
    by: str
    at: datetime
    reply: Reply[tuple[Incident | None, bool]] | None = None
    flushed: Reply[bool] | None = None  # answered once the acknowledgement is in the tables
    by_id: str | None = None  # "slack:<user id>", "pagerduty:<user id>"
    # set: only an incident of one of these tenants (a tenant's webhook, a workspace's click)
    tenants: tuple[str, ...] | None = None


class TicketOpened(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The ticket trail opened (or found again) the incident's FreeScout conversation: the
    incidents actor keeps its id on the incident (and so in every later snapshot)."""

    incident_id: str
    conversation_id: int
    at: datetime


class ResolveIncident(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human resolved an incident (the Slack "Resolve with a note" modal, PagerDuty).
    Answered like :class:`AcknowledgeIncident` (None: no open incident has this id; the
    flag is always True for a resolve that was made)."""

    incident_id: str
    by: str
    at: datetime
    note: str = ""
    by_id: str | None = None
    tenants: tuple[str, ...] | None = None
    reply: Reply[tuple[Incident | None, bool]] | None = None
    flushed: Reply[bool] | None = None


class Acknowledgement(msgspec.Struct, frozen=True, kw_only=True):
    """A human's recorded acknowledgement of ``escalation_recommended: to``."""

    incident_id: str
    to: SevChannel
    by: str
    at: datetime


class PromoteIncident(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human's recorded acknowledgement of ``escalation_recommended: to`` made the
    incident louder: the incidents actor moves it to that channel (through
    :func:`eyetok.escalation.promote`), so its repeats follow to the louder thread."""

    acknowledgement: Acknowledgement
    at: datetime


IngestMessage = (
    SignalReceived
    | SignalsReceived
    | AcknowledgeIncident
    | ResolveIncident
    | TicketOpened
    | PromoteIncident
)


# --- inbox of the router ---------------------------------------------------------------


class IncidentChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The incidents actor decided what a signal does; the router picks destinations."""

    signal: Signal
    routing: Routing
    action: IncidentAction
    incident: Incident | None
    reply: Reply[Accepted] | None = None


# --- inbox of the history actor (the only owner of the DuckDB connection) -------------


class JournalSignal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Journal a signal, its incident snapshot and its planned deliveries (outbox rows)
    in one transaction; answer ``reply`` after the commit, then hand the deliveries on."""

    signal: Signal
    routing: Routing
    action: IncidentAction
    incident: Incident | None
    deliveries: tuple[Deliver, ...]
    reply: Reply[Accepted] | None = None


class JournalSignals(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A chunk of :class:`JournalSignal`, journalled in one commit and answered at once."""

    items: tuple[JournalSignal, ...]
    reply: Reply[tuple[Accepted, ...]] | None = None


class DeliveryFinished(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A sink finished with an outbox row: delivered, refused or dead."""

    delivery_id: str
    tenant: str
    incident_id: str
    sink_id: str
    sink_type: str
    target: str
    action: IncidentAction
    outcome: str  # delivered | refused | dead
    attempts: int
    latency_ms: float
    finished_at: datetime
    detail: str = ""
    external_ref: str = ""  # Slack ts, PagerDuty dedup key, SMTP Message-ID ...
    thread_ref: str = ""  # the Slack thread this message went into


def finished(
    deliver: Deliver,
    outcome: str,
    *,
    at: datetime,
    attempts: int = 0,
    detail: str = "",
    external_ref: str = "",
    thread_ref: str = "",
) -> DeliveryFinished:
    """The end of ``deliver``'s outbox row: ``outcome`` at ``at``, latency from receipt."""
    return DeliveryFinished(
        delivery_id=deliver.delivery_id,
        tenant=deliver.tenant,
        incident_id=deliver.incident.incident_id,
        sink_id=deliver.destination.sink_id,
        sink_type=deliver.destination.sink_type,
        target=deliver.destination.target,
        action=deliver.action,
        outcome=outcome,
        attempts=attempts,
        latency_ms=(at - deliver.received_at).total_seconds() * 1000.0,
        finished_at=at,
        detail=detail,
        external_ref=external_ref,
        thread_ref=thread_ref,
    )


class AuditRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """One audit-log line."""

    at: datetime
    tenant: str
    event: str
    detail: str
    incident_id: str | None = None
    signal_id: str | None = None


class IncidentRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An incident's new snapshot that no signal caused (an acknowledgement, a
    re-notification, an escalation): journalled, and mirrored like a signal's."""

    incident: Incident


class PlanDeliveries(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Write outbox rows for deliveries that no signal caused directly (operator notices,
    digests), then hand them to the delivery actor."""

    origin: str  # what caused them: a delivery id, a budget window ...
    deliveries: tuple[Deliver, ...]


class VerificationRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A row for the verification log."""

    verification: Verification


class HandshakeRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A handshake opened (its nonce is handed out only after ``reply``: the commit) or
    closed (completed, failed, burnt, expired). History journals it; the mirror keeps
    the open ones, so a fresh dyno completes them too."""

    event: HandshakeEvent
    handshake: PendingHandshake
    at: datetime
    reason: str = ""
    reply: Reply[bool] | None = None


class SuppressionRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A suppression-log row: a cluster fired, cleared, or its notice was acknowledged."""

    cluster_id: str
    event: str  # fired | cleared | acknowledged
    at: datetime
    cluster_key: str
    tenants: tuple[str, ...] = ()  # the silenced tenant ids so far
    active_tenants: int = 0
    withheld: int = 0  # individual deliveries withheld so far
    by: str = ""  # who acknowledged


class FlushHistory(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Materialise everything journalled into the DuckDB tables, then answer ``reply``
    (operator commands and tests that read the tables right after an event)."""

    reply: Reply[bool]


class DrillReceiptRecorded(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A drill's receipt (posted by the harness through the operator API) for the
    ``drill_receipts`` table; ``receipt_json`` is the whole one-page document."""

    receipt_id: str
    scenario: str
    tenant: str
    started_at: datetime
    finished_at: datetime
    verdict: str  # pass | fail
    failed_steps: tuple[str, ...]
    daemon_version: str
    receipt_json: str
    at: datetime


class AnomaliesFlagged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """New rows for the anomaly journal (a review found them)."""

    anomalies: tuple[Anomaly, ...]
    at: datetime


class AnomalyNoted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The on-call's verdict on an anomaly: who, when, benign or escalate, and why."""

    anomaly_id: str
    verdict: str  # benign | escalate
    note: str
    by: str
    at: datetime


HistoryMessage = (
    JournalSignal
    | JournalSignals
    | DeliveryFinished
    | AuditRecorded
    | IncidentRecorded
    | PlanDeliveries
    | FlushHistory
    | VerificationRecorded
    | HandshakeRecorded
    | DrillReceiptRecorded
    | SuppressionRecorded
    | AnomaliesFlagged
    | AnomalyNoted
    | TenantRecorded
)


# --- inbox of the mirror actor (Postgres incident_state, write-behind) -----------------


class IncidentSnapshotted(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An incident's new state was journalled; mirror it (newest ``recorded_at`` wins)."""

    incident: Incident
    recorded_at: datetime


class DeliveryPlanned(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An outbox row was journalled as pending; mirror it so a fresh dyno can resume it."""

    deliver: Deliver


class DeliveryClosed(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An outbox row finished; the mirror drops it from the pending set and, for a
    delivered Slack opening message, records the thread on the incident."""

    finished: DeliveryFinished


class ConfirmDurable(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Postgres durability: the history asks the mirror to commit every change sent
    before this one now, and to answer whether that commit landed (False: Postgres is
    unreachable, the changes stay buffered and the signals waiting on them get a 503)."""

    reply: Reply[bool]


MirrorChange = (
    IncidentSnapshotted
    | DeliveryPlanned
    | DeliveryClosed
    | VerificationRecorded
    | TenantRecorded
    | HandshakeRecorded
)
MirrorMessage = MirrorChange | ConfirmDurable


# --- inbox of the sink actor -----------------------------------------------------------


class PostButton(msgspec.Struct, frozen=True, kw_only=True):
    """A Block Kit button: Slack's interactivity request carries ``action_id`` and
    ``value`` back (eyetok/http/slack_interactions.py)."""

    action_id: str
    text: str
    value: str
    style: Literal["primary", "danger"] | None = None


class PlaybookPost(msgspec.Struct, frozen=True, kw_only=True):
    """What the playbooks actor says in an incident's thread, and the buttons it offers."""

    text: str
    buttons: tuple[PostButton, ...] = ()


class Rewrite(msgspec.Struct, frozen=True, kw_only=True):
    """A post made earlier (outbox row ``delivery_id``, on the same destination) rewritten
    in place to say who decided what: its text and the buttons still possible."""

    delivery_id: str
    text: str
    buttons: tuple[PostButton, ...] = ()
    ts: str | None = None  # set only on the copy a lane renders: the post's Slack ts


class PlaybookClick(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A human pressed a playbook button: approve or reject a proposal, propose it again,
    or acknowledge an escalation recommendation (``target``: a proposal or incident id).
    The answer is one line saying what it did."""

    action: Literal["approve", "reject", "repropose", "acknowledge_escalation"]
    target: str
    by: str
    at: datetime
    reply: Reply[str] | None = None


class ProposalTenantAsked(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Whose is this playbook proposal? The tenant of its incident ("": no such one),
    for the authorisation of its Slack buttons (eyetok/http/slack_gate.py)."""

    proposal_id: str
    reply: Reply[str]


PlaybookMessage = IncidentChanged | PlaybookClick | ProposalTenantAsked


# what a delivery tells of besides the signal's own news: a step of the human loop, or a
# playbook's post in the incident's thread
DeliveryStep = Literal["acknowledged", "renotify", "escalated", "resolved", "playbook"]


class Deliver(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Send one rendered notice about one incident to one destination.

    ``delivery_id`` is the outbox row id and the idempotency key.
    """

    delivery_id: str
    tenant: str
    destination: Destination
    incident: Incident
    action: IncidentAction
    rule: str
    planned_at: datetime
    received_at: datetime  # when the signal behind it reached EyeTok
    notice: str | None = None  # an operator notice: this text, not the incident, is sent
    signal_id: str = ""  # the signal that caused it (budgets count signals, not deliveries)
    cluster_key: str | None = None  # error_kind|asn|registry: the suppression window holds it
    acknowledge: str | None = None  # a notice a human must acknowledge: what (``cluster:<id>``)
    # a step of SEV1's human loop this delivery tells of (none: the signal's own news);
    # "playbook": a playbook's post in the incident's thread (``post``)
    step: DeliveryStep | None = None
    playbook_note: str | None = None  # a playbook matched: what it will do (the first post)
    post: PlaybookPost | None = None  # a playbook's thread post (actors/playbooks.py)
    rewrite: Rewrite | None = None  # a decision: the post it decided on, rewritten (Slack)
    # set only on the copy a lane renders: why and how late it goes out ("delayed 12 min:
    # sink `slack` was awaiting verification"); never journalled
    late: str | None = None


class BudgetStanding(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's budget in the current clock hour."""

    tenant: str
    tier: str
    cap: int | None  # None: uncapped
    window_start: datetime
    admitted: int  # alerts delivered within the budget this hour
    held: int  # alerts held for the digest at the top of the hour
    capped: bool


class ShowBudgets(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Ask the budgets actor for every tenant's standing this hour."""

    reply: Reply[tuple[BudgetStanding, ...]]


BudgetMessage = Deliver | ShowBudgets | TenantConfigChanged


class VerificationChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A sink's verification changed; the delivery gate follows it from now on."""

    verification: Verification


DeliveryMessage = Deliver | VerificationChanged | TenantConfigChanged


# --- inbox of the verification actor ---------------------------------------------------


class HandshakeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What the operator (or the customer's browser) is told about a handshake step."""

    ok: bool
    sink_id: str
    status: str  # pending | live | renewed | failed | refused
    message: str  # the instruction to follow, or why it failed
    nonce: str | None = None  # shown once, to whoever started the handshake
    url: str | None = None  # PagerDuty: where to approve


class StartVerification(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Start (or restart) the ownership handshake of one sink."""

    sink_id: str
    requested_by: str
    reply: Reply[HandshakeAnswer]


class SlackMessageSeen(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A message event from Slack's Events API (signature already checked)."""

    team_id: str
    channel: str
    channel_type: str  # im | channel | group | mpim
    user: str
    text: str


class EmailLinkOpened(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    token: str
    reply: Reply[HandshakeAnswer]


class OAuthCallback(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    state: str
    code: str | None
    error: str | None
    reply: Reply[HandshakeAnswer]


class ReverifyDue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The re-verification schedule fired: renew every sink older than its cadence."""

    at: datetime


class ListVerifications(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    reply: Reply[tuple[Verification, ...]]


class RotationStanding(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The rotation drill's word on a sink's credential, for the verification log:
    ``rotated`` when a new version is put in (the gate refuses until it is proven),
    ``live`` when a DKIM record is found or a rollback restores a proven version,
    ``failed`` when the new one could not be proven. Answers the row recorded."""

    sink_id: str
    status: VerificationStatus
    approved_by: str
    detail: str
    verified_by: str = ""
    expires_at: datetime | None = None  # a rollback keeps the restored version's expiry
    reply: Reply[Verification]


class RefreshTokenRequested(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The PagerDuty refresh token the last authorization granted the sink ("" if none),
    for the secret store (the rotation drill)."""

    sink_id: str
    reply: Reply[str]


VerificationMessage = (
    StartVerification
    | SlackMessageSeen
    | EmailLinkOpened
    | OAuthCallback
    | ReverifyDue
    | ListVerifications
    | TenantConfigChanged
    | RotationStanding
    | RefreshTokenRequested
)


# --- inbox of the routines actor (the schedules' consumers, the operator's review) -----


class ReviewDue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The daily-review schedule fired (``slot``: the instant it was due)."""

    slot: datetime


class DrillDue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The monthly-drill schedule fired."""

    slot: datetime


class RotationReminderDue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The quarterly credential-rotation schedule fired."""

    slot: datetime


class RetentionDue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The daily retention schedule fired: prune the history to the policy."""

    slot: datetime


class ReviewRequested(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``eyetok review``: the stream from ``since`` to now, anomalies recorded."""

    since: datetime
    reply: Reply[Review]


class AnomalyNoteRequested(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``eyetok review --note ID --benign|--escalate TEXT``."""

    anomaly_id: str
    verdict: str  # benign | escalate
    note: str
    by: str
    reply: Reply[NoteAnswer]


class CredentialsReread(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Re-read the credentials (SIGHUP) and record any whose value changed."""

    why: str


RoutinesMessage = (
    ReviewDue
    | DrillDue
    | RotationReminderDue
    | RetentionDue
    | ReviewRequested
    | AnomalyNoteRequested
    | CredentialsReread
)


class CredentialsSwapped(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The credentials were read again (SIGHUP, the vault): ``settings`` holds them. The
    tenants actor puts them in its settings and passes the result on; deliveries from then
    on use them, with no restart."""

    settings: Settings
    why: str


class CredentialVersionInUse(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The secret store's version of a sink credential to use from now on (``current``;
    None: the sink has none of that kind, e.g. mail no longer signed), current since
    ``since``; ``previous`` is the version before it (a webhook signs with both for 30
    days). The tenants actor folds it into the settings and answers once every actor
    following them has been told."""

    sink_id: str
    current: dict[str, str] | None
    previous: dict[str, str] | None
    since: datetime
    reply: Reply[bool]


class OnCallChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The IdP-bound rotation put ``slack_user`` on call: SEV2 mentions and SEV1
    re-notifications name them from now on (instead of one fixed user id)."""

    slack_user: str
    who: str  # their email, for the log line


TenantsMessage = TenantRequest | CredentialsSwapped | CredentialVersionInUse | OnCallChanged


# --- inbox of the on-call actor (eyetok oncall sync, every 15 minutes) -------------------


class OncallSyncAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What one sync did, by email: an HTTP status and the difference applied."""

    status: int
    message: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    created: tuple[str, ...] = ()  # PagerDuty users made for new members
    refused: tuple[str, ...] = ()  # root-only members, never put on call
    on_call: str | None = None


class OncallSyncRequested(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    requested_by: str
    reply: Reply[OncallSyncAnswer]


OncallMessage = OncallSyncRequested


# --- inbox of the rotation actor (eyetok rotate) -----------------------------------------


class RotationAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What ``eyetok rotate`` is told: an HTTP status and what happened."""

    status: int
    sink_id: str
    message: str
    rotation_id: str | None = None
    version: int | None = None  # the version now in the sink's hands (or on its way)
    handshake: HandshakeAnswer | None = None  # the re-run handshake's instructions
    publish: dict[str, str] | None = None  # email: the DKIM TXT record to publish
    secret: str | None = None  # webhook: the new signing secret, shown once to the rotator


class RotateSink(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``eyetok rotate KIND --sink ID``: add version N+1 of the sink's credential."""

    sink_id: str
    sink_type: str  # the class the operator named; refused when the sink is another
    requested_by: str
    token: str | None = None  # Slack: the new bot token
    reply: Reply[RotationAnswer]


class RollBackRotation(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """``eyetok rotate rollback --sink ID``: the open rotation's sink goes back to N."""

    sink_id: str
    requested_by: str
    reply: Reply[RotationAnswer]


RotationMessage = RotateSink | RollBackRotation
PeopleMessage = PeopleRequest


class IncidentsChanged(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The incidents actor's decisions on a chunk of signals, in order (one answer)."""

    changes: tuple[IncidentChanged, ...]
    reply: Reply[tuple[Accepted, ...]] | None = None


class IncidentStepped(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """SEV1's human loop took a step (a human acknowledged; the re-notification or the
    escalation fell due): the router plans who hears of it and journals the incident's new
    snapshot, the audit line and the deliveries, in order behind the signals before it."""

    incident: Incident
    # "ticketed": the ticket trail's conversation id is now on the incident (no delivery);
    # "promoted": a human acknowledged a louder channel (the playbooks actor re-posts it)
    step: Literal["acknowledged", "renotify", "escalated", "resolved", "ticketed", "promoted"]
    at: datetime
    flushed: Reply[bool] | None = None  # answered once it is all in the tables


RouterMessage = IncidentChanged | IncidentsChanged | TenantConfigChanged | IncidentStepped
