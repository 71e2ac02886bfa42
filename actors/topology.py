"""The one place channels are made and actors are wired.

    HTTP hooks --SignalReceived--> [incidents] --IncidentChanged--> [router]
        --JournalSignal--> [history] ==commit==> 202 answered; Deliver --> [delivery]
        --DeliveryFinished / AuditRecorded--> [history]

Forward edges may block (that is the backpressure that ends in a 503 at the front door).
The only back edge, delivery -> history, cannot deadlock: history's only outbound edge
goes to the delivery dispatcher, which never blocks (it hands work to its lanes).
The supervisor keeps every original channel end open for the life of the process; each
actor incarnation gets clones, so a restarted actor reads the same inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from actors.delivery import DeliveryDeps, run_delivery
from actors.history import HistoryDeps, run_history
from actors.incidents import IncidentsDeps, run_incidents
from actors.mirror import MirrorDeps, run_mirror
from actors.router import RouterDeps, run_router
from actors.scheduler import ScheduleCommand, SchedulerDeps, run_scheduler
from actors.sinks import build_sinks
from actors.sinks.base import Sink
from actors.supervisor import ChildSpec, Restart
from actors.verification import VerificationDeps, run_verification
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.errors import OverloadedError
from eyetok.health import HealthBoard
from eyetok.messages import (
    Accepted,
    DeliveryMessage,
    EmailLinkOpened,
    FlushHistory,
    HandshakeAnswer,
    HistoryMessage,
    IncidentChanged,
    JournalSignal,
    ListVerifications,
    MirrorMessage,
    OAuthCallback,
    Reply,
    ReverifyDue,
    Signal,
    SignalReceived,
    SlackMessageSeen,
    StartVerification,
    VerificationMessage,
)
from eyetok.verification import Verification
from schedules.table import ScheduleEntry
from state.history.store import HistoryStore
from state.history.wal import Journal
from state.mirror.writer import MirrorWriter

JOURNAL_TIMEOUT_S = 10.0
PIPELINE_BUFFER = 1024


@dataclass
class Topology:
    """The channels (originals, held for the process's life) and the child specs."""

    children: list[ChildSpec]
    ingest: trio.MemorySendChannel[SignalReceived]
    channels: dict[str, trio.abc.AsyncResource]
    sinks: dict[str, Sink]

    async def submit(self, signal: Signal) -> Accepted:
        """Hand a signal to the pipeline and wait until it is journalled."""
        reply: Reply[Accepted] = Reply()
        try:
            self.ingest.send_nowait(SignalReceived(signal=signal, reply=reply))
        except trio.WouldBlock:
            raise OverloadedError("ingest queue is full; retry shortly", retry_after=1) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise OverloadedError("EyeTok is draining; retry shortly", retry_after=5) from None
        with trio.move_on_after(JOURNAL_TIMEOUT_S):
            return await reply.wait()
        raise OverloadedError("the journal did not confirm in time; retry", retry_after=2)

    async def _ask_verification(self, make: Callable[[Reply[Any]], Any]) -> Any:
        reply: Reply[Any] = Reply()
        channel = self.channels["verification"]
        assert isinstance(channel, trio.MemorySendChannel)
        await channel.send(make(reply))
        with trio.fail_after(60):
            return await reply.wait()

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

    def backlog(self) -> int:
        """Messages waiting in every pipeline channel (the drain waits for zero)."""
        total = 0
        for channel in self.channels.values():
            if isinstance(channel, trio.MemorySendChannel):
                total += channel.statistics().current_buffer_used
        return total


def _system_resolver() -> tuple[str, int]:
    """The first nameserver of the host's resolver configuration (/etc/resolv.conf)."""
    import dns.resolver

    try:
        return (str(dns.resolver.Resolver().nameservers[0]), 53)
    except (dns.resolver.NoResolverConfiguration, IndexError):
        return ("127.0.0.1", 53)


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
    mirror_writer: MirrorWriter | None = None,
) -> Topology:
    """The channels and children. ``mirror_writer`` (with ``DATABASE_URL``) adds the mirror."""
    ingest_tx, ingest_rx = trio.open_memory_channel[SignalReceived](settings.ingest_queue)
    router_tx, router_rx = trio.open_memory_channel[IncidentChanged](PIPELINE_BUFFER)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](PIPELINE_BUFFER)
    delivery_tx, delivery_rx = trio.open_memory_channel[DeliveryMessage](PIPELINE_BUFFER)
    verification_tx, verification_rx = trio.open_memory_channel[VerificationMessage](64)
    mirror_tx, mirror_rx = trio.open_memory_channel[MirrorMessage](PIPELINE_BUFFER)
    journal_tx: trio.MemorySendChannel[JournalSignal] = history_tx
    sinks = build_sinks(settings, clock)
    children: list[ChildSpec] = []
    if mirror_writer is not None:
        # Started before history so that it stops after it and takes its final flush.
        children.append(
            _child(
                "mirror",
                run_mirror,
                MirrorDeps(writer=mirror_writer, status=health or HealthBoard()),
                mirror_rx,
                clock=clock,
            )
        )
    children += [
        _child(
            "history",
            run_history,
            HistoryDeps(store=store, journal=journal, mirrored=mirror_writer is not None),
            history_rx,
            delivery_tx,
            mirror_tx,
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
                tenants=tuple(settings.tenants),
                tenant_destinations=settings.tenant_destinations(),
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
                dns_server=settings.dns_resolver or _system_resolver(),
                txt_every_s=settings.verification.txt_every_s,
                txt_for_s=settings.verification.txt_for_s,
            ),
            verification_rx,
            history_tx,
            delivery_tx,
            clock=clock,
        ),
        _child(
            "scheduler",
            run_scheduler,
            SchedulerDeps(
                commands=(
                    ScheduleCommand(
                        entry=ScheduleEntry(
                            name="reverify",
                            cron=settings.verification.reverify_cron,
                            zone=settings.verification.reverify_zone,
                        ),
                        make=lambda at: ReverifyDue(at=at),
                        to=verification_tx,
                    ),
                )
            ),
            clock=clock,
        ),
        _child(
            "router", run_router, RouterDeps(settings=settings), router_rx, journal_tx, clock=clock
        ),
        _child(
            "incidents",
            run_incidents,
            IncidentsDeps(settings=settings, store=store),
            ingest_rx,
            router_tx,
            clock=clock,
        ),
    ]
    return Topology(
        children=children,
        ingest=ingest_tx,
        channels={
            "ingest": ingest_tx,
            "router": router_tx,
            "history": history_tx,
            "delivery": delivery_tx,
            "mirror": mirror_tx,
            "verification": verification_tx,
        },
        sinks=sinks,
    )
