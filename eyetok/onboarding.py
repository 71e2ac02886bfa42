"""The first-run commands: ``doctor``, ``verify`` (guided, waiting), ``test-alert``.

Each talks to a running daemon only through its HTTP surfaces (the operator API with the
root token, ``/hooks/sentry`` signed with the operator's Sentry secret), prints what to do
next in words, and exits 0 only when the thing asked for is done.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import httpx
import trio

from eyetok import doctor
from eyetok.clock import Clock, SystemClock
from eyetok.config import Settings, sink_type_of
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sources import sentry
from eyetok.synthetic_alert import LABEL, alert_body, expected_channels

# The bot scopes the Slack app needs (deploy/slack-app-manifest.yaml lists the same):
# post, post in a public channel without being invited, read the DM the nonce comes in;
# then read channel history and threads and resolve channel names (public and private),
# which is how a post whose answer never came is looked for before posting again; and
# hear a mention of the app in an incident's thread (its thread verbs, the message.channels
# and message.groups events need the two history scopes above).
SLACK_BOT_SCOPES = (
    "chat:write",
    "chat:write.public",
    "im:history",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "app_mentions:read",
    "commands",  # the /eyetok slash command (hat switches, eyetok/http/slack_commands.py)
    "users:read",  # who wrote in a thread, by name (users.info, actors/sinks/slack/names.py)
)
SLACK_BOT_EVENTS = ("message.im", "message.channels", "message.groups", "app_mention")

Say = Callable[[str], None]


class DaemonRefused(Exception):
    """The daemon could not be asked, or did not answer as EyeTok: the message says why
    in one line."""


def _say(line: str) -> None:
    print(line, flush=True)


def _error(text: str, *, as_json: bool) -> None:
    """One readable line on stderr (one JSON object on stdout with ``--json``)."""
    if as_json:
        print(json.dumps({"error": text}), flush=True)
    else:
        print(f"eyetok: {text}", file=sys.stderr, flush=True)


async def ask(
    client: httpx.AsyncClient, method: str, path: str, *, body: object = None
) -> tuple[int, dict[str, Any]]:
    """One call on the operator API: its status and JSON object. Raises
    :class:`DaemonRefused` when the URL is not an EyeTok answering JSON."""
    try:
        response = await client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        raise DaemonRefused(f"cannot reach EyeTok at {client.base_url}: {exc}") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise DaemonRefused(
            f"{client.base_url}{path} answered HTTP {response.status_code} with something "
            "that is not EyeTok's JSON: is --url pointing at EyeTok?"
        )
    return response.status_code, answer


def _client(settings: Settings, url: str) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {settings.root_token}"} if settings.root_token else {}
    return httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=15.0)


# --- doctor -------------------------------------------------------------------------------


def doctor_command(settings: Settings, *, url: str | None, as_json: bool) -> int:
    """Print every capability's check; 0 when Sentry -> Slack can work, else 1."""
    verifications = None
    if url is not None:
        try:
            verifications = trio.run(_verifications, settings, url)
        except DaemonRefused as exc:
            _error(str(exc), as_json=as_json)
            return 2
    checks = doctor.diagnose(
        settings,
        verifications=verifications,
        data_dir_problem=doctor.find_data_dir_problem(settings.data_dir),
        postgres_problem=find_postgres_problem(settings.database_url)
        if settings.database_url
        else None,
    )
    if as_json:
        for check in checks:
            print(json.dumps({"check": check.capability, **_check_fields(check)}))
        print(json.dumps({"main_job_ready": doctor.main_job_ready(checks)}))
    else:
        for line in doctor.lines(checks):
            print(line)
    return 0 if doctor.main_job_ready(checks) else 1


