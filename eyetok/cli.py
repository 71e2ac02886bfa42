"""The ``eyetok`` command: ``run``, ``doctor``, ``verify``, ``test-alert``, ``replay``,
``check``, ``sinks``, ``suppressions``, ``incidents``, ``ack``, ``budgets``, ``review``,
``tail``, ``drill``.

The entry point is the one module of ``eyetok/`` that reaches into ``actors/`` (to start
the daemon) and ``harness/`` (to run a drill); it does so inside the command that needs it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import msgspec

from eyetok import doctor, log, onboarding, people_cli, vault
from eyetok.budgets import Window, hour_of, spend
from eyetok.clock import FixedClock, SystemClock
from eyetok.config import LOG_LEVELS, Settings, Tenant
from eyetok.errors import ConfigError, EyeTokError, MalformedPayloadError
from eyetok.messages import SevChannel, Severity, Signal
from eyetok.oncall import command as oncall_command
from eyetok.replay import Judge, NoPayloadsError, payload_files, table
from eyetok.rotation import command as rotation_command
from eyetok.sources import alertmanager, generic, probe, sentry
from eyetok.suppression import cluster_id_of, threshold
from eyetok.synthetic_alert import TEST_CHANNELS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eyetok", description="EyeTok alert router")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon (binds $PORT, default 8080)")
    run.add_argument("--host", default=os.environ.get("EYETOK_HOST", "0.0.0.0"))

    replay = commands.add_parser(
        "replay", help="replay recorded payloads (Sentry, probe, generic, Alertmanager)"
    )
    replay.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    mode = replay.add_mutually_exclusive_group(required=True)
    mode.add_argument("--explain", action="store_true", help="route in-process, send nothing")
    mode.add_argument("--url", help="post each payload, signed, to a running daemon")
    replay.add_argument(
        "--secret",
        help="the Sentry client secret to sign with (with --url; default: the tenant's "
        "from the environment, SENTRY_CLIENT_SECRET for the operator)",
    )
    replay.add_argument("--at", help="fix the wall clock (ISO-8601 with an offset)")
    replay.add_argument(
        "--tenant",
        action="append",
        default=None,
        help="the tenant (default: the operator); with --explain it may be repeated, and "
        "every payload is replayed for each tenant (a registry-wide outage)",
    )
    replay.add_argument(
        "--format",
        choices=("json", "table"),
        default="json",
        help="with --explain: JSON lines for scripts (default) or an aligned table for people",
    )
    replay.add_argument(
        "--source",
        choices=("sentry", "probe", "generic", "alertmanager"),
        default="sentry",
        help="what the payloads are (default: sentry)",
    )

    check = commands.add_parser(
        "check", help="run the payload-shape guard over every message template"
    )
    check.add_argument("--json", action="store_true", help="one JSON object per line")

    daemon_url = f"http://127.0.0.1:{os.environ.get('PORT', '8080')}"
    verify = commands.add_parser(
        "verify", help="start a sink's ownership handshake on the running daemon"
    )
    verify.add_argument("sink", help="the sink id, as in the configuration")
    verify.add_argument("--by", default=os.environ.get("USER", "operator"), help="who asks")
    verify.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    verify.add_argument(
        "--wait",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="wait this long for the handshake to pass, showing progress (default 600)",
    )
    verify.add_argument(
        "--no-wait", dest="wait", action="store_const", const=0.0, help="start it and return"
    )

    doctor = commands.add_parser(
        "doctor", help="what works with this configuration, and what unlocks the rest"
    )
    doctor.add_argument(
        "--url", help="also ask this running daemon which sinks have passed their handshake"
    )
    doctor.add_argument("--json", action="store_true", help="one JSON object per line")

    test_alert = commands.add_parser(
        "test-alert", help="post a labelled synthetic Sentry alert, signed, to the daemon"
    )
    test_alert.add_argument("--sev", choices=TEST_CHANNELS, default="SEV3")
    test_alert.add_argument("--by", default=os.environ.get("USER", "operator"), help="who sends")
    test_alert.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    test_alert.add_argument(
        "--wait",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for the delivery's outcome (needs EYETOK_ROOT_TOKEN; 0: don't)",
    )

    sinks = commands.add_parser("sinks", help="every sink's verification standing")
    sinks.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    sinks.add_argument("--json", action="store_true", help="one JSON object per line")

    suppressions = commands.add_parser(
        "suppressions", help="the suppression log (clusters); --ack records an acknowledgement"
    )
    suppressions.add_argument(
        "--url", default=daemon_url, help=f"the daemon (default {daemon_url})"
    )
    suppressions.add_argument("--json", action="store_true", help="one JSON object per line")
    suppressions.add_argument("--ack", metavar="CLUSTER", help="acknowledge this cluster's notice")
    suppressions.add_argument(
        "--by", default=os.environ.get("USER", "operator"), help="who acknowledges (with --ack)"
    )
    incidents = commands.add_parser("incidents", help="every tenant's incidents, newest first")
    incidents.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    incidents.add_argument("--json", action="store_true", help="one JSON object per line")
    incidents.add_argument(
        "--open", action="store_true", help="only those not resolved (open or acknowledged)"
    )
    incidents.add_argument("--tenant", metavar="T", help="only this tenant's")
    ack = commands.add_parser(
        "ack", help="acknowledge an incident (as the Slack button does: its escalation stops)"
    )
    ack.add_argument("incident", metavar="INCIDENT", help="the incident id (inc_...)")
    ack.add_argument("--by", required=True, metavar="NAME", help="who acknowledges")
    ack.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    ack.add_argument("--json", action="store_true", help="the incident as one JSON object")
    rotation_command.add_parser(commands, daemon_url)
    oncall_command.add_parser(commands, daemon_url)
    budgets = commands.add_parser("budgets", help="every tenant's hourly budget this hour")
    budgets.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    budgets.add_argument("--json", action="store_true", help="one JSON object per line")

    review = commands.add_parser(
        "review", help="the notification stream summarised, anomalies flagged; note a verdict"
    )
    review.add_argument("--since", default="24h", help="how far back (24h, 90m, 7d)")
    review.add_argument("--json", action="store_true", help="the whole review as one JSON")
    review.add_argument("--note", metavar="ID", help="record a verdict on anomaly ID")
    verdict = review.add_mutually_exclusive_group()
    verdict.add_argument("--benign", metavar="TEXT", help="with --note: benign, and why")
    verdict.add_argument("--escalate", metavar="TEXT", help="with --note: escalate, and why")
    review.add_argument("--by", default=os.environ.get("USER", "operator"), help="who notes")
    review.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")

    tail = commands.add_parser(
        "tail", help="pretty-print and filter EyeTok's JSON log lines from stdin"
    )
    tail.add_argument(
        "--severity",
        type=_tail_severity,
        help="critical, high ... or SEV1 ... or a log level (debug, info, warning, error)",
    )
    tail.add_argument("--tenant")
    tail.add_argument("--incident", help="an incident id")
    tail.add_argument("--actor", help="history, delivery, routines ...")
    tail.add_argument("--json", action="store_true", help="only matching JSON lines, as JSON")
    drill = commands.add_parser("drill", help="the synthetic-outage drill harness")
    drill_commands = drill.add_subparsers(dest="drill_command", required=True)
    drill_run = drill_commands.add_parser(
        "run", help="run a drill scenario and keep its receipt (exit 1 when a step fails)"
    )
    from harness.drill_options import add_arguments

    add_arguments(drill_run)
    people_cli.add_commands(commands, daemon_url)
    history = commands.add_parser("history", help="the daemon's history")
    history_commands = history.add_subparsers(dest="history_command", required=True)
    export = history_commands.add_parser(
        "export", help="a window of history as Parquet files, one per table (the daemon writes)"
    )
    export.add_argument("--since", required=True, help="YYYY-MM-DD (UTC) or an ISO instant")
    export.add_argument("--until", help="YYYY-MM-DD (UTC) or an ISO instant (default: now)")
    export.add_argument("--to", required=True, type=Path, help="the directory to write into")
    export.add_argument("--url", default=daemon_url, help=f"the daemon (default {daemon_url})")
    export.add_argument("--json", action="store_true", help="the answer as one JSON object")
    return parser


_TAIL_SEVERITIES = (
    *(s.value for s in Severity),
    *(c.value for c in SevChannel),
    *LOG_LEVELS,
)


def _tail_severity(text: str) -> str:
    if text.lower() not in {v.lower() for v in _TAIL_SEVERITIES}:
        choices = ", ".join(dict.fromkeys(_TAIL_SEVERITIES))
        raise argparse.ArgumentTypeError(f"{text!r} is none of: {choices}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds cannot be negative")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tail":  # a pipe's reader: it needs no configuration
        return _tail(args)
    try:
        loaded = vault.load()  # the vault's credentials over the environment's
    except ConfigError as exc:
        print(
            json.dumps(
                {"event": "config_invalid", "field": exc.field, "error": str(exc)},
                separators=(",", ":"),
            )
        )
        return 2
    settings = loaded.settings
    log.configure(settings.log_level)
    try:
        return _dispatch(settings, args, credentials=vault.origins_line(loaded))
    except KeyboardInterrupt:
        print(f"eyetok {args.command}: interrupted", file=sys.stderr)
        return 130


def _dispatch(
    settings: Settings, args: argparse.Namespace, *, credentials: dict[str, object] | None = None
) -> int:
    if args.command == "run":
        return _run(settings, args.host, credentials or {})
    if args.command == "replay":
        return _replay(settings, args)
    if args.command == "check":
        return _check(settings, as_json=args.json)
    if args.command == "doctor":
        return onboarding.doctor_command(settings, url=args.url, as_json=args.json)
    if args.command == "verify":
        return onboarding.verify_command(
            settings, sink_id=args.sink, by=args.by, url=args.url, wait_s=args.wait
        )
    if args.command == "test-alert":
        return onboarding.send_test_alert(
            settings, sev=args.sev, by=args.by, url=args.url, wait_s=args.wait
        )
    if args.command == "sinks":
        return _operator_api(settings, args)
    if args.command in ("suppressions", "budgets"):
        return _clusters_and_budgets(settings, args)
    if args.command in ("incidents", "ack"):
        return _incidents(settings, args)
    if args.command == "review":
        return _review(settings, args)
    if args.command in ("rotate", "oncall"):
        try:
            if args.command == "oncall":
                return oncall_command.run(settings, args, _ask_daemon)
            return rotation_command.run(settings, args, _ask_daemon, _say_error)
        except _ApiRefused as refused:
            return refused.status
    if args.command in ("role", "changes"):
        try:
            people_cli.run(args, partial(_ask_daemon, settings))
        except _ApiRefused as refused:
            return refused.status
        return 0
    if args.command == "history":
        return _export_history(settings, args)
    if args.command == "drill":
        from harness.run import main as drill_main

        return drill_main(args)
    return 2


class _ApiRefused(Exception):
    """An operator command could not get an answer; ``status`` is its exit status."""

    def __init__(self, status: int) -> None:
        self.status = status


def _say_error(text: str, *, as_json: bool) -> None:
    """An operator command's error: one readable line on stderr, or one JSON object on
    stdout with ``--json``."""
    if as_json:
        print(json.dumps({"error": text}))
    else:
        print(f"eyetok: {text}", file=sys.stderr)


def _ask_daemon(
    settings: Settings,
    url: str,
    path: str,
    *,
    as_json: bool,
    expect: str,
    body: object = None,
    params: dict[str, str] | None = None,
    timeout: float = 30.0,
    token: str | None = None,
) -> dict[str, Any]:
    """One call on the running daemon's operator API (root token from the environment):
    its JSON answer, which must be an object holding ``expect`` when the
    status is 200. Says what went wrong in one line and raises :class:`_ApiRefused` when
    there is no answer to show, including a non-200 answer (its ``error`` is said)."""
    import httpx

    # the person's own token (EYETOK_TOKEN: every command acts as them), else the root token
    token = token or people_cli.person_token() or settings.root_token
    if not token:
        _say_error("EYETOK_ROOT_TOKEN is not set (the daemon's root token)", as_json=as_json)
        raise _ApiRefused(2)
    headers = {"authorization": f"Bearer {token}"}
    base = url.rstrip("/")
    try:
        if body is None:
            response = httpx.get(base + path, params=params, headers=headers, timeout=timeout)
        else:
            response = httpx.post(base + path, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        _say_error(f"cannot reach EyeTok at {base}: {exc}", as_json=as_json)
        raise _ApiRefused(1) from exc
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or (response.status_code == 200 and expect not in answer):
        _say_error(
            f"{base}{path} answered HTTP {response.status_code}, not as EyeTok does: "
            "is --url pointing at EyeTok?",
            as_json=as_json,
        )
        raise _ApiRefused(1)
    if response.status_code != 200:
        why = answer.get("error") or answer.get("message") or "no reason given"
        _say_error(f"HTTP {response.status_code} from {path}: {why}", as_json=as_json)
        raise _ApiRefused(1)
    return answer


def _review(settings: Settings, args: argparse.Namespace) -> int:
    """``review``: the daemon computes the review (it holds the history); this asks it."""
    verdict = "benign" if args.benign is not None else "escalate"
    text = args.benign if args.benign is not None else args.escalate
    if (args.note is None) != (text is None):
        _say_error("--note ID goes with --benign TEXT or --escalate TEXT", as_json=args.json)
        return 2
    try:
        if args.note is not None:
            answer = _ask_daemon(
                settings,
                args.url,
                f"/api/v1/review/anomalies/{args.note}/note",
                as_json=args.json,
                expect="message",
                body={"verdict": verdict, "note": text, "by": args.by},
                timeout=60.0,
            )
        else:
            answer = _ask_daemon(
                settings,
                args.url,
                "/api/v1/review",
                as_json=args.json,
                expect="anomalies",
                params={"since": args.since},
                timeout=60.0,
            )
    except _ApiRefused as refused:
        return refused.status
    if args.json:
        print(json.dumps(answer))
    elif args.note is not None:
        print(answer["message"])
    else:
        for line in _review_lines(answer):
            print(line)
    return 0


def _export_history(settings: Settings, args: argparse.Namespace) -> int:
    """``history export``: the daemon holds the history, so it writes the files."""
    body = {"since": args.since, "until": args.until, "to": str(args.to.resolve())}
    try:
        answer = _ask_daemon(
            settings,
            args.url,
            "/api/v1/history/export",
            as_json=args.json,
            expect="files",
            body=body,
            timeout=3600.0,
        )
    except _ApiRefused as refused:
        return refused.status
    if args.json:
        print(json.dumps(answer))
        return 0
    print(f"history from {answer['since']} to {answer['until']}:")
    for exported in answer["files"]:
        print(f"  {exported['table']}: {exported['rows']} rows -> {exported['path']}")
    return 0


def _review_lines(review: dict[str, Any]) -> list[str]:
    stream: list[dict[str, Any]] = review.get("stream") or []
    anomalies: list[dict[str, Any]] = review.get("anomalies") or []
    lines = [
        f"Review {review['since']} to {review['until']}: {review['notifications']} notifications"
    ]
    if stream:
        lines.append(f"{'tenant':<20} {'sink':<16} {'severity':<9} {'outcome':<19} {'count':>6}")
        for row in stream:
            lines.append(
                f"{row['tenant']:<20} {row['sink_id']:<16} {row['severity']:<9} "
                f"{row['outcome']:<19} {row['count']:>6}"
            )
    lines.append(f"Anomalies: {len(anomalies)}")
    for a in anomalies:
        verdict = f" [{a['verdict']} by {a['noted_by']}: {a['note']}]" if a.get("verdict") else ""
        lines.append(f"{a['anomaly_id']}  {a['kind']:<11} {a['tenant']:<16} {a['detail']}{verdict}")
    return lines


def _tail(args: argparse.Namespace) -> int:
    import io

    from eyetok.tail import Filters, run

    filters = Filters(
        severity=args.severity, tenant=args.tenant, incident=args.incident, actor=args.actor
    )
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    try:
        run(stdin, sys.stdout, filters, colour=colour, as_json=args.json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def _operator_api(settings: Settings, args: argparse.Namespace) -> int:
    """``sinks``: every configured sink's verification standing on the running daemon."""
    try:
        answer = _ask_daemon(settings, args.url, "/api/v1/sinks", as_json=args.json, expect="sinks")
    except _ApiRefused as refused:
        return refused.status
    rows = answer["sinks"]
    if not rows and not args.json:
        print("No sinks are configured.")
    for row in rows:
        if args.json:
            print(json.dumps(row))
        else:
            standing = "deliverable" if row["deliverable"] else f"refused ({row['why']})"
            held = row.get("held_unverified") or 0
            if held:
                standing += f"; {held} held awaiting verification since {row['held_since']}"
            print(f"{row['sink_id']:<20} {row['sink_type']:<10} {row['status']:<10} {standing}")
    return 0


