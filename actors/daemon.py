"""The process: the history store, the supervised actors, the HTTP server, the signals.

Startup order: history store -> actors (in topology order) -> HTTP. Shutdown (SIGTERM or
SIGINT): close the ingest gate (hooks answer 503), stop HTTP gracefully, let the
pipeline empty, stop actors in reverse order (history last, flushing), exit 0 inside
the 25 s Heroku allows.
"""

from __future__ import annotations

import signal
from typing import Any, cast

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from actors.drill_desk import DrillDesk
from actors.supervisor import Supervisor
from actors.topology import Topology, build
from eyetok import doctor, log
from eyetok.clock import Clock
from eyetok.config import Settings
from eyetok.errors import StateError
from eyetok.health import HealthBoard
from eyetok.http.app import create_app
from eyetok.http.asgi import ASGIApp
from eyetok.http.front import Front
from eyetok.http.hooks import Hooks, IngestGate
from state.history.store import HistoryStore
from state.history.wal import Journal
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
        # routing goes on and the mirror catches up.
        return {
            "ready": bool(expected) and all(n in started for n in expected) and self.gate.open,
            "actors": {n: n in started for n in expected},
            "accepting": self.gate.open,
            "restarts": dict(self.supervisor.restarts),
            "components": self.health.snapshot(),
            "setup": self.setup,
        }

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        settings = self.settings
        db_path = settings.data_dir / "history.duckdb"
        self.store = store = HistoryStore(db_path)
        journal = Journal(settings.data_dir / "journal")
        mirror_writer = None
        if settings.database_url:
            mirror_writer = MirrorWriter(settings.database_url)
            if store.is_new:
                await self._rehydrate(store, settings.database_url)
        topology = self.topology = build(
            settings,
            store,
            journal,
            self.clock,
            health=self.health,
            mirror_writer=mirror_writer,
            local_url=lambda: f"http://127.0.0.1:{self.bound_port or settings.port}",
        )
        self._log.info(
            "eyetok_starting",
            data=str(db_path),
            new_history=store.is_new,
            tenants=sorted(settings.tenants),
            sinks_configured=settings.configured_sinks(),
            sinks_unconfigured=sorted(set(settings.sinks) - set(settings.configured_sinks())),
            port=settings.port,
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
        app = create_app(
            readiness=self.readiness,
            verifier=topology,
            reviewer=topology,
            root_token=settings.root_token,
            slack_signing_secret=settings.slack_signing_secret,
            clock=self.clock,
            drills=DrillDesk(settings, store, topology.history, self.clock),
            operations=topology,
            tenant_api=topology,
        )
        front = Front(hooks, cast(ASGIApp, app))
        config = HypercornConfig()
        config.bind = [f"{self.host}:{settings.port}"]
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = HTTP_GRACE_S
        config.keep_alive_timeout = 75
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
                await self.supervisor.start(nursery, topology.children)
                binds = await nursery.start(http)
                self.bound_port = _port_of(binds, settings.port)
                self._log.info("eyetok_ready", listening=binds, port=self.bound_port)
                task_status.started(self.bound_port)
                nursery.start_soon(self._watch_signals)
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

    async def _rehydrate(self, store: HistoryStore, dsn: str) -> None:
        """A fresh dyno: restore open incidents, pending deliveries and Slack threads from
        the Postgres mirror. If Postgres cannot be read, start anyway (routing new alerts
        matters more) and say so loudly, in the log and on /readyz."""
        try:
            tenants = tuple(self.settings.tenants)
            rehydrated = await trio.to_thread.run_sync(
                lambda: load_from_postgres(dsn, tenants=tenants)
            )
            now = self.clock.now()  # read here: a trio-anchored clock cannot be read in a thread
            restored = await store.write(lambda con: rehydrate_into(con, rehydrated, now=now))
        except StateError as exc:
            self._log.error("rehydration_failed", reason=str(exc))
            self.health.set(
                "rehydration", "degraded", f"not restored from Postgres: {exc}", at=self.clock.now()
            )
            return
        self._log.info(
            "rehydrated_from_postgres",
            items=restored,
            incidents=len(rehydrated.incidents),
            deliveries=len(rehydrated.deliveries),
            threads=len(rehydrated.threads),
            tenant_changes=len(rehydrated.tenant_entries),
            tenant_tokens=len(rehydrated.tenant_tokens),
        )

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


def _port_of(binds: list[str], fallback: int) -> int:
    for bind in binds:
        try:
            return int(bind.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
    return fallback