def find_postgres_problem(dsn: str) -> str | None:
    """Why the mirror could not use ``dsn`` (None: it could): connect within 5 s, and the
    role must not be a superuser nor BYPASSRLS (row-level security would not bind it)."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5) as con:
            row = con.execute(
                "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                "WHERE rolname = current_user"
            ).fetchone()
    except psycopg.Error as exc:
        return f"cannot connect: {' '.join(str(exc).split())}"
    if row is not None and (row[1] or row[2]):
        return (
            f"role {row[0]!r} is a superuser or BYPASSRLS: row-level security would not "
            "keep tenants apart"
        )
    return None


def _check_fields(check: doctor.Check) -> dict[str, object]:
    return {
        "ready": check.ready if check.known else None,
        "essential": check.essential,
        "detail": check.detail,
        "unlock": check.unlock,
    }


async def _verifications(settings: Settings, url: str) -> dict[str, str | None]:
    if not settings.root_token:
        raise DaemonRefused("--url needs EYETOK_ROOT_TOKEN (the daemon's root token)")
    async with _client(settings, url) as client:
        status, answer = await ask(client, "GET", "/api/v1/sinks")
    if status != 200 or not isinstance(answer.get("sinks"), list):
        raise DaemonRefused(f"GET /api/v1/sinks answered {status}: {answer.get('error')}")
    return {row["sink_id"]: (None if row["deliverable"] else row["why"]) for row in answer["sinks"]}


# --- verify -------------------------------------------------------------------------------


def slack_steps(settings: Settings, sink_id: str, nonce: str) -> list[str]:
    """What the operator does to pass a Slack sink's handshake, in words."""
    events_url = f"{settings.public_url}/slack/events"
    config = settings.sinks[sink_id]
    token_env = config.token_env if isinstance(config, SlackSinkConfig) else "its token"
    return [
        f"Started the ownership handshake of Slack sink {sink_id!r}. Three steps:",
        "  1. In Slack, open a direct message with the EyeTok app (Apps > EyeTok > Messages)",
        "     and send it this nonce (in a channel it is refused and burnt):",
        f"       {nonce}",
        f"  2. The app's Event Subscriptions Request URL must be {events_url}",
        f"     (bot events: {', '.join(SLACK_BOT_EVENTS)}); deploy/slack-app-manifest.yaml has it.",
        "  3. The app needs the bot scopes (deploy/slack-app-manifest.yaml lists them):",
        f"       {', '.join(SLACK_BOT_SCOPES)}",
        f"     Its Bot User OAuth Token goes in {token_env}, its Signing Secret in",
        "     SLACK_SIGNING_SECRET.",
    ]


def verify_command(
    settings: Settings,
    *,
    sink_id: str,
    by: str,
    url: str,
    wait_s: float,
    every_s: float = 2.0,
    say: Say = _say,
) -> int:
    """Start ``sink_id``'s handshake, say what to do, and (``wait_s`` > 0) wait with a
    progress line until it is live (0), failed (1) or the wait runs out (1)."""
    if not settings.root_token:
        _error(
            "EYETOK_ROOT_TOKEN is not set: the verification is started on the running "
            "daemon's operator API, which needs its root token",
            as_json=False,
        )
        return 2
    try:
        return trio.run(_verify, settings, sink_id, by, url, wait_s, every_s, say, SystemClock())
    except DaemonRefused as exc:
        _error(str(exc), as_json=False)
        return 1
    except KeyboardInterrupt:
        say(f"Stopped waiting; the handshake of {sink_id!r} stays open on the daemon.")
        return 130


async def _verify(
    settings: Settings,
    sink_id: str,
    by: str,
    url: str,
    wait_s: float,
    every_s: float,
    say: Say,
    clock: Clock,
) -> int:
    async with _client(settings, url) as client:
        path = f"/api/v1/sinks/{sink_id}/verification"
        status, answer = await ask(client, "POST", path, body={"requested_by": by})
        if status != 200:
            _error(f"{sink_id}: {answer.get('message') or answer.get('error')}", as_json=False)
            return 1
        config = settings.sinks.get(sink_id)
        if config is not None and sink_type_of(config) == "slack" and answer.get("nonce"):
            for line in slack_steps(settings, sink_id, answer["nonce"]):
                say(line)
        else:
            say(str(answer.get("message")))
        if wait_s <= 0:
            return 0
        started = clock.now()
        say(f"Waiting up to {wait_s:.0f} s for the handshake to pass (Ctrl-C stops waiting).")
        last_said = 0.0
        while True:
            elapsed = (clock.now() - started).total_seconds()
            status, listed = await ask(client, "GET", "/api/v1/sinks")
            row = next((r for r in listed.get("sinks", []) if r["sink_id"] == sink_id), None)
            if row is not None and row["deliverable"]:
                until = row.get("expires_at") or "its cadence"
                say(f"{sink_id} is live: deliverable until {until} (after {elapsed:.0f} s).")
                return 0
            if row is not None and row["status"] == "failed":
                say(f"{sink_id}: the handshake failed: {row.get('detail') or row.get('why')}")
                return 1
            if elapsed >= wait_s:
                say(
                    f"{sink_id}: still {row['status'] if row else 'unknown'} after "
                    f"{wait_s:.0f} s: stopped waiting. The handshake stays open on the daemon "
                    "(eyetok sinks shows when it passes); run this command again to start over."
                )
                return 1
            if elapsed - last_said >= 15 or last_said == 0.0:
                state = row["status"] if row else "not listed yet"
                say(f"  ... {sink_id} is {state} ({elapsed:.0f} s of {wait_s:.0f} s)")
                last_said = max(elapsed, 0.001)
            await trio.sleep(every_s)


# --- test-alert ---------------------------------------------------------------------------