def _clusters_and_budgets(settings: Settings, args: argparse.Namespace) -> int:
    """``suppressions`` (and ``--ack``) and ``budgets``: the operator's API, as text."""
    try:
        if args.command == "suppressions" and args.ack:
            path, body = f"/api/v1/suppressions/{args.ack}/ack", {"by": args.by}
            answer = _ask_daemon(
                settings, args.url, path, as_json=args.json, expect="suppression", body=body
            )
        else:
            answer = _ask_daemon(
                settings,
                args.url,
                f"/api/v1/{args.command}",
                as_json=args.json,
                expect=args.command,
            )
    except _ApiRefused as refused:
        return refused.status
    rows = [answer["suppression"]] if "suppression" in answer else answer[args.command]
    if not rows and not args.json:
        print(
            "No tenant has been paged this hour."
            if args.command == "budgets"
            else "No suppression clusters: no registry-wide outage has been collapsed."
        )
    for row in rows:
        if args.json:
            print(json.dumps(row))
        elif args.command == "budgets":
            cap = "uncapped" if row["cap"] is None else f"{row['admitted']}/{row['cap']}"
            capped = "CAPPED" if row["capped"] else ""
            print(
                f"{row['tenant']:<24} {row['tier']:<10} {cap:>11}  held {row['held']:<6} {capped}"
            )
        else:
            state = f"cleared {row['cleared_at']}" if row["cleared_at"] else "ACTIVE"
            acked = f"acked by {row['acked_by']}" if row["acked_at"] else "NOT ACKNOWLEDGED"
            print(
                f"{row['cluster_id']}  {row['error_kind']} AS{row['asn']} {row['registry']}: "
                f"{row['tenant_count']} tenants, {row['withheld']} withheld; fired "
                f"{row['fired_at']}, {state}; {acked}"
            )
    return 0


