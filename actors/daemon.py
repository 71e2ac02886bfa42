"""The process: the history store, the supervised actors, the HTTP server, the signals.

Startup order: history store -> actors (in topology order) -> HTTP. Shutdown (SIGTERM or
SIGINT): close the ingest gate (hooks answer 503), stop HTTP gracefully, let the
pipeline empty, stop actors in reverse order (history last, flushing), exit 0 inside
the 25 s Heroku allows.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
import trio
from hypercorn.trio import serve

from actors.console_desk import ConsoleDeskOfDaemon
from actors.credential_versions import sealer_of, stored_credentials
from actors.drill_desk import DrillDesk
from actors.gauges import daemon_gauges
from actors.sinks.slack.interactivity import SlackInteractivity
from actors.supervisor import Supervisor
from actors.topology import Topology, build
from eyetok import doctor, log, standard_webhooks
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.console.routes import add_console
from eyetok.errors import ConfigError, StateError
from eyetok.health import HealthBoard, SinkBoard
from eyetok.http.app import create_app
from eyetok.http.asgi import ASGIApp
from eyetok.http.front import Front
from eyetok.http.hooks import Hooks, IngestGate
from eyetok.http.metrics import add_metrics
from eyetok.http.server import server_config
from eyetok.live_credentials import LiveCredentials
from eyetok.webhook_ids import WebhookKey
from state.history.buffers import release_cached_blocks
from state.history.export import ParquetArchive
from state.history.store import HistoryStore
from state.history.wal import Journal
from state.mirror.refusal import role_refusal
from state.mirror.rehydrate import load_from_postgres, rehydrate_into
from state.mirror.writer import MirrorWriter

DRAIN_DEADLINE_S = 25.0
HTTP_GRACE_S = 5.0
PIPELINE_GRACE_S = 5.0
STOP_GRACE_S = 11.0  # a lane finishing its in-flight attempt (10 s at most)


class Daemon:
    def __init__(self, settings: Settings, clock: Clock, *, host: str = "0.0.0.0") -> None:
        self.settings = settings
        self.clock = clock
        self.host = host
        self.gate = IngestGate()
        self.supervisor = Supervisor()
        self.store: HistoryStore | None = None
        self.health = HealthBoard()
        self.sink_board = SinkBoard()
        self.topology: Topology | None = None
        self.bound_port: int | None = None
        self._stop = trio.Event()
        self._log = log.get("daemon")
        self.setup: dict[str, object] = {}  # eyetok doctor's verdict at start (setup_status)

    def request_stop(self) -> None:
        self._stop.set()

    def readiness(self) -> dict[str, Any]:
        expected = [c.name for c in self.topology.children] if self.topology else []
        started = set(self.supervisor.started)
        # A degraded mirror (Postgres down) is reported but does not make EyeTok unready:
        # routing goes on and the mirror catches up. In postgres durability it does: no
        # signal can be accepted until Postgres commits again.
        refusal = self.topology.durability_refusal() if self.topology else None
        return {
            "ready": bool(expected)
            and all(n in started for n in expected)
            and self.gate.open
            and refusal is None,
            "actors": {n: n in started for n in expected},
            "accepting": self.gate.open and refusal is None,
            "durability": {
                "mode": self.settings.durability,
                "why_not_accepting": str(refusal) if refusal is not None else None,
            },
            "restarts": dict(self.supervisor.restarts),
            "components": self.health.snapshot(),
            "setup": self.setup,
        }

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        settings = self.settings
        if settings.durability == "postgres" and settings.database_url is not None:
            # Postgres refusing the role never heals by waiting, and postgres durability
            # accepts nothing without it: a start-up failure (Postgres down is not).
            refused = await trio.to_thread.run_sync(role_refusal, settings.database_url)
            if refused is not None:
                raise ConfigError(
                    "DATABASE_URL",
                    f"Postgres refused the role in DATABASE_URL ({refused}); postgres "
                    "durability cannot accept anything without it",
                )
        db_path = settings.data_dir / "history.duckdb"
        self.store = store = HistoryStore(db_path)
        journal = Journal(settings.data_dir / "journal")
        mirror_writer = None
        durable = settings.durability == "postgres" and settings.database_url is not None
        # Postgres durability on an empty data directory: nothing is accepted (the hooks
        # answer 503) until the history is restored from Postgres, however long that takes,
        # or a crashed dyno's accepted signals would never be delivered.
        restore_first = durable and store.is_new
        if settings.database_url:
            mirror_writer = MirrorWriter(settings.database_url)
            if store.is_new and not durable:
                await self._rehydrate(store, settings.database_url)
        # a rotated credential (eyetok rotate) stands over the environment's and the vault's
        settings = self.settings = await stored_credentials(
            settings,
            store,
            sealer_of(settings),
            self.clock.now(),
            database_url=settings.database_url,
        )
        live = LiveCredentials.of(settings)  # the HTTP app's root token and signing secret
        topology = self.topology = build(
            settings,
            store,
            journal,
            self.clock,
            health=self.health,
            sink_board=self.sink_board,
            mirror_writer=mirror_writer,
            local_url=lambda: f"http://127.0.0.1:{self.bound_port or settings.port}",
            credentials=live,
        )
        self._log.info(
            "eyetok_starting",
            data=str(db_path),
            new_history=store.is_new,
            tenants=sorted(settings.tenants),
            sinks_configured=settings.configured_sinks(),
            sinks_unconfigured=sorted(set(settings.sinks) - set(settings.configured_sinks())),
            port=settings.port,
            durability=settings.durability,
            durable_in=(
                "the journal and postgres before each 202"
                if durable
                else "the journal (fsynced, on this disk) before each 202"
            ),
        )
        self.setup = doctor.setup_status(doctor.diagnose(settings))
        say = self._log.info if self.setup["main_job_ready"] else self._log.warning
        say("setup_status", **self.setup)
        if settings.slack.emergency_sop_url == doctor.PLACEHOLDER_SOP_URL:
            self._log.warning(
                "sop_url_placeholder",
                url=settings.slack.emergency_sop_url,
                why="EYETOK_SOP_URL is not set: SEV1 posts link a placeholder, not your runbook",
            )
        if settings.faults.active():
            self._log.warning(
                "faults_injected",
                faults=settings.faults.active(),
                why="configured under faults: for drill tests; routing is broken on purpose",
            )
        hooks = Hooks(
            tenants=settings.tenants,
            operator_tenant=settings.operator_tenant,
            recognisers=settings.recognisers,
            submit=topology.submit,
            submit_batch=topology.submit_batch,
            clock=self.clock,
            gate=self.gate,
        )
        drills = DrillDesk(settings, store, topology.history, self.clock)
        app = create_app(
            readiness=self.readiness,
            verifier=topology,
            reviewer=topology,
            root_token=settings.root_token,
            slack_signing_secret=settings.slack_signing_secret,
            clock=self.clock,
            drills=drills,
            archive=ParquetArchive(store),
            operations=topology,
            tenant_api=topology,
            sink_board=self.sink_board,
            tenants=settings.tenants,
            slack_app=SlackInteractivity(settings, topology, self.clock),
            rotations=topology,
            oncall=topology,
            conversation=topology,
            people=topology,
            slack_api_url=settings.slack_api_url,
            credentials=live,
        )
        add_console(
            app,
            ConsoleDeskOfDaemon(topology, drills, self.sink_board),
            self.clock,
            root_token=settings.root_token,
            incidents_on=settings.console_incidents,
            operator_tenant=settings.operator_tenant,
        )
        add_metrics(app, daemon_gauges(topology, self.supervisor), settings.metrics_token)
        front = Front(hooks, cast(ASGIApp, app))
        config = server_config(
            settings.http, bind=f"{self.host}:{settings.port}", graceful_timeout_s=HTTP_GRACE_S
        )
        http_stopped = trio.Event()
        http_stop = trio.Event()

        async def http(
            *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
        ) -> None:
            try:
                await serve(
                    front,  # type: ignore[arg-type]
                    config,
                    shutdown_trigger=http_stop.wait,
                    task_status=task_status,
                )
            finally:
                http_stopped.set()

        try:
            async with trio.open_nursery() as nursery:
                if restore_first:
                    assert settings.database_url is not None
                    binds = await nursery.start(http)  # /readyz says why it is waiting
                    nursery.start_soon(self._watch_signals)
                    if await self._rehydrate_before_accepting(store, settings.database_url):
                        await self.supervisor.start(nursery, topology.children)
                        await self._restore_webhook_ids(store, hooks)
                else:
                    await self.supervisor.start(nursery, topology.children)
                    await self._restore_webhook_ids(store, hooks)
                    binds = await nursery.start(http)
                    nursery.start_soon(self._watch_signals)
                self.bound_port = _port_of(binds, settings.port)
                await self._release_history_cache(store)
                self._log.info("eyetok_ready", listening=binds, port=self.bound_port)
                if settings.database_url is not None and not durable:
                    nursery.start_soon(self._say_if_role_refused, settings.database_url)
                task_status.started(self.bound_port)
                await self._stop.wait()
                with trio.move_on_after(DRAIN_DEADLINE_S) as deadline:
                    await self._drain(topology, http_stop, http_stopped)
                if deadline.cancelled_caught:
                    self._log.warning("drain_deadline_passed", deadline_s=DRAIN_DEADLINE_S)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                for sink in topology.sinks.values():
                    await sink.aclose()
            journal.close()
            if mirror_writer is not None:
                mirror_writer.close()
            store.close()
            self._log.info("eyetok_stopped")

    async def _restore_webhook_ids(self, store: HistoryStore, hooks: Hooks) -> None:
        """Remember the Standard Webhooks ids accepted shortly before this start, so a
        replay inside the signature's window is still a duplicate (eyetok/webhook_ids.py)."""
        window_s = 2 * standard_webhooks.DEFAULT_TOLERANCE_S
        since = self.clock.now() - timedelta(seconds=window_s)
        rows: list[tuple[str, str, str, int, str]] = await store.read(
            lambda con: con.execute(
                "SELECT tenant, source, signal_id, epoch_ms(received_at), signal_json"
                " FROM signals"
                " WHERE received_at >= ? AND source <> 'sentry' ORDER BY received_at",
                [since],
            ).fetchall()
        )
        messages: dict[WebhookKey, tuple[list[str], int, datetime]] = {}
        for tenant, source, signal_id, received_ms, signal_json in rows:
            ref = _decode_webhook_ref(signal_json)
            if not ref.webhook_id:
                continue
            key = (tenant, source, ref.webhook_id)
            ids = messages[key][0] if key in messages else []
            ids.append(signal_id)
            received_at = datetime.fromtimestamp(received_ms / 1000, UTC)  # the latest arrival
            messages[key] = (ids, ref.webhook_signals, received_at)
        restored = sum(
            1
            for key, (ids, total, received_at) in messages.items()
            if len(ids) >= total and hooks.webhook_ids.restore(key, tuple(ids), received_at)
        )
        self._log.info(
            "webhook_ids_restored",
            ids=restored,
            partial=sum(1 for ids, total, _ in messages.values() if len(ids) < total),
            window_s=window_s,
        )

    async def _say_if_role_refused(self, dsn: str) -> None:
        """Disk durability: a role Postgres refuses does not stop routing, but the log says
        so in words, once, after the daemon is ready (Postgres down is the mirror's line)."""
        refused = await trio.to_thread.run_sync(role_refusal, dsn, abandon_on_cancel=True)
        if refused is not None:
            self._log.error(
                "postgres_role_refused",
                reason=refused,
                consequence="running degraded without the Postgres mirror (disk durability)",
                fix="set DATABASE_URL to a role Postgres accepts (user and password)",
            )

    async def _release_history_cache(self, store: HistoryStore) -> None:
        """The actors have rebuilt their state: the history blocks they read leave RSS."""
        try:
            before_kib, after_kib = await store.read(release_cached_blocks)
        except StateError as exc:
            self._log.warning("history_cache_kept", reason=str(exc))
            return
        self._log.info(
            "history_cache_released",
            held_kib=before_kib,
            now_kib=after_kib,
            why="the actors rebuilt their state from it",
        )

    async def _rehydrate_before_accepting(self, store: HistoryStore, dsn: str) -> bool:
        """Postgres durability, a fresh data directory: rehydrate, retrying (backoff up to
        5 s) until Postgres answers or a stop is requested; True once restored."""
        backoff = 0.5
        while not self._stop.is_set():
            if await self._rehydrate(store, dsn, waiting=True):
                return True
            with trio.move_on_after(backoff):
                await self._stop.wait()
            backoff = min(backoff * 2, 5.0)
        return False

    async def _rehydrate(self, store: HistoryStore, dsn: str, *, waiting: bool = False) -> bool:
        """A fresh dyno: restore open incidents, pending deliveries and Slack threads from
        the Postgres mirror. If Postgres cannot be read, start anyway (routing new alerts
        matters more) and say so loudly, in the log and on /readyz; with ``waiting``
        (postgres durability) the caller retries instead of starting. True if restored."""
        try:
            tenants = tuple(self.settings.tenants)
            rehydrated = await trio.to_thread.run_sync(
                lambda: load_from_postgres(dsn, tenants=tenants)
            )
            now = self.clock.now()  # read here: a trio-anchored clock cannot be read in a thread
            restored = await store.write(lambda con: rehydrate_into(con, rehydrated, now=now))
        except StateError as exc:
            self._log.error("rehydration_failed", reason=str(exc), retrying=waiting)
            detail = f"not restored from Postgres: {exc}"
            if waiting:
                detail = (
                    "postgres durability on an empty data directory: nothing is accepted "
                    f"until the history is restored from Postgres; retrying: {exc}"
                )
            self.health.set("rehydration", "degraded", detail, at=self.clock.now())
            return False
        if waiting:
            self.health.set("rehydration", "ok", "restored from Postgres", at=self.clock.now())
        self._log.info(
            "rehydrated_from_postgres",
            items=restored,
            incidents=len(rehydrated.incidents),
            deliveries=len(rehydrated.deliveries),
            threads=len(rehydrated.threads),
            tenant_changes=len(rehydrated.tenant_entries),
            tenant_tokens=len(rehydrated.tenant_tokens),
            handshakes=len(rehydrated.handshakes),
        )
        return True

    async def _drain(
        self, topology: Topology, http_stop: trio.Event, http_stopped: trio.Event
    ) -> None:
        started = trio.current_time()
        self.gate.open = False
        self._log.info("drain_started")
        http_stop.set()
        await http_stopped.wait()
        with trio.move_on_after(PIPELINE_GRACE_S):
            # Channel statistics have no "became empty" event: poll them.
            while topology.backlog():  # noqa: ASYNC110
                await trio.sleep(0.02)
        await self.supervisor.stop(grace_s=STOP_GRACE_S)
        self._log.info(
            "drain_finished",
            seconds=round(trio.current_time() - started, 3),
            backlog=topology.backlog(),
        )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                self._log.info("signal_received", signal=signal.Signals(signum).name)
                self.request_stop()
                return


class _WebhookRef(msgspec.Struct):
    webhook_id: str = ""
    webhook_signals: int = 0


_decode_webhook_ref = msgspec.json.Decoder(_WebhookRef).decode


def _port_of(binds: list[str], fallback: int) -> int:
    for bind in binds:
        try:
            return int(bind.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
    return fallback
