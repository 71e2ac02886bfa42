"""The tenant API's domain: tokens kept only as hashes, what a tenant may write, and the
configuration its writes produce. Pure: no I/O.

A tenant writes only its own configuration. Its API sinks are named
``<tenant>.<name>`` (a tenant id never holds a dot, so no tenant can take another's
name), may name only the tenant's own environment (``ACME_…``, or the shared
``SMTP_URL``), and its routes may name only its own sinks. The file's configuration
always wins: a sink configured in the file is not the API's to change.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import msgspec

from eyetok.config import (
    SINK_TYPES,
    Settings,
    SinkConfig,
    secret_env_of,
    tenant_env_allowed,
)
from eyetok.errors import EyeTokError
from eyetok.messages import SevChannel, TenantConfigEntry, TenantToken
from eyetok.policy import Route
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig

TOKEN_PREFIX = "etk_"
ROUTES_KEY = "routes"
API_SINK_ID = re.compile(
    r"^(?P<tenant>[a-z0-9][a-z0-9_-]{0,62})\.(?P<name>[a-z0-9][a-z0-9_-]{0,62})$"
)
_AT_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_INNER_FIELD = re.compile(r"^config (?P<name>[\w.\[\]]+): (?P<problem>.*)$", re.S)
_UNKNOWN_FIELD = re.compile(
    r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]+)`$"
)


class TenantApiError(EyeTokError):
    """A tenant API call that cannot be done: ``status`` is the HTTP answer, ``field``
    the culprit in the request. ``cross_tenant`` marks an attempt on another tenant's
    configuration (audited)."""

    def __init__(
        self, status: int, field: str, problem: str, *, cross_tenant: bool = False
    ) -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.problem = problem
        self.cross_tenant = cross_tenant


# --- tokens ------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh bearer token (256 random bits); shown once, never stored."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)


def token_hash(token: str) -> str:
    """What EyeTok keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def match_token(presented: str, tokens: Iterable[TenantToken]) -> TenantToken | None:
    """The live token whose hash matches ``presented``. Every candidate is compared in
    constant time, and all of them are, so the answer's timing says nothing."""
    digest = token_hash(presented).encode()
    found: TenantToken | None = None
    for token in tokens:
        if hmac.compare_digest(digest, token.token_hash.encode()) and token.revoked_at is None:
            found = token
    return found


def live_tokens(rows: Iterable[TenantToken]) -> dict[str, TenantToken]:
    """Issue and revocation rows, oldest first, folded: token id -> live token."""
    live: dict[str, TenantToken] = {}
    for row in rows:
        if row.revoked_at is None:
            live[row.token_id] = row
        else:
            live.pop(row.token_id, None)
    return live


class TokenRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/tenants/<tenant>/tokens``: what the token is for (shown in the token
    list, so a revoker knows which one to revoke) and who asked for it."""

    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    issued_by: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "root"


def parse_token_request(body: object) -> TokenRequest:
    """The token request in ``body``; raises :class:`TenantApiError` (400) naming the
    field: a label is required and is not blank."""
    if not isinstance(body, dict):
        raise TenantApiError(400, "(body)", 'a token request is {"label": "what it is for"}')
    try:
        asked = msgspec.convert(body, TokenRequest)
    except msgspec.ValidationError as exc:
        field, problem = _validation_field(exc)
        raise TenantApiError(400, field, problem) from exc
    if not asked.label.strip():
        raise TenantApiError(400, "label", "is blank: say what the token is for")
    return asked


# --- what a tenant may write -------------------------------------------------------------


def _validation_field(exc: msgspec.ValidationError, prefix: str = "") -> tuple[str, str]:
    text = str(exc)
    match = _AT_PATH.search(text)
    problem = text[: match.start()] if match else text
    field = match["path"].lstrip(".") if match else ""
    if unknown := _UNKNOWN_FIELD.match(problem):
        field = f"{field}.{unknown['name']}".lstrip(".")
    if inner := _INNER_FIELD.match(problem):
        field = f"{field}.{inner['name']}".lstrip(".")
        problem = inner["problem"]
    return (f"{prefix}.{field}" if prefix and field else prefix or field or "(body)"), problem


def _env_names(config: SinkConfig) -> dict[str, str]:
    """field name -> the environment variable it names."""
    names = {
        {
            "slack": "token_env",
            "webhook": "secret_env",
            "email": "smtp_url_env",
            "pagerduty": "routing_key_env",
        }[str(type(config).__struct_config__.tag)]: secret_env_of(config)
    }
    if isinstance(config, WebhookSinkConfig) and config.previous_secret_env:
        names["previous_secret_env"] = config.previous_secret_env
    return names


def parse_sink(tenant: str, sink_id: str, body: object, base: Settings) -> SinkConfig:
    """A sink the tenant writes through the API, checked; raises :class:`TenantApiError`."""
    named = API_SINK_ID.match(sink_id)
    if named is None:
        raise TenantApiError(
            400, "sink_id", f"{sink_id!r} is not <tenant>.<name> ([a-z0-9_-], at most 63 each)"
        )
    if named["tenant"] != tenant:
        raise TenantApiError(
            403,
            "sink_id",
            f"{sink_id!r} is named for tenant {named['tenant']!r}; yours are {tenant}.<name>",
            cross_tenant=True,
        )
    if sink_id in base.sinks:
        raise TenantApiError(
            409, "sink_id", f"{sink_id!r} is configured in the file; change it there"
        )
    if not isinstance(body, dict):
        raise TenantApiError(400, "(body)", "a sink is a JSON object with a type")
    raw: dict[str, Any] = dict(body)
    owner = raw.get("tenant", tenant)
    if owner != tenant:
        raise TenantApiError(
            403, "tenant", f"a sink of tenant {tenant!r} cannot name {owner!r}", cross_tenant=True
        )
    if raw.get("type") not in SINK_TYPES:
        raise TenantApiError(
            400, "type", f"{raw.get('type')!r} is not a sink type ({', '.join(SINK_TYPES)})"
        )
    raw["tenant"] = tenant
    try:
        config: SinkConfig = msgspec.convert(raw, SinkConfig)
    except msgspec.ValidationError as exc:
        field, problem = _validation_field(exc)
        raise TenantApiError(400, field, problem) from exc
    for field, name in _env_names(config).items():
        if not tenant_env_allowed(tenant, name, base.tenants):
            raise TenantApiError(
                400,
                field,
                f"{name!r} is not yours to name: a tenant's sinks read "
                f"{tenant.upper().replace('-', '_')}_… variables (or SMTP_URL)",
            )
    return config


def parse_routes(
    tenant: str, body: object, sinks: Mapping[str, SinkConfig]
) -> dict[SevChannel, tuple[Route, ...]]:
    """``{"routes": {"SEV1": [{"sink", "target"}], …}}``; every sink the tenant's own.
    Raises :class:`TenantApiError`."""
    if not isinstance(body, dict) or set(body) != {"routes"}:
        raise TenantApiError(400, "(body)", 'routes are {"routes": {"SEV1": [...], ...}}')
    try:
        routes = msgspec.convert(body["routes"], dict[SevChannel, tuple[Route, ...]])
    except msgspec.ValidationError as exc:
        field, problem = _validation_field(exc, "routes")
        raise TenantApiError(400, field, problem) from exc
    for channel, channel_routes in routes.items():
        for i, route in enumerate(channel_routes):
            config = sinks.get(route.sink)
            if config is None or config.tenant != tenant:
                raise TenantApiError(
                    400,
                    f"routes.{channel.value}[{i}].sink",
                    f"tenant {tenant!r} has no sink named {route.sink!r}",
                    cross_tenant=config is not None,
                )
            if not route.target.strip():
                raise TenantApiError(400, f"routes.{channel.value}[{i}].target", "is empty")
    return routes


# --- the configuration the writes produce ------------------------------------------------


class TenantOverlay(msgspec.Struct, frozen=True, kw_only=True):
    """What a tenant changed through the API: its API sinks, and its routes if it
    replaced them (None: the file's)."""

    sinks: dict[str, SinkConfig] = msgspec.field(default_factory=dict)
    routes: dict[SevChannel, tuple[Route, ...]] | None = None


_sink_decoder = msgspec.json.Decoder(SinkConfig)
_routes_decoder = msgspec.json.Decoder(dict[SevChannel, tuple[Route, ...]])
_encode = msgspec.json.Encoder().encode


def sink_json(config: SinkConfig) -> str:
    return _encode(config).decode()


def routes_json(routes: Mapping[SevChannel, tuple[Route, ...]]) -> str:
    return _encode(dict(routes)).decode()


def fold_entries(entries: Iterable[TenantConfigEntry]) -> dict[str, TenantOverlay]:
    """The configuration entries, oldest first, folded: tenant -> its overlay."""
    sinks: dict[str, dict[str, SinkConfig]] = {}
    routes: dict[str, dict[SevChannel, tuple[Route, ...]] | None] = {}
    for entry in entries:
        if entry.kind == "sink":
            mine = sinks.setdefault(entry.tenant, {})
            if entry.value_json:
                config = _sink_decoder.decode(entry.value_json)
                if config.tenant == entry.tenant:
                    mine[entry.key] = config
            else:
                mine.pop(entry.key, None)
        elif entry.kind == ROUTES_KEY:
            routes[entry.tenant] = (
                _routes_decoder.decode(entry.value_json) if entry.value_json else None
            )
    return {
        tenant: TenantOverlay(sinks=sinks.get(tenant, {}), routes=routes.get(tenant))
        for tenant in sinks.keys() | routes.keys()
    }


def with_overlays(base: Settings, overlays: Mapping[str, TenantOverlay]) -> Settings:
    """The file's settings with every tenant's API changes. A tenant the file no longer
    names is ignored; a sink id the file configures is the file's; a route to a sink that
    is not the tenant's own is dropped."""
    sinks = dict(base.sinks)
    tenants = dict(base.tenants)
    secrets_ = dict(base.sink_secrets)
    sink_env = dict(base.sink_env)
    for tenant_id, overlay in sorted(overlays.items()):
        tenant = tenants.get(tenant_id)
        if tenant is None:
            continue
        for sink_id, config in overlay.sinks.items():
            if sink_id in base.sinks or config.tenant != tenant_id:
                continue
            sinks[sink_id] = config
            secret = base.tenant_env.get(secret_env_of(config))
            if secret:
                secrets_[sink_id] = secret
            optional = [config.previous_secret_env] if isinstance(config, WebhookSinkConfig) else []
            if isinstance(config, PagerDutySinkConfig):
                optional.append("PAGERDUTY_EVENTS_URL")
            for name in optional:
                if name and name in base.tenant_env:
                    sink_env[name] = base.tenant_env[name]
        if overlay.routes is not None:
            routes = {
                channel: tuple(
                    r for r in rs if r.sink in sinks and sinks[r.sink].tenant == tenant_id
                )
                for channel, rs in overlay.routes.items()
            }
            policy = msgspec.structs.replace(tenant.policy, routes=routes)
            tenants[tenant_id] = msgspec.structs.replace(tenant, policy=policy)
    return msgspec.structs.replace(
        base, sinks=sinks, tenants=tenants, sink_secrets=secrets_, sink_env=sink_env
    )