def _incident_line(row: dict[str, Any]) -> str:
    state = str(row["status"]).upper()
    if row.get("acknowledged_by"):
        state += f" by {row['acknowledged_by']} at {row['acknowledged_at']}"
    steps = [
        f"{what} {row[field]}"
        for what, field in (("re-notified", "renotified_at"), ("escalated", "escalated_at"))
        if row.get(field)
    ]
    return (
        f"{row['incident_id']}  {row['tenant']:<16} {row['sev_channel'] or 'audit':<6} "
        f"{state}  opened {row['opened_at']}, {row['event_count']} event(s): {row['title']}"
        + (f" ({'; '.join(steps)})" if steps else "")
    )


def _incidents(settings: Settings, args: argparse.Namespace) -> int:
    """``incidents`` and ``ack``: the operator's API (``ack`` is the Slack button's path)."""
    try:
        if args.command == "ack":
            by = args.by.strip()
            if not by:
                _say_error("--by: say who acknowledges", as_json=args.json)
                return 2
            answer = _ask_daemon(
                settings,
                args.url,
                f"/api/v1/incidents/{args.incident}/ack",
                as_json=args.json,
                expect="incident",
                body={"by": by},
            )
        else:
            params = {"open": "1"} if args.open else {}
            if args.tenant:
                params["tenant"] = args.tenant
            answer = _ask_daemon(
                settings,
                args.url,
                "/api/v1/incidents",
                as_json=args.json,
                expect="incidents",
                params=params,
            )
    except _ApiRefused as refused:
        return refused.status
    if args.command == "ack":
        row = answer["incident"]
        if args.json:
            print(json.dumps(answer))
        elif answer.get("acknowledged_now"):
            print(f"Acknowledged {row['incident_id']} as {row['acknowledged_by']}.")
        else:
            print(
                f"{row['incident_id']} was acknowledged already, by {row['acknowledged_by']} "
                f"at {row['acknowledged_at']}."
            )
        return 0
    rows = answer["incidents"]
    if not rows and not args.json:
        print("No open incidents." if args.open else "No incidents.")
    for row in rows:
        print(json.dumps(row) if args.json else _incident_line(row))
    return 0


