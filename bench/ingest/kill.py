"""kill -9 mid-stream, restart (same or a NEW empty data directory), and count what
was accepted but never delivered."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

from bench.ingest import ANY_INCIDENT, BURST_FIXTURES, INCIDENT_IN_POST, durability, log
from bench.ingest.bodies import RequestFactory, retarget
from bench.ingest.peers import SlackWatch
from bench.ingest.processes import Daemon, start_eyetok
from bench.ingest.retrying import RetryRun, run_raw_retrying


class KillSwitch:
    """SIGKILLs the daemon from the load loop once ``at`` signals were answered 202, then
    restarts it (same data dir, same port) from a thread while the load keeps going."""

    def __init__(self, daemon: Daemon, at: int, restart: Any) -> None:
        self.daemon = daemon
        self.at = at
        self._restart = restart  # Callable[[], Daemon]
        self.killed_perf: float | None = None
        self.killed_wall: float | None = None
        self.accepted_at_kill = 0
        self.old_exit: int | None = None
        self.respawn_perf: float | None = None
        self.ready_perf: float | None = None
        self.first_202_after_perf: float | None = None
        self.restarted: Daemon | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def on_accepted(self, _: int, accepted: int, sent_perf: float) -> None:
        if self.killed_perf is not None:
            # The first 202 to a request sent after the respawn: the new daemon's first.
            respawn = self.respawn_perf
            if self.first_202_after_perf is None and respawn is not None and sent_perf > respawn:
                self.first_202_after_perf = time.perf_counter()
            return
        if accepted < self.at:
            return
        with contextlib.suppress(ProcessLookupError):
            self.daemon.proc.popen.send_signal(signal.SIGKILL)  # kill -9
        self.killed_perf = time.perf_counter()
        self.killed_wall = time.time()
        self.accepted_at_kill = accepted
        self._thread = threading.Thread(target=self._restart_now, name="restart", daemon=True)
        self._thread.start()

    def _restart_now(self) -> None:
        try:
            self.old_exit = self.daemon.proc.popen.wait(timeout=10.0)
            self.respawn_perf = time.perf_counter()
            self.restarted = self._restart()
            self.ready_perf = time.perf_counter()
        except BaseException as exc:  # reported by the phase; the load stops early
            self.error = exc

    def failed(self) -> bool:
        return self.error is not None

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)


def _incidents_in(post: dict[str, Any], expected: set[str] | dict[str, Any]) -> str | None:
    blob = (post.get("text") or "") + json.dumps(post.get("blocks") or [])
    m = INCIDENT_IN_POST.search(blob)
    if m and m.group(1) in expected:
        return m.group(1)
    return next((w for w in ANY_INCIDENT.findall(blob) if w in expected), None)


def _log_events(path: Path, event: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    found.append(json.loads(line))
    return found


def journalled_signal_ids(db_path: Path) -> set[str]:
    import duckdb

    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT signal_id FROM signals").fetchall()}
    finally:
        con.close()


def phase_kill(
    args: argparse.Namespace,
    factory: RequestFactory,
    workdir: Path,
    slack_url: str,
    watch: SlackWatch,
    dsn: str | None = None,
) -> dict[str, Any]:
    """N distinct signed webhooks at concurrency C; SIGKILL at ``--kill-at`` x N accepted,
    restart on the same data dir and port (``--fresh-data-dir``: on a new, empty one with
    the same Postgres ``dsn``), retry what failed; then every accepted incident must
    reach Slack and every accepted signal must be in a journal."""
    n = args.requests
    config = (
        f"sinks:\n  slack: {{type: slack, rate_per_channel: {args.slack_rate:g}}}\n"
        if args.slack_rate > 0
        else None
    )
    data_dir = workdir / "eyetok-kill"
    restart_dir = workdir / "eyetok-kill-fresh" if args.fresh_data_dir else data_dir
    mode = args.durability or "disk"
    extra_env = durability.durability_env(mode, dsn)

    def boot(port: int = 0, name: str = "eyetok", where: Path = data_dir) -> Daemon:
        return start_eyetok(
            secret=factory.secret,
            slack_url=slack_url,
            data_dir=where,
            config_yaml=config,
            port=port,
            name=name,
            extra_env=extra_env,
        )

    daemon = boot()
    at = max(1, min(n, round(n * args.kill_at)))
    switch = KillSwitch(daemon, at, lambda: boot(daemon.port, "eyetok-restart", restart_dir))
    figures: dict[str, Any] = {
        "durability": mode,
        "postgres": dsn is not None,
        "fresh_data_dir": bool(args.fresh_data_dir),
        "requests": n,
        "concurrency": args.concurrency,
        "port": daemon.port,
        "slack_rate_per_channel": args.slack_rate if config else 1.0,
        "kill_after_accepted": at,
        "ready_s": round(daemon.ready_s, 2),
    }
    posts: list[dict[str, Any]] = []
    run: RetryRun | None = None
    last: Daemon = daemon
    try:
        watch.skip_existing()
        reqs = retarget(factory.batch("k", n, BURST_FIXTURES, 1), 1, daemon.port)
        log(
            f"kill: {n} requests at concurrency {args.concurrency} -> :{daemon.port}; "
            f"SIGKILL after {at} accepted, restart on "
            + ("a new, empty data dir" if restart_dir != data_dir else "the same data dir")
            + f" and port (durability {mode})"
        )
        run = run_raw_retrying(
            daemon.port,
            reqs,
            args.concurrency,
            args.time_limit,
            on_accepted=switch.on_accepted,
            should_stop=switch.failed,
        )
        switch.join(90.0)
        if switch.error is not None:
            raise RuntimeError(f"the restart failed: {switch.error}") from switch.error
        if switch.restarted is not None:
            last = switch.restarted
        res = run.result
        log(
            f"kill: load done in {run.seconds:.1f} s: "
            f"{sum(s == 202 for s in res.status)}/{n} accepted, {run.retries} re-sends"
        )
        # Every 202: its signal id and incident id (each body opens its own incident).
        answers = [
            (i, json.loads(res.bodies[i] or b"{}")) for i in range(n) if res.status[i] == 202
        ]
        expected: dict[str, int] = {}  # incident_id -> request index
        actions: dict[str, int] = {}
        no_incident = 0
        for i, answer in answers:
            action = str(answer.get("action"))
            actions[action] = actions.get(action, 0) + 1
            if answer.get("incident_id"):
                expected.setdefault(str(answer["incident_id"]), i)
            else:
                no_incident += 1
        accepted_signals = {str(a.get("signal_id")) for _, a in answers}
        log(f"kill: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} incidents in Slack")
        t_wait = time.perf_counter()
        deadline = t_wait + args.e2e_timeout
        while True:
            posts += watch.fetch_new()
            seen = {
                inc
                for p in posts
                if not p.get("thread_ts") and (inc := _incidents_in(p, expected)) is not None
            }
            if len(seen) >= len(expected) or time.perf_counter() >= deadline:
                break
            time.sleep(0.25)
        figures["delivery_wait_s"] = round(time.perf_counter() - t_wait, 2)
    finally:
        switch.join(90.0)
        t_stop = time.perf_counter()
        restarted = switch.restarted
        if restarted is not None:
            figures["exit_code"] = restarted.proc.stop(40.0)
            figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
        code = daemon.proc.stop(40.0)  # already dead after the kill: closes its log files
        if restarted is None:
            figures["exit_code"] = code
            figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
    posts += watch.fetch_new()  # whatever the drain posted on the way out

    res = run.result
    tops: dict[str, list[float]] = {}
    thread_replies = unmatched = 0
    for post in posts:
        if post.get("thread_ts"):
            thread_replies += 1  # e.g. the update of a retried signal journalled at the kill
        elif (inc := _incidents_in(post, expected)) is None:
            unmatched += 1
        else:
            tops.setdefault(inc, []).append(float(post["received_wall"]))
    lost = sorted(set(expected) - set(tops))
    duplicated = {inc: len(w) for inc, w in tops.items() if len(w) > 1}
    final_refused: dict[str, int] = {}
    for i in range(n):
        if res.status[i] != 202:
            name = {0: "no_answer", -1: "connection_error"}.get(res.status[i], str(res.status[i]))
            final_refused[name] = final_refused.get(name, 0) + 1
    retried = [a for a in run.attempts if a > 1]
    figures.update(
        sent=sum(a > 0 for a in run.attempts),
        attempts=sum(run.attempts),
        accepted=len(answers),
        actions=actions,
        accepted_without_incident=no_incident,
        retries=run.retries,
        retried_requests=len(retried),
        max_attempts=max(run.attempts, default=0),
        connection_errors=run.connection_errors,
        connect_refused=run.connect_refused,
        answers_by_status=dict(sorted(run.answers.items())),
        refused_by_status=final_refused,
        load_seconds=round(run.seconds, 2),
        accepted_per_s=round(len(answers) / max(run.seconds, 1e-9), 1),
        timed_out=res.timed_out,
        client_cpu_us_per_request=round(res.cpu_s * 1e6 / max(sum(run.attempts), 1), 1),
    )
    figures["killed"] = switch.killed_perf is not None
    figures["restarted"] = switch.restarted is not None
    if switch.killed_perf is not None and switch.killed_wall is not None:
        t_load0 = min((t for t in res.t0 if t > 0.0), default=switch.killed_perf)
        figures["kill_at_s"] = round(switch.killed_perf - t_load0, 2)
        figures["accepted_at_kill"] = switch.accepted_at_kill
        figures["killed_exit"] = switch.old_exit
        if switch.ready_perf is not None and switch.respawn_perf is not None:
            figures["kill_to_ready_s"] = round(switch.ready_perf - switch.killed_perf, 2)
            figures["spawn_to_ready_s"] = round(switch.ready_perf - switch.respawn_perf, 2)
        if switch.first_202_after_perf is not None:
            figures["kill_to_first_202_s"] = round(
                switch.first_202_after_perf - switch.killed_perf, 2
            )
        before = [inc for inc, i in expected.items() if 0.0 < res.t1[i] <= switch.killed_perf]
        posted_before = sum(
            1 for inc in before if tops.get(inc) and min(tops[inc]) <= switch.killed_wall
        )
        figures["accepted_before_kill"] = len(before)
        figures["posted_before_kill"] = posted_before
        figures["pending_at_kill"] = len(before) - posted_before
        last_post = max((w for ws in tops.values() for w in ws), default=None)
        figures["last_post_after_kill_s"] = (
            round(last_post - switch.killed_wall, 2) if last_post is not None else None
        )
        requeued = _log_events(restart_dir / "eyetok-restart.log", "outbox_requeued")
        figures["outbox_requeued"] = sum(int(e.get("pending", 0)) for e in requeued)
        restored = _log_events(restart_dir / "eyetok-restart.log", "rehydrated_from_postgres")
        figures["rehydrated_deliveries"] = sum(int(e.get("deliveries", 0)) for e in restored)
    figures.update(
        expected_incidents=len(expected),
        delivered=len(expected) - len(lost),
        lost=len(lost),
        lost_incidents=lost[:20],
        duplicates=len(duplicated),
        duplicate_posts=sum(c - 1 for c in duplicated.values()),
        slack_posts=len(posts),
        slack_thread_replies=thread_replies,
        slack_unmatched_posts=unmatched,
    )
    try:
        journal = journalled_signal_ids(last.data_dir / "data" / "history.duckdb")
        missing = accepted_signals - journal
        if restart_dir != data_dir and dsn is not None:
            # The dead dyno's disk is gone: what every 202 promised is its incident in
            # Postgres (each request opens its own), committed before the answer.
            committed = durability.incidents_in_postgres(dsn)
            missing = {f"{i} (incident not in postgres)" for i in set(expected) - committed}
            figures["checked_in"] = "postgres incident_state"
        figures.update(
            journal_signals=len(journal),
            accepted_signal_ids=len(accepted_signals),
            accepted_without_journal=len(missing),
            accepted_without_journal_ids=sorted(missing)[:20],
            journalled_not_accepted=len(journal - accepted_signals),
        )
    except Exception as exc:
        figures["journal_error"] = f"{type(exc).__name__}: {exc}"
        figures["accepted_without_journal"] = None
    log(
        f"kill: delivered {figures['delivered']}/{len(expected)}, LOST {len(lost)}, "
        f"duplicates {len(duplicated)}, 202 without journal "
        f"{figures['accepted_without_journal']}"
    )
    return figures
