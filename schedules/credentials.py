"""The credentials EyeTok holds, their fingerprints, and the quarterly rotation reminder.

A credential is named by the environment variable it comes from (a tenant's Sentry
secret, whose variable the settings do not keep, by what it is). EyeTok never stores a
secret: it records a fingerprint (a truncated, domain-separated SHA-256) the first time
it sees a value, at start and on SIGHUP, so a credential's age is "how long this value
has been the one in use". Pure: no I/O here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from eyetok.config import Settings, secret_env_of
from eyetok.sinks.webhook import WebhookSinkConfig


class CredentialSeen(msgspec.Struct, frozen=True, kw_only=True):
    """When a credential's current value was first seen (from the audit log)."""

    credential: str
    fingerprint: str
    first_seen: datetime


def credentials_of(settings: Settings) -> dict[str, str]:
    """Every credential the settings hold: name -> value (only those that are set)."""
    found: dict[str, str] = {}
    for sink_id, sink in sorted(settings.sinks.items()):
        secret = settings.sink_secrets.get(sink_id)
        if secret:
            found[secret_env_of(sink)] = secret
        if isinstance(sink, WebhookSinkConfig) and sink.previous_secret_env:
            previous = settings.sink_env.get(sink.previous_secret_env)
            if previous:
                found[sink.previous_secret_env] = previous
    for tenant_id, tenant in sorted(settings.tenants.items()):
        if tenant.sentry_secret:
            found[f"Sentry client secret of tenant {tenant_id}"] = tenant.sentry_secret
        if tenant.hook_secret:
            found[tenant.hook_secret_env] = tenant.hook_secret
        if tenant.hook_token:
            found[tenant.hook_token_env] = tenant.hook_token
    if settings.root_token:
        found["EYETOK_ROOT_TOKEN"] = settings.root_token
    if settings.slack_signing_secret:
        found["SLACK_SIGNING_SECRET"] = settings.slack_signing_secret
    if settings.database_url:
        found["DATABASE_URL"] = settings.database_url
    if settings.freescout_link is not None:  # the ticket trail's key (eyetok/freescout.py)
        found[settings.freescout.api_key_env] = settings.freescout_link.api_key
    return found


def fingerprint(credential: str, value: str) -> str:
    """A short fingerprint of ``value``; it tells a rotation apart, not the secret."""
    digest = hashlib.sha256(f"eyetok-credential-v1|{credential}|{value}".encode())
    return digest.hexdigest()[:12]


def changed(
    current: dict[str, str], recorded: dict[str, CredentialSeen]
) -> list[tuple[str, str, bool]]:
    """(credential, fingerprint, rotated) for each credential whose value is new here;
    ``rotated`` when an older value was on record."""
    out = []
    for name, value in sorted(current.items()):
        print_ = fingerprint(name, value)
        before = recorded.get(name)
        if before is None or before.fingerprint != print_:
            out.append((name, print_, before is not None))
    return out


def rotation_reminder(
    current: dict[str, str],
    recorded: dict[str, CredentialSeen],
    *,
    now: datetime,
    records_since: datetime | None,
) -> str:
    """The quarterly reminder: every credential, the age of its value, oldest first."""
    lines = [
        ":key: Quarterly credential rotation (second Tuesday of the quarter). "
        f"EyeTok holds {len(current)} credentials. Rotate in order: Slack app token, "
        "webhook signing secrets (set the old one as previous_secret_env during the "
        "switch), SMTP credentials, PagerDuty keys; restart EyeTok with the new values "
        "and re-verify each sink (`eyetok verify SINK`).",
    ]
    rows = []
    for name, value in current.items():
        seen = recorded.get(name)
        if seen is None or seen.fingerprint != fingerprint(name, value):
            rows.append((0.0, f"- {name}: new, not yet on record"))
            continue
        days = (now - seen.first_seen).total_seconds() / 86_400
        at_least = records_since is not None and seen.first_seen <= records_since
        age = f"{'at least ' if at_least else ''}{int(days)} days"
        rows.append((days, f"- {name}: {age} (in use since {seen.first_seen.date().isoformat()})"))
    rows.sort(key=lambda row: -row[0])
    lines += [text for _, text in rows]
    if not rows:
        lines.append("- (no credentials are configured)")
    return "\n".join(lines)
