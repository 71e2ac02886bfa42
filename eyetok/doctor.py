"""What EyeTok can do with the configuration it has, and what unlocks the rest.

:func:`diagnose` is pure over the :class:`~eyetok.config.Settings` (plus, when the caller
has them, the running daemon's verification standings and whether the data directory is
writable): one :class:`Check` per capability, each either ready or naming the exact
variable or step that makes it ready. ``eyetok doctor`` prints them; the daemon logs them
at start as one ``setup_status`` line and shows them on ``/readyz``.

The main job is Sentry -> Slack for the operator tenant: its Sentry secret, the Slack
sinks its policy routes to (credentials and, when known, a passed handshake), the operator
API and the Slack signing secret (both needed to pass that handshake), and a writable data
directory. The checks that make up the main job are ``essential``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from eyetok.config import Settings, SinkConfig, secret_env_of, sink_type_of
from eyetok.sinks.slack import SlackSinkConfig

PLACEHOLDER_SOP_URL = "https://runbooks.example.com/emergency-sop"
_LOCALHOST = ("http://localhost", "http://127.0.0.1")

_CREDENTIAL_WORDS = {
    "slack": "the Slack app's Bot User OAuth Token, xoxb-…",
    "webhook": "the receiver's whsec_… signing secret",
    "email": "smtp://user:pass@host:port of the mail relay",
    "pagerduty": "the PagerDuty service's Events API v2 integration (routing) key",
}


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One capability: ready or not, what is there, and what unlocks it."""

    capability: str  # "sentry-ingest:operator", "sink:slack", "operator-api", ...
    ready: bool
    detail: str  # what EyeTok sees
    unlock: str | None = None  # the exact variable or step that makes it ready
    essential: bool = False  # part of the main job (Sentry -> Slack for the operator)
    known: bool = True  # False: not checked (a handshake, without the running daemon)


def main_job_ready(checks: list[Check]) -> bool:
    """Whether Sentry -> Slack can work: every essential check is ready."""
    return all(c.ready for c in checks if c.essential)


