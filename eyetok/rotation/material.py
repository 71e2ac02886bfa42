"""What a credential version holds for each sink type, and how a version is put in use.

- Slack: ``{"token": "xoxb-..."}``, the bot token (given by the operator).
- webhook: ``{"secret": "whsec_..."}``, made here; for 30 days after a rotation the
  previous version signs too (Standard Webhooks, several signatures).
- email: ``{"selector", "domain", "private_key"}``, a DKIM key made here; its public half
  must be published at ``<selector>._domainkey.<domain>`` before it signs anything.
- PagerDuty: ``{"refresh_token": ...}``, from a new OAuth authorization (PKCE).

Pure: no I/O. :func:`in_use` folds a sink's current version (and, for a webhook, the one
before it) into the settings every actor follows.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime

import msgspec

from eyetok.config import Settings
from eyetok.errors import ConfigError
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.standard_webhooks import ROTATION_OVERLAP, decode_secret

DKIM_KEY_BITS = 2048
_SLACK_TOKEN = re.compile(r"^xox[bp]-[A-Za-z0-9-]{1,250}$")


def env_name(prefix: str, sink_id: str) -> str:
    """Where a rotated value sits among the settings' sink environment (never the process's)."""
    return f"EYETOK_ROTATED_{prefix}_" + re.sub(r"[^A-Z0-9]", "_", sink_id.upper())


def slack_material(token: str) -> dict[str, str]:
    if not _SLACK_TOKEN.match(token):
        raise ConfigError("token", "is not a Slack bot token (xoxb-...)")
    return {"token": token}


def webhook_material() -> dict[str, str]:
    return {"secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()}


def dkim_material(domain: str, now: datetime, version: int) -> dict[str, str]:
    """A new DKIM key and the selector it is published under."""
    # cryptography is loaded by the first DKIM rotation, not by every daemon.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return {
        "selector": f"eyetok{now:%Y%m%d}v{version}",
        "domain": domain,
        "private_key": pem.decode(),
    }


def dkim_record(material: dict[str, str]) -> tuple[str, str]:
    """(name, value) of the TXT record publishing a DKIM version's public key."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(material["private_key"].encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"{material['selector']}._domainkey.{material['domain']}"
    return name, "v=DKIM1; k=rsa; p=" + base64.b64encode(public).decode()


def publishes(values: list[str], expected: str) -> bool:
    """Whether a TXT look-up's answer holds the expected DKIM record (spaces aside)."""

    def squeeze(text: str) -> str:
        return "".join(text.split())

    return any(squeeze(value) == squeeze(expected) for value in values)


def material_now(settings: Settings, sink_id: str) -> dict[str, str] | None:
    """The credential a sink uses today, as version 1 of its history (None: it has none
    of the rotating kind yet, e.g. an email sink that never signed)."""
    config = settings.sinks[sink_id]
    match config:
        case SlackSinkConfig():
            token = settings.sink_secrets.get(sink_id)
            return {"token": token} if token else None
        case WebhookSinkConfig():
            secret = settings.sink_secrets.get(sink_id)
            return {"secret": secret} if secret else None
        case EmailSinkConfig():
            if config.dkim_selector is None or config.dkim_key_env is None:
                return None
            key = settings.sink_env.get(config.dkim_key_env)
            if not key:
                return None
            return {
                "selector": config.dkim_selector,
                "domain": config.dkim_domain,
                "private_key": key,
            }
        case PagerDutySinkConfig():
            return None


def in_use(
    settings: Settings,
    sink_id: str,
    current: dict[str, str] | None,
    *,
    since: datetime,
    previous: dict[str, str] | None,
    now: datetime,
) -> Settings:
    """``settings`` with ``current`` as the sink's credential (``since`` when it became
    current; ``previous`` the version before it, for a webhook's 30-day overlap). None:
    the sink has no credential of the rotating kind (mail goes unsigned)."""
    config = settings.sinks.get(sink_id)
    if config is None:
        return settings
    if current is None:
        if isinstance(config, EmailSinkConfig):
            config = msgspec.structs.replace(config, dkim_selector=None, dkim_key_env=None)
            return msgspec.structs.replace(settings, sinks={**settings.sinks, sink_id: config})
        return settings
    secrets_ = dict(settings.sink_secrets)
    env = dict(settings.sink_env)
    match config:
        case SlackSinkConfig():
            secrets_[sink_id] = current["token"]
        case WebhookSinkConfig():
            decode_secret(current["secret"])
            secrets_[sink_id] = current["secret"]
            if previous is not None and now - since < ROTATION_OVERLAP:
                name = env_name("PREVIOUS_SECRET", sink_id)
                env[name] = previous["secret"]
                config = msgspec.structs.replace(
                    config, previous_secret_env=name, rotated_at=since.isoformat()
                )
            else:
                config = msgspec.structs.replace(config, previous_secret_env=None, rotated_at=None)
        case EmailSinkConfig():
            name = env_name("DKIM_KEY", sink_id)
            env[name] = current["private_key"]
            config = msgspec.structs.replace(
                config, dkim_selector=current["selector"], dkim_key_env=name
            )
        case PagerDutySinkConfig():
            pass  # the refresh token proves ownership; deliveries use the routing key
    sinks = {**settings.sinks, sink_id: config}
    return msgspec.structs.replace(settings, sinks=sinks, sink_secrets=secrets_, sink_env=env)