def send_test_alert(
    settings: Settings, *, sev: str, by: str, url: str, wait_s: float, say: Say = _say
) -> int:
    """Post one labelled synthetic Sentry alert, signed, to the running daemon's
    ``/hooks/sentry``; with the root token, wait until its delivery has an outcome."""
    secret = settings.tenants[settings.operator_tenant].sentry_secret
    env_name = settings.tenants[settings.operator_tenant].sentry_secret_env
    if not secret:
        _error(f"{env_name} is not set: the test alert is signed as Sentry signs", as_json=False)
        return 2
    try:
        return trio.run(_test_alert, settings, sev, by, url, secret, wait_s, say, SystemClock())
    except DaemonRefused as exc:
        _error(str(exc), as_json=False)
        return 1
    except KeyboardInterrupt:
        say("Stopped waiting; the test alert was accepted and goes on without this command.")
        return 130


async def _test_alert(
    settings: Settings,
    sev: str,
    by: str,
    url: str,
    secret: str,
    wait_s: float,
    say: Say,
    clock: Clock,
) -> int:
    sent_at = clock.now()
    body = alert_body(sev, by=by, at=sent_at)
    headers = {
        "content-type": "application/json",
        "sentry-hook-resource": "event_alert",
        "sentry-hook-signature": sentry.sign(body, secret),
    }
    async with _client(settings, url) as client:
        try:
            response = await client.post("/hooks/sentry", content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DaemonRefused(f"cannot reach EyeTok at {client.base_url}: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text[:200]}
        if response.status_code != 202:
            why = answer.get("error") if isinstance(answer, dict) else answer
            _error(f"POST /hooks/sentry answered {response.status_code}: {why}", as_json=False)
            return 1
        channel = answer.get("sev_channel")
        say(
            f"{LABEL} accepted: incident {answer['incident_id']}, {answer['severity']}, "
            f"{channel} by rule {answer['rule']}."
        )
        if channel not in {c.value for c in expected_channels(sev)}:
            say(f"It was routed to {channel}, not {sev}: eyetok replay --explain shows why.")
        if wait_s <= 0 or not settings.root_token:
            return 0
        return await _await_delivery(client, settings, answer["incident_id"], wait_s, say, clock)


async def _await_delivery(
    client: httpx.AsyncClient,
    settings: Settings,
    incident_id: str,
    wait_s: float,
    say: Say,
    clock: Clock,
) -> int:
    started = clock.now()
    while (clock.now() - started).total_seconds() < wait_s:
        rows = await _notifications(client, settings.operator_tenant)
        rows = [r for r in rows if r.get("incident_id") == incident_id]
        done = [r for r in rows if r.get("status") not in ("pending", None)]
        if rows and len(done) == len(rows):
            failed = 0
            for row in done:
                where = f"{row['sink_id']}:{row['target']}"
                if row["status"] == "delivered":
                    say(f"Delivered to {where}.")
                    continue
                failed += 1
                say(f"Not delivered to {where}: {row['status']} ({row.get('detail') or ''}).")
                if row["status"] in ("refused_unverified", "held_unverified"):
                    say(f"  -> python3 -m uv run eyetok verify {row['sink_id']}")
            return 1 if failed else 0
        held = await _held_sinks(client, {str(r["sink_id"]) for r in rows if r not in done})
        if held:
            for sink_id in sorted(held):
                say(
                    f"Held for {sink_id}: the sink has not passed its ownership handshake; "
                    "the alert goes out, marked late, once it does."
                )
                say(f"  -> python3 -m uv run eyetok verify {sink_id}")
            return 1
        await trio.sleep(0.5)
    say(f"No delivery outcome within {wait_s:.0f} s: eyetok doctor --url {client.base_url}")
    return 1


async def _held_sinks(client: httpx.AsyncClient, sink_ids: set[str]) -> set[str]:
    """Which of ``sink_ids`` hold deliveries until their handshake passes."""
    if not sink_ids:
        return set()
    try:
        answer = (await client.get("/api/v1/sinks")).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DaemonRefused(f"cannot read the sinks from {client.base_url}: {exc}") from exc
    rows: list[dict[str, Any]] = answer.get("sinks", []) if isinstance(answer, dict) else []
    return {
        str(row["sink_id"])
        for row in rows
        if row.get("sink_id") in sink_ids and row.get("held_unverified")
    }


async def _notifications(client: httpx.AsyncClient, tenant: str) -> list[dict[str, Any]]:
    try:
        response = await client.get("/api/v1/notifications", params={"tenant": tenant})
        answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DaemonRefused(f"cannot read the outcome from {client.base_url}: {exc}") from exc
    rows: list[dict[str, Any]] = answer.get("notifications", []) if isinstance(answer, dict) else []
    return rows