def find_data_dir_problem(path: Path) -> str | None:
    """Why EyeTok could not keep its history under ``path`` (None: it could). Changes
    nothing: an existing directory must be writable, a missing one creatable (its nearest
    existing parent a writable directory)."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable by this user"
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{path} cannot be created: {parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} cannot be created: {parent} is not writable by this user"
    return None


def diagnose(
    settings: Settings,
    *,
    environ: Mapping[str, str] | None = None,
    verifications: Mapping[str, str | None] | None = None,
    data_dir_problem: str | None = None,
    postgres_problem: str | None = None,
) -> list[Check]:
    """Every capability's check, the main job's first.

    ``verifications``: from the running daemon, sink id -> None when deliverable, else why
    not (``GET /api/v1/sinks``); absent, a sink's handshake is reported as unknown.
    ``data_dir_problem``: :func:`find_data_dir_problem`'s answer, when the caller checked;
    ``postgres_problem``: why ``DATABASE_URL`` cannot be used, when the caller tried it.
    """
    env = os.environ if environ is None else environ
    operator = settings.operator_tenant
    checks: list[Check] = []

    tenant = settings.tenants[operator]
    env_name = tenant.sentry_secret_env or "SENTRY_CLIENT_SECRET"
    checks.append(
        Check(
            capability=f"sentry-ingest:{operator}",
            ready=tenant.sentry_secret is not None,
            detail=f"POST /hooks/sentry checks Sentry-Hook-Signature with {env_name}"
            if tenant.sentry_secret
            else f"{env_name} is not set: /hooks/sentry answers 401",
            unlock=None
            if tenant.sentry_secret
            else f"set {env_name} to the Client Secret of the Sentry internal integration "
            "whose webhook URL is <EYETOK_PUBLIC_URL>/hooks/sentry",
            essential=True,
        )
    )
    operator_slack = sorted(
        {
            route.sink
            for routes in tenant.policy.routes.values()
            for route in routes
            if isinstance(settings.sinks[route.sink], SlackSinkConfig)
        }
    )
    for sink_id in operator_slack:
        checks.extend(_sink_checks(settings, sink_id, verifications, essential=True))
    checks.append(
        Check(
            capability="operator-api",
            ready=settings.root_token is not None,
            detail="/api/v1/… answers with the root token"
            if settings.root_token
            else "EYETOK_ROOT_TOKEN is not set: /api/v1/… answers 503, so no handshake can start",
            unlock=None
            if settings.root_token
            else "set EYETOK_ROOT_TOKEN to a long random secret (openssl rand -hex 32)",
            essential=bool(operator_slack),
        )
    )
    events_url = f"{settings.public_url}/slack/events"
    if any(isinstance(s, SlackSinkConfig) for s in settings.sinks.values()):
        checks.append(
            Check(
                capability="slack-handshake",
                ready=settings.slack_signing_secret is not None,
                detail=f"the Slack app's Event Subscriptions Request URL must be {events_url}"
                if settings.slack_signing_secret
                else "SLACK_SIGNING_SECRET is not set: /slack/events answers 503, so the "
                "nonce DM'd to the app is never seen",
                unlock=None
                if settings.slack_signing_secret
                else "set SLACK_SIGNING_SECRET to the Slack app's Signing Secret "
                f"(Basic Information), and point Event Subscriptions at {events_url}",
                essential=bool(operator_slack),
            )
        )
        if settings.public_url.startswith(_LOCALHOST) and "EYETOK_PUBLIC_URL" not in env:
            checks.append(
                Check(
                    capability="public-url",
                    ready=False,
                    detail=f"EYETOK_PUBLIC_URL is not set: links and the Events URL say "
                    f"{settings.public_url}, which Slack cannot reach",
                    unlock="set EYETOK_PUBLIC_URL to the address the internet reaches EyeTok "
                    "at (https://<app>.herokuapp.com)",
                )
            )
    checks.append(
        Check(
            capability="data-dir",
            ready=data_dir_problem is None,
            detail=data_dir_problem or f"history in {settings.data_dir}",
            unlock=None
            if data_dir_problem is None
            else "set EYETOK_DATA_DIR to a directory this user can write (or create it)",
            essential=True,
        )
    )
    for sink_id in sorted(settings.sinks):
        if sink_id not in operator_slack:
            checks.extend(_sink_checks(settings, sink_id, verifications, essential=False))
    for tenant_id, other in sorted(settings.tenants.items()):
        if tenant_id != operator:
            name = other.sentry_secret_env
            checks.append(
                Check(
                    capability=f"sentry-ingest:{tenant_id}",
                    ready=other.sentry_secret is not None,
                    detail=f"POST /hooks/sentry/{tenant_id} checks signatures with {name}"
                    if other.sentry_secret
                    else f"{name} is not set: /hooks/sentry/{tenant_id} answers 401",
                    unlock=None if other.sentry_secret else f"set {name}",
                )
            )
    for tenant_id, t in sorted(settings.tenants.items()):
        has = t.hook_secret is not None or t.hook_token is not None
        checks.append(
            Check(
                capability=f"other-hooks:{tenant_id}",
                ready=has,
                detail=f"/hooks/{{probe,generic,alertmanager}}/{tenant_id} accept "
                + " or ".join(
                    n
                    for n, v in (
                        (t.hook_token_env, t.hook_token),
                        (t.hook_secret_env, t.hook_secret),
                    )
                    if v
                )
                if has
                else f"neither {t.hook_token_env} nor {t.hook_secret_env} is set: "
                f"/hooks/{{probe,generic,alertmanager}}/{tenant_id} answer 401",
                unlock=None
                if has
                else f"set {t.hook_token_env} (a bearer token) or {t.hook_secret_env} "
                "(a whsec_… Standard Webhooks secret)",
            )
        )
    if settings.database_url is not None and postgres_problem is not None:
        mirror = Check(
            capability="postgres-mirror",
            ready=False,
            detail=f"DATABASE_URL: {postgres_problem}",
            unlock="fix DATABASE_URL (host, role, password, database); the role must own "
            "its tables and be neither a superuser nor BYPASSRLS",
        )
    elif settings.database_url is not None:
        mirror = Check(
            capability="postgres-mirror",
            ready=True,
            detail="incident state mirrored to DATABASE_URL",
        )
    else:
        mirror = Check(
            capability="postgres-mirror",
            ready=False,
            detail="DATABASE_URL is not set: no mirror"
            + ("; this dyno's disk is wiped on every restart" if "DYNO" in env else ""),
            unlock="add a Postgres database and set DATABASE_URL (Heroku: "
            "heroku addons:create heroku-postgresql:essential-0)",
        )
    checks.append(mirror)
    notices = settings.delivery.operator_notices
    notices_ok = notices.sink in settings.sink_secrets
    enabled = [e for e in settings.schedules if e.enabled]
    checks.append(
        Check(
            capability="schedules",
            ready=notices_ok,
            detail=(
                ", ".join(f"{e.name} {e.cron!r} {e.zone}" for e in enabled)
                or "every routine is disabled"
            )
            + f"; they report to {notices.sink}:{notices.target}",
            unlock=None
            if notices_ok
            else f"the routines report to sink {notices.sink!r}: set "
            f"{secret_env_of(settings.sinks[notices.sink])}",
        )
    )
    sop = settings.slack.emergency_sop_url
    checks.append(
        Check(
            capability="sev1-sop-link",
            ready=sop != PLACEHOLDER_SOP_URL,
            detail=f"SEV1 posts link {sop}"
            if sop != PLACEHOLDER_SOP_URL
            else f"EYETOK_SOP_URL is not set: SEV1 posts link the placeholder {sop}",
            unlock=None
            if sop != PLACEHOLDER_SOP_URL
            else "set EYETOK_SOP_URL to the Emergency SOP runbook",
        )
    )
    return checks


def _sink_checks(
    settings: Settings,
    sink_id: str,
    verifications: Mapping[str, str | None] | None,
    *,
    essential: bool,
) -> list[Check]:
    config: SinkConfig = settings.sinks[sink_id]
    kind = sink_type_of(config)
    variable = secret_env_of(config)
    has_credentials = sink_id in settings.sink_secrets
    checks = [
        Check(
            capability=f"sink:{sink_id}",
            ready=has_credentials,
            detail=f"{kind} sink of {config.tenant}, credentials from {variable}"
            if has_credentials
            else f"{variable} is not set: deliveries to {sink_id} are refused",
            unlock=None if has_credentials else f"set {variable} ({_CREDENTIAL_WORDS[kind]})",
            essential=essential,
        )
    ]
    if verifications is None:
        checks.append(
            Check(
                capability=f"handshake:{sink_id}",
                ready=True,
                known=False,
                detail="not checked here: pass --url to ask the running daemon",
                essential=False,
            )
        )
    else:
        known = sink_id in verifications
        why = verifications.get(sink_id, "never verified")
        checks.append(
            Check(
                capability=f"handshake:{sink_id}",
                ready=known and why is None,
                detail="verified: deliverable"
                if known and why is None
                else f"not deliverable: {why}",
                unlock=None
                if known and why is None
                else f"python3 -m uv run eyetok verify {sink_id} (on the running daemon)",
                essential=essential,
            )
        )
    return checks


def setup_status(checks: list[Check]) -> dict[str, object]:
    """The one ``setup_status`` log line (and ``/readyz``'s ``setup``): whether the main
    job can work, what is ready, and for each thing that is not, what unlocks it."""
    return {
        "main_job_ready": main_job_ready(checks),
        "ready": [c.capability for c in checks if c.ready and c.known],
        "missing": {c.capability: c.unlock for c in checks if not c.ready},
    }


def lines(checks: list[Check]) -> list[str]:
    """``eyetok doctor``'s text: one line per check, then the verdict."""
    out = []
    width = max(len(c.capability) for c in checks)
    for c in checks:
        mark = "ok     " if c.ready else ("MISSING" if c.essential else "off    ")
        mark = mark if c.known else "?      "
        out.append(f"{mark} {c.capability:<{width}}  {c.detail}")
        if c.unlock:
            out.append(f"{'':7} {'':<{width}}  -> {c.unlock}")
    if main_job_ready(checks):
        out.append("Sentry -> Slack: ready.")
    else:
        missing = sum(1 for c in checks if c.essential and not c.ready)
        out.append(
            f"Sentry -> Slack cannot work yet: {missing} MISSING above; do what each -> says."
        )
    return out