def _run(settings: Settings, host: str, credentials: dict[str, object]) -> int:
    import trio

    from eyetok.gc_threshold import space_out_collections
    from eyetok.malloc_arenas import (
        cap_malloc_arenas,
        fix_malloc_thresholds,
        log_duckdb_allocator,
        return_duckdb_free_pages,
    )

    allocator = return_duckdb_free_pages()  # before actors.daemon imports duckdb
    from actors.daemon import Daemon
    from actors.supervisor import CrashLoopError

    problem = doctor.find_data_dir_problem(settings.data_dir)
    if problem is not None:
        return _startup_failed(problem, "set EYETOK_DATA_DIR to a directory this user can write")
    # where each credential came from (names only): the vault, the environment, or unset
    log.get("vault").info("credentials_loaded", why="start", **credentials)
    if allocator is not None:
        log_duckdb_allocator(allocator)
    cap_malloc_arenas()
    fix_malloc_thresholds()
    space_out_collections()
    daemon = Daemon(settings, SystemClock(), host=host)
    failed = 0
    # the loop's log lines go out once a scheduler pass, in one write (eyetok/log.py)
    lines = cast("trio.abc.Instrument", log.LINES)  # duck-typed, so log.py needs no trio
    try:
        trio.run(daemon.run, instruments=[lines])
    except* CrashLoopError as group:
        log.get("supervisor").error("supervisor_gave_up", reason=str(group.exceptions[0]))
        failed = 1
    except* (EyeTokError, OSError) as group:
        exc = _first_leaf(group)
        if daemon.bound_port is None:  # never got as far as serving: a start-up failure
            failed = _startup_failed(*_why_not_started(exc, host, settings.port))
        else:
            log.get("daemon").error("eyetok_failed", error=f"{type(exc).__name__}: {exc}")
            failed = 1
    except* KeyboardInterrupt:
        pass
    finally:
        log.LINES.flush()  # after_run wrote them, unless trio itself failed before it
    return failed


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    exc: BaseException = group.exceptions[0]
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, Exception)
    return exc


def _why_not_started(exc: Exception, host: str, port: int) -> tuple[str, str]:
    """What stopped the start, in one line, and what to do about it."""
    if isinstance(exc, ConfigError):  # found only at start-up (e.g. DATABASE_URL's role)
        return (exc.problem, f"correct {exc.field} and start again")
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use by another process",
            "stop that process or set PORT to a free port",
        )
    if isinstance(exc, OSError) and exc.errno == errno.EACCES and port < 1024:
        return (f"port {port} needs privileges", "set PORT to 1024 or above")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return (f"{exc.strerror or exc}{where}", "check EYETOK_DATA_DIR and the user's rights")
    return (f"{type(exc).__name__}: {exc}", "see eyetok doctor")


def _startup_failed(reason: str, fix: str) -> int:
    """One line (like ``config_invalid``) and exit status 2."""
    log.get("daemon").error("startup_failed", reason=reason, fix=fix)
    return 2


def _parse_at(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SystemExit(f"eyetok replay: --at {text!r} is not ISO-8601") from exc
    if at.tzinfo is None:
        raise SystemExit(f"eyetok replay: --at {text!r} needs an offset (e.g. -05:00 or Z)")
    return at


def _headers_for(path: Path) -> dict[str, str]:
    sibling = path.with_name(path.name.removesuffix(".json") + ".headers.json")
    if not sibling.exists():
        return {}
    raw = json.loads(sibling.read_text(encoding="utf-8"))
    return {str(k).lower(): str(v) for k, v in raw.items()}


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    tenant_ids: list[str] = args.tenant or [settings.operator_tenant]
    for tenant_id in tenant_ids:
        if tenant_id not in settings.tenants:
            print(json.dumps({"error": f"unknown tenant {tenant_id!r}"}))
            return 2
    if args.url:
        if len(tenant_ids) > 1 or args.source != "sentry":
            print(json.dumps({"error": "--url replays Sentry payloads for one tenant"}))
            return 2
        return _replay_to_url(args, tenant_ids[0], settings.tenants[tenant_ids[0]])
    clock = FixedClock(_parse_at(args.at)) if args.at else SystemClock()
    try:
        files = payload_files(args.paths)
    except NoPayloadsError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    explained = _Explanation(settings)
    failed = 0
    for tenant_id in tenant_ids:
        judge = Judge(settings, tenant_id)
        for n, path in enumerate(files):
            try:
                signals = _normalise(settings, args.source, path, tenant_id, n, clock.now())
            except (OSError, MalformedPayloadError, json.JSONDecodeError) as exc:
                failed += 1
                explained.failed({"file": str(path), "tenant": tenant_id, "error": str(exc)})
                continue
            for signal in signals:
                line, sends = judge.line(signal, str(path))
                explained.add(line, signal, sends=sends)
    if args.format == "table":
        for row in table(explained.lines()):
            print(row)
    else:
        for line in explained.lines():
            print(msgspec.json.encode(line).decode())
    return 1 if failed else 0


def _normalise(
    settings: Settings, source: str, path: Path, tenant_id: str, n: int, at: datetime
) -> list[Signal]:
    body = path.read_bytes()
    ids = (f"replay-{tenant_id}-{n}-{i}" for i in range(1_000_000))
    match source:
        case "probe":
            return probe.normalise(body, tenant=tenant_id, received_at=at, new_id=ids.__next__)
        case "generic":
            return generic.normalise(
                body,
                tenant=tenant_id,
                received_at=at,
                new_id=ids.__next__,
                recognisers=settings.recognisers,
            )
        case "alertmanager":
            return alertmanager.normalise(
                body,
                tenant=tenant_id,
                received_at=at,
                new_id=ids.__next__,
                recognisers=settings.recognisers,
            )
        case _:
            return [
                sentry.normalise(
                    body,
                    _headers_for(path).get("sentry-hook-resource"),
                    tenant=tenant_id,
                    signal_id=f"replay-{tenant_id}-{n}",
                    received_at=at,
                    recognisers=settings.recognisers,
                )
            ]


class _Explanation:
    """What the budgets and the suppression window would do to the replayed signals, by
    the daemon's own rules (eyetok.budgets, eyetok.suppression). Every payload is taken
    as arriving inside one hold window, at the replay's wall clock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.windows: dict[str, Window] = {}
        self.pending: list[tuple[dict[str, Any], Signal | None, bool]] = []
        self.tenants_by_key: dict[str, set[str]] = {}
        self.first_at: dict[str, datetime] = {}

    def add(self, line: dict[str, Any], signal: Signal, *, sends: bool) -> None:
        key = signal.cluster_key if sends and self.settings.suppression.enabled else None
        if key is not None:
            self.tenants_by_key.setdefault(key, set()).add(signal.tenant)
            self.first_at.setdefault(key, signal.received_at)
        self.pending.append((line, signal, sends))

    def failed(self, line: dict[str, Any]) -> None:
        self.pending.append((line, None, False))

    def lines(self) -> list[dict[str, Any]]:
        options = self.settings.suppression
        needed = threshold(len(self.settings.tenants), options)
        out = []
        for line, signal, sends in self.pending:
            if signal is None:
                out.append(line)
                continue
            key = signal.cluster_key if sends and options.enabled else None
            suppressed = False
            if key is not None:
                tenants = len(self.tenants_by_key[key])
                suppressed = tenants >= needed
                fired_at = self.first_at[key] + timedelta(seconds=options.hold_s)
                line["suppression"] = {
                    "cluster_key": key,
                    "tenants": tenants,
                    "needs_tenants": needed,
                    "hold_s": options.hold_s,
                    "state": "withheld" if suppressed else "released after the hold",
                    "cluster_id": cluster_id_of(key, fired_at) if suppressed else None,
                }
            if sends and not suppressed:
                line["budget"] = self._budget(signal)
            out.append(line)
        return out

    def _budget(self, signal: Signal) -> dict[str, Any]:
        tenant = self.settings.tenants[signal.tenant]
        if not self.settings.budgets.enabled:
            return {"tier": tenant.tier, "cap": tenant.hourly_budget, "state": "budgets off"}
        start = hour_of(signal.received_at)
        window = self.windows.get(signal.tenant)
        if window is None or window.start != start:
            window = self.windows[signal.tenant] = Window(start=start)
        spent = spend(window, signal.signal_id, tenant.hourly_budget)
        return {
            "tier": tenant.tier,
            "cap": tenant.hourly_budget,
            "window_start": start.isoformat(),
            "used": len(window.admitted),
            "state": spent.value,
        }


def _replay_to_url(args: argparse.Namespace, tenant_id: str, tenant: Tenant) -> int:
    import httpx

    secret = args.secret or tenant.sentry_secret
    if not secret:
        print(
            json.dumps(
                {
                    "error": f"--url needs the tenant's Sentry client secret: set "
                    f"{tenant.sentry_secret_env} or pass --secret"
                }
            )
        )
        return 2
    try:
        files = payload_files(args.paths)
    except NoPayloadsError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    failed = 0
    url = args.url.rstrip("/") + f"/hooks/sentry/{tenant_id}"
    with httpx.Client(timeout=15.0) as client:
        for path in files:
            try:
                body = path.read_bytes()
                headers = {"content-type": "application/json"}
                resource = _headers_for(path).get("sentry-hook-resource")
                if resource:
                    headers["sentry-hook-resource"] = resource
                headers["sentry-hook-signature"] = sentry.sign(body, secret)
                response = client.post(url, content=body, headers=headers)
            except (OSError, httpx.HTTPError, json.JSONDecodeError) as exc:
                failed += 1
                print(json.dumps({"file": str(path), "error": str(exc)}))
                continue
            ok = response.status_code == 202
            failed += 0 if ok else 1
            try:
                answer = response.json()
            except ValueError:
                answer = response.text
            print(json.dumps({"file": str(path), "status": response.status_code, "answer": answer}))
    return 1 if failed else 0


def _check(settings: Settings, *, as_json: bool) -> int:
    """The payload-shape guard over every template every sink can send (design section
    5): one line per template, a summary, exit 1 if any is refused."""
    from actors.sinks.templates import check_case, every_template, guard_tenants
    from eyetok.freescout import label_cases

    operator = settings.operator_tenant
    tenants = guard_tenants(settings.tenants, operator)
    total = failed = 0
    for case in every_template(operator_tenant=operator, slack_options=settings.slack):
        failure = check_case(case, tenants=tenants, operator_tenant=operator)
        total += 1
        failed += failure is not None
        if as_json:
            line: dict[str, object] = {"template": case.name, "ok": failure is None}
            if failure is not None:
                line |= {"rule": failure.rule, "detail": failure.detail}
            print(json.dumps(line))
        elif failure is None:
            print(f"ok {case.name}")
        else:
            print(f"FAIL {case.name}: {failure.rule}: {failure.detail}")
    for name, problems in label_cases(operator):  # the ticket trail's tags (FreeScout)
        total += 1
        failed += bool(problems)
        if as_json:
            label: dict[str, object] = {"template": name, "ok": not problems}
            print(
                json.dumps(
                    label | ({"rule": "labels", "detail": "; ".join(problems)} if problems else {})
                )
            )
        else:
            print(f"FAIL {name}: labels: {'; '.join(problems)}" if problems else f"ok {name}")
    if as_json:
        print(json.dumps({"templates": total, "failed": failed}))
    else:
        print(f"{total} templates, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
