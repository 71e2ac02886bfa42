"""Configuration: an optional YAML file (``EYETOK_CONFIG``) plus the environment.

Unknown keys and wrong types stop start-up with a :class:`ConfigError` that names the
field path. With no file and no environment at all EyeTok runs on the embedded default:
the operator tenant, the ADR's four Slack channels, an embedded DuckDB file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from eyetok.access import PersonConfig, check_people
from eyetok.errors import ConfigError
from eyetok.freescout import FreeScoutLink, FreeScoutOptions, link_from
from eyetok.messages import Destination
from eyetok.oncall.settings import OncallSource, oncall_from
from eyetok.playbooks.config import Integrations, Playbook, Registry, load_registry
from eyetok.policy import DEFAULT_POLICY, EMPTY_POLICY, Policy, Route
from eyetok.recognisers import Recognisers
from eyetok.retention import RetentionOptions
from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig
from eyetok.sources.heroku_logs import CODE_PATTERN, DEFAULT_CODES
from eyetok.standard_webhooks import decode_secret
from schedules.loader import ScheduleOverride, resolve
from schedules.table import ScheduleEntry

OPERATOR_TENANT = "operator"
OPERATOR_SIDE_TIERS = frozenset({"operator", "drill"})  # Settings.operator_side
SINK_TYPES = ("slack", "webhook", "email", "pagerduty")
LOG_LEVELS = ("debug", "info", "warning", "error")
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


SinkConfig = SlackSinkConfig | WebhookSinkConfig | EmailSinkConfig | PagerDutySinkConfig


def sink_type_of(config: SinkConfig) -> str:
    """``slack``, ``webhook``, ``email`` or ``pagerduty``: the config's type tag."""
    return str(type(config).__struct_config__.tag)


def secret_env_of(config: SinkConfig) -> str:
    """The environment variable that must be set for the sink to deliver at all."""
    match config:
        case SlackSinkConfig():
            return config.token_env
        case WebhookSinkConfig():
            return config.secret_env
        case EmailSinkConfig():
            return config.smtp_url_env
        case PagerDutySinkConfig():
            return config.routing_key_env


def _optional_env_of(config: SinkConfig) -> tuple[str, ...]:
    match config:
        case WebhookSinkConfig(previous_secret_env=str(previous)):
            return (previous,)
        case PagerDutySinkConfig():
            return ("PAGERDUTY_EVENTS_URL",)
        case EmailSinkConfig(dkim_key_env=str(key)):
            return (key,)
        case _:
            return ()


class Escalation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """SEV1's human loop: a SEV1 not acknowledged after ``ack_renotify_s`` is re-notified
    once (a thread reply mentioning the on-call user); after ``ack_escalate_s`` it is
    escalated once to ``secondary`` (a sink of this tenant's and a target in it)."""

    ack_renotify_s: float = 300.0
    ack_escalate_s: float = 1800.0
    secondary: Route | None = None
    # the operator's: an operator digest nobody acknowledged goes to ``secondary`` after
    digest_escalate_s: float = 900.0


class HerokuDrain(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A tenant's Heroku HTTPS log drain (``/hooks/heroku-logs/{tenant}``): the basic-auth
    user and the env var of the password the drain URL embeds; ``apps``, drain token ->
    app name, pins the drain tokens when set; ``codes`` the errors that become signals;
    ``quiet_s`` how long an error must stop before its incident resolves."""

    user: str
    password_env: str
    apps: dict[str, str] = msgspec.field(default_factory=dict)
    codes: frozenset[str] = DEFAULT_CODES
    quiet_s: float = 600.0


class TenantConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tier: str = "public"
    sentry_secret_env: str | None = None  # env var holding this tenant's Sentry client secret
    # env var holding the whsec_ Standard Webhooks secret of /hooks/{probe,generic,alertmanager}
    webhook_secret_env: str | None = None
    hook_token_env: str | None = None  # env var holding the bearer token of those hooks
    # env var holding the PagerDuty v3 webhook subscription's secret (/hooks/pagerduty/{tenant})
    pagerduty_webhook_secret_env: str | None = None
    policy: Policy | None = None  # the operator's default: the ADR's channels; others: none
    primary_sink: str | None = None  # where the hourly digest goes; default: first routed sink
    escalation: Escalation = msgspec.field(default_factory=Escalation)
    heroku_drain: HerokuDrain | None = None


class SlackOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    emergency_sop_url: str = "https://runbooks.example.com/emergency-sop"
    oncall_user: str | None = None  # Slack user id to mention on SEV2; env EYETOK_ONCALL_SLACK_USER
    # how long one Slack call may take before the client gives up (the post may still land)
    request_timeout_s: float = 10.0


NOTICE_AGE_FACTOR = 4  # an operator notice is retried four times as long as what it reports


class DeliveryOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # A failing delivery is retried until it is this old (backoff capped at max_backoff_s;
    # attempts are not counted against it), then it ends ``dead``.
    max_age_s: float = 900.0
    # An operator notice (a dead-delivery report, ...) must outlive the failures it reports:
    # retried this long (default: NOTICE_AGE_FACTOR times max_age_s, one hour).
    notice_max_age_s: float | None = None
    # A delivery to a sink not (yet) verified is held this long for its handshake, then it
    # ends ``refused_unverified`` (design section 6).
    unverified_hold_s: float = 86_400.0
    base_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    breaker_threshold: int = 3  # consecutive retryable failures that open a destination's breaker
    breaker_cooldown_s: float = 5.0  # first open period; doubles while failures go on
    # where the operator hears about dead deliveries and other trouble
    operator_notices: Route = Route(sink="slack", target="#eyetok-operator")

    def notices_max_age_s(self) -> float:
        """How long an operator notice is retried."""
        if self.notice_max_age_s is not None:
            return self.notice_max_age_s
        return NOTICE_AGE_FACTOR * self.max_age_s


class VerificationOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    txt_every_s: float = 300.0  # how often a webhook's DNS TXT record is looked up
    txt_for_s: float = 86_400.0  # for how long before the handshake fails
    reverify_cron: str = "0 9 * * FRI"  # the weekly re-verification (croniter syntax)
    reverify_zone: str = "America/New_York"


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deliberately broken behaviour, for the drill harness's own tests: a drill must fail
    when an invariant is broken, so its tests need a daemon that breaks one. Never set in
    production; the daemon logs ``faults_injected`` at start when any is on."""

    # judge every tenant's business hours in UTC instead of its zone (the ADR forbids it)
    business_hours_in_utc: bool = False

    def active(self) -> list[str]:
        return [name for name in self.__struct_fields__ if getattr(self, name)]


class BudgetOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per-tenant hourly budgets (the tier registry says how many alerts an hour)."""

    enabled: bool = True  # false: nobody is capped
    # where the first cap event of a tenant in an hour is announced, one line
    cap_notices: Route = Route(sink="slack", target="#alerts-cap")


class SuppressionOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The cross-tenant suppression window (design section 4)."""

    enabled: bool = True  # false: alerts with a cluster key are never held
    hold_s: float = 60.0  # how long an alert with a cluster key waits for its cluster
    min_tenants: int = 30  # the floor: at least this many distinct tenants ...
    min_share: float = 0.10  # ... and at least this share of active tenants
    quiet_s: float = 300.0  # an active cluster clears after this long without an alert


class RoutineOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The operator's routines (the schedules fire them; ``eyetok review`` asks for one)."""

    # The monthly drill: a command run against this daemon. ``{python}`` is this Python,
    # ``{url}`` this daemon's local address, ``{port}`` its port, ``{scenario}`` the
    # month's flavour (schedules/drills.py), ``{slot}`` the schedule's slot (ISO 8601).
    drill_command: tuple[str, ...] = (
        "{python}",
        "-m",
        "eyetok.cli",
        "drill",
        "run",
        "{scenario}",
        "--monthly-slot",
        "{slot}",
        "--url",
        "{url}",
        "--json",
    )
    drill_timeout_s: float = 7200.0  # budget exhaustion waits for the top of the hour
    review_window_h: float = 24.0  # what the daily review reads: the last N hours


class HttpOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long the HTTP server waits on a client (hypercorn's timeouts)."""

    # a connection with no request in progress (just opened, between requests, or part
    # way through a request's headers) is closed after this long: a header deadline that
    # trickling bytes does not extend, and the idle keep-alive
    idle_timeout_s: int = 75
    # the longest silence from a client while its request is read or answered; above
    # idle_timeout_s so it does not cut keep-alive short
    read_timeout_s: int = 90
    max_header_bytes: int = 16 * 1024  # a request line and headers past this: 400, closed


class FileConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The shape of the YAML file. Every key is optional."""

    operator_tenant: str = OPERATOR_TENANT
    tenants: dict[str, TenantConfig] = msgspec.field(default_factory=dict)
    sinks: dict[str, SinkConfig] = msgspec.field(default_factory=dict)
    recognisers: Recognisers = msgspec.field(default_factory=Recognisers)
    slack: SlackOptions = msgspec.field(default_factory=SlackOptions)
    delivery: DeliveryOptions = msgspec.field(default_factory=DeliveryOptions)
    verification: VerificationOptions = msgspec.field(default_factory=VerificationOptions)
    budgets: BudgetOptions = msgspec.field(default_factory=BudgetOptions)
    suppression: SuppressionOptions = msgspec.field(default_factory=SuppressionOptions)
    schedules: tuple[ScheduleOverride, ...] = ()
    routines: RoutineOptions = msgspec.field(default_factory=RoutineOptions)
    retention: RetentionOptions = msgspec.field(default_factory=RetentionOptions)
    ingest_queue: int = 2048
    faults: Faults = msgspec.field(default_factory=Faults)
    http: HttpOptions = msgspec.field(default_factory=HttpOptions)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    freescout: FreeScoutOptions = msgspec.field(default_factory=FreeScoutOptions)
    playbooks: tuple[Playbook, ...] = ()  # eyetok/playbooks/config.py
    integrations: Integrations = Integrations()
    people: tuple[PersonConfig, ...] = ()  # who may do what (eyetok/access.py)
    change_justification: str = ""  # why this file's guarded change (eyetok/config_review.py)


TIER_DEFAULTS_FILE = Path(__file__).parent / "data" / "tier-defaults.yaml"


def load_tier_defaults(path: Path = TIER_DEFAULTS_FILE) -> dict[str, int | None]:
    """The tier-default registry: hourly alert budget per tier (None: uncapped)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return msgspec.convert(raw, dict[str, int | None])
    except (OSError, yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(str(path), f"not a tier registry: {exc}") from exc


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    tier: str
    hourly_budget: int | None = None  # from the tier registry; None: uncapped
    sentry_secret: str | None
    policy: Policy
    sentry_secret_env: str = (
        ""  # where the Sentry secret comes from (named when a hook answers 401)
    )
    hook_secret: str | None = None  # whsec_ secret for the probe, generic, alertmanager hooks
    hook_token: str | None = None  # bearer token for the same hooks
    hook_secret_env: str = ""  # where they came from (named when a hook answers 401)
    hook_token_env: str = ""
    primary_sink: str | None = None  # where the hourly digest goes (None: no sink routed)
    escalation: Escalation = Escalation()
    pagerduty_webhook_secret: str | None = None  # signs /hooks/pagerduty/{tenant}
    pagerduty_webhook_secret_env: str = ""  # where it came from (named when the hook answers 401)
    heroku_drain: HerokuDrain | None = None
    heroku_drain_password: str | None = None  # from heroku_drain.password_env


Durability = Literal["disk", "postgres"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the process needs, resolved once at start (and on SIGHUP)."""

    port: int
    data_dir: Path
    operator_tenant: str
    tenants: dict[str, Tenant]
    sinks: dict[str, SinkConfig]
    sink_secrets: dict[str, str]  # sink id -> credential from the environment (absent: unset)
    sink_env: dict[str, str]  # every other environment value a sink names (rotation, URLs)
    slack_api_url: str
    slack: SlackOptions
    recognisers: Recognisers
    delivery: DeliveryOptions
    ingest_queue: int
    log_level: str
    database_url: str | None
    # what a 202 waits for: the journal on disk, or that and Postgres (durability_of)
    durability: Durability = "disk"
    verification: VerificationOptions = VerificationOptions()
    root_token: str | None = None  # EYETOK_ROOT_TOKEN: the operator's API token
    metrics_token: str | None = None  # EYETOK_METRICS_TOKEN: /metrics wants it as a bearer
    console_incidents: bool = False  # FLAG_CONSOLE_INCIDENTS: /console/incidents is served
    secrets_key: str | None = None  # EYETOK_SECRETS_KEY: seals the secret store (Fernet)
    oncall: OncallSource | None = None  # the IdP-bound on-call rotation (eyetok/oncall/)
    slack_signing_secret: str | None = None  # SLACK_SIGNING_SECRET: Events API requests
    public_url: str = "http://localhost:8080"  # EYETOK_PUBLIC_URL: links and callbacks
    dns_resolver: tuple[str, int] | None = None  # EYETOK_DNS_RESOLVER host:port
    faults: Faults = Faults()
    budgets: BudgetOptions = BudgetOptions()
    suppression: SuppressionOptions = SuppressionOptions()
    schedules: tuple[ScheduleEntry, ...] = ()  # every routine's schedule (schedules/loader.py)
    routines: RoutineOptions = RoutineOptions()
    retention: RetentionOptions = RetentionOptions()
    http: HttpOptions = HttpOptions()
    # environment a sink written through the tenant API may name (tenant_env_allowed)
    tenant_env: dict[str, str] = msgspec.field(default_factory=dict)
    freescout: FreeScoutOptions = FreeScoutOptions()  # the ticket trail (eyetok/freescout.py)
    freescout_link: FreeScoutLink | None = None  # None: FREESCOUT_URL unset, no trail
    playbooks: Registry = Registry()  # the playbook registry (eyetok/playbooks/config.py)
    people: tuple[PersonConfig, ...] = ()  # who may do what (eyetok/access.py)

    def sink_types(self) -> dict[str, str]:
        return {sink_id: sink_type_of(config) for sink_id, config in self.sinks.items()}

    def notices_destination(self) -> Destination:
        route = self.delivery.operator_notices
        return Destination(
            sink_id=route.sink, sink_type=self.sink_types()[route.sink], target=route.target
        )

    def tenant_destinations(self) -> dict[str, tuple[Destination, ...]]:
        """Per tenant, one destination on each sink it routes to (the first route's target)."""
        out: dict[str, tuple[Destination, ...]] = {}
        types = self.sink_types()
        for tenant_id, tenant in self.tenants.items():
            seen: dict[str, Destination] = {}
            for routes in tenant.policy.routes.values():
                for route in routes:
                    seen.setdefault(
                        route.sink,
                        Destination(
                            sink_id=route.sink, sink_type=types[route.sink], target=route.target
                        ),
                    )
            out[tenant_id] = tuple(seen.values())
        return out

    def primary_destinations(self) -> dict[str, Destination]:
        """Per tenant, where its hourly digest goes: its primary sink and that sink's first
        routed target (a tenant that routes nowhere has none)."""
        out: dict[str, Destination] = {}
        for tenant_id, dests in self.tenant_destinations().items():
            primary = self.tenants[tenant_id].primary_sink
            chosen = next((d for d in dests if d.sink_id == primary), None)
            if chosen is not None:
                out[tenant_id] = chosen
        return out

    def cap_destination(self) -> Destination:
        route = self.budgets.cap_notices
        return Destination(
            sink_id=route.sink, sink_type=self.sink_types()[route.sink], target=route.target
        )

    def configured_sinks(self) -> list[str]:
        """Sink ids whose credentials are present."""
        return sorted(s for s in self.sinks if s in self.sink_secrets)

    def operator_side(self, tenant_id: str) -> bool:
        """Whether ``tenant_id`` is the operator's own (the operator tenant, or a drill
        tenant the operator runs): its sinks may live in the operator's Slack workspace."""
        tenant = self.tenants.get(tenant_id)
        return tenant_id == self.operator_tenant or (
            tenant is not None and tenant.tier in OPERATOR_SIDE_TIERS
        )


_AT_PATH = re.compile(r" - at (?:`key` in )?`\$(?P<path>[^`]*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_PATH_STEP = re.compile(r"\.(?P<name>[^.\[]+)|\[(?P<index>\d+)\]|\[\.\.\.\]")


_INNER_FIELD = re.compile(r"^config (?P<name>[\w.\[\]]+): (?P<problem>.*)$", re.S)


def _field_of(exc: msgspec.ValidationError, raw: dict[Any, Any]) -> tuple[str, str]:
    """The dotted path of the culprit (an unknown key names itself) and the problem."""
    text = str(exc)
    match = _AT_PATH.search(text)
    problem = text[: match.start()] if match else text
    field = _name_entries(raw, match["path"]) if match else ""
    if unknown := _UNKNOWN_FIELD.match(problem):
        field += f".{unknown['name']}"
    if inner := _INNER_FIELD.match(problem):  # a ConfigError from a struct's __post_init__
        field += f".{inner['name']}"
        problem = inner["problem"]
    return field.lstrip(".") or "(top level)", problem


def _name_entries(raw: dict[Any, Any], path: str) -> str:
    """msgspec writes a mapping's key as ``[...]``; put back the key of the first entry
    that fails on its own (the one msgspec reported, as it stops at the first error)."""
    root: Any = raw
    node: Any = raw
    keys: list[Any] = []
    named = ""
    for step in _PATH_STEP.finditer(path):
        if step["name"] is not None:
            key: Any = step["name"]
        elif step["index"] is not None:
            key = int(step["index"])
        else:
            entries = node if isinstance(node, dict) else {}
            key = next((k for k in entries if _fails(_replace(root, keys, {k: entries[k]}))), None)
            if key is None:
                return named + path[step.start() :]
            root = _replace(root, keys, {key: entries[key]})
        named += f"[{key}]" if isinstance(key, int) else f".{key}"
        keys.append(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return named + path[step.end() :]
    return named


def _replace(root: Any, keys: list[Any], value: Any) -> Any:
    if not keys:
        return value
    copy = dict(root) if isinstance(root, dict) else list(root)
    copy[keys[0]] = _replace(root[keys[0]], keys[1:], value)
    return copy


def _fails(raw: Any) -> bool:
    try:
        msgspec.convert(raw, FileConfig)
    except (msgspec.ValidationError, ConfigError):
        return True
    return False


def parse_file_config(text: str, *, source: str = "config") -> FileConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, f"not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "the top level must be a mapping")
    try:
        config = msgspec.convert(raw, FileConfig)
    except msgspec.ValidationError as exc:
        field, problem = _field_of(exc, raw)
        if field.startswith("sinks.") and ("type" in problem.lower() or field.endswith(".type")):
            problem += f" (the sink types are: {', '.join(SINK_TYPES)})"
        raise ConfigError(field, problem) from exc
    for tenant_id in config.tenants:
        if not _TENANT_ID.match(tenant_id):
            raise ConfigError(f"tenants.{tenant_id}", "tenant ids are [a-z0-9_-], at most 63")
    return config


def _host_port(value: str | None, field: str) -> tuple[str, int] | None:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host:
        return (value, 53)
    try:
        return (host.strip("[]"), int(port))
    except ValueError as exc:
        raise ConfigError(field, f"{value!r} is not host:port") from exc


def _tenant_env(base: str, tenant_id: str, operator: str) -> str:
    """``BASE`` for the operator tenant, ``BASE_<TENANT>`` (upper case, ``-`` as ``_``)
    for the others."""
    if tenant_id == operator:
        return base
    return f"{base}_{tenant_id.upper().replace('-', '_')}"


def _heroku_drain(tenant_id: str, drain: HerokuDrain | None) -> HerokuDrain | None:
    if drain is None:
        return None
    field = f"tenants.{tenant_id}.heroku_drain"
    if unknown := sorted(c for c in drain.codes if not CODE_PATTERN.fullmatch(c)):
        raise ConfigError(f"{field}.codes", f"{unknown} are not Hxx, Rxx or crashed")
    if drain.quiet_s <= 0 or not drain.user:
        raise ConfigError(field, "user must be set and quiet_s positive seconds")
    return drain


def durability_of(env: Mapping[str, str]) -> Durability:
    """What a 202 waits for. ``disk``: the signal is in the fsynced journal under
    ``EYETOK_DATA_DIR``. ``postgres``: in the journal and committed in Postgres
    (``DATABASE_URL``), for a data directory that does not survive a crash. From
    ``EYETOK_DURABILITY``; unset, ``postgres`` on a Heroku dyno (``DYNO`` is set) and
    ``disk`` elsewhere."""
    value = env.get("EYETOK_DURABILITY", "").strip().lower()
    if not value:
        value = "postgres" if env.get("DYNO") else "disk"
        source = "DYNO is set (an ephemeral disk)" if env.get("DYNO") else ""
    else:
        source = f"EYETOK_DURABILITY={value}"
    if value not in ("disk", "postgres"):
        raise ConfigError("EYETOK_DURABILITY", f"{value!r} is not disk or postgres")
    if value == "postgres" and not env.get("DATABASE_URL"):
        raise ConfigError(
            "EYETOK_DURABILITY",
            f"{source}: postgres durability needs DATABASE_URL; set it, or set "
            "EYETOK_DURABILITY=disk to accept that a crash loses what this disk held",
        )
    return "postgres" if value == "postgres" else "disk"


def flag(env: Mapping[str, str], name: str) -> bool:
    """A feature flag from the environment: on (1/true/yes/on), off (unset, empty,
    0/false/no/off), anything else a :class:`ConfigError` naming it."""
    value = env.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"{env[name]!r} is not a flag value: use 1/true/on or 0/false/off")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve the YAML file (if ``EYETOK_CONFIG`` names one) and the environment."""
    env = os.environ if environ is None else environ
    path = env.get("EYETOK_CONFIG")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("EYETOK_CONFIG", f"cannot read {path}: {exc.strerror}") from exc
        file_config = parse_file_config(text, source=path)
    else:
        file_config = FileConfig()
    return settings_from(file_config, env)


def _check_delivery(options: DeliveryOptions) -> None:
    for name in ("max_age_s", "base_backoff_s", "max_backoff_s", "unverified_hold_s"):
        if not getattr(options, name) > 0:
            raise ConfigError(f"delivery.{name}", "must be a positive number of seconds")
    if options.notice_max_age_s is not None and options.notice_max_age_s < options.max_age_s:
        raise ConfigError(
            "delivery.notice_max_age_s",
            f"must be at least max_age_s ({options.max_age_s:g}): an operator notice must "
            "outlive the failures it reports",
        )


def settings_from(file_config: FileConfig, env: Mapping[str, str]) -> Settings:
    try:
        port = int(env.get("PORT", "8080"))
    except ValueError as exc:
        raise ConfigError("PORT", f"{env['PORT']!r} is not a port number") from exc
    if not 0 <= port <= 65535:
        raise ConfigError("PORT", f"{port} is out of range")

    operator = file_config.operator_tenant
    # "tenant: operator" on a sink means the operator tenant, whatever its id.
    sinks: dict[str, SinkConfig] = {
        sink_id: msgspec.structs.replace(sink, tenant=operator)
        if sink.tenant == OPERATOR_TENANT
        else sink
        for sink_id, sink in (dict(file_config.sinks) or {"slack": SlackSinkConfig()}).items()
    }
    tenant_configs = dict(file_config.tenants)
    tenant_configs.setdefault(operator, TenantConfig(tier="operator"))

    tiers = load_tier_defaults()
    tenants: dict[str, Tenant] = {}
    for tenant_id, tc in tenant_configs.items():
        if tc.tier not in tiers:
            raise ConfigError(
                f"tenants.{tenant_id}.tier",
                f"unknown tier {tc.tier!r} (the tiers are: {', '.join(tiers)})",
            )
        policy = tc.policy or (DEFAULT_POLICY if tenant_id == operator else EMPTY_POLICY)
        if file_config.faults.business_hours_in_utc:
            policy = msgspec.structs.replace(
                policy,
                business_hours=msgspec.structs.replace(policy.business_hours, zone="UTC"),
            )
        secret_env = tc.sentry_secret_env or (
            "SENTRY_CLIENT_SECRET"
            if tenant_id == operator
            else f"SENTRY_CLIENT_SECRET_{tenant_id.upper().replace('-', '_')}"
        )
        hook_secret_env = tc.webhook_secret_env or _tenant_env(
            "EYETOK_HOOK_SECRET", tenant_id, operator
        )
        hook_token_env = tc.hook_token_env or _tenant_env("EYETOK_HOOK_TOKEN", tenant_id, operator)
        hook_secret = env.get(hook_secret_env) or None
        if hook_secret is not None:
            try:
                decode_secret(hook_secret)
            except ValueError as exc:
                raise ConfigError(hook_secret_env, str(exc)) from exc
        for channel, routes in policy.routes.items():
            for i, route in enumerate(routes):
                field = f"tenants.{tenant_id}.policy.routes.{channel}[{i}].sink"
                if route.sink not in sinks:
                    raise ConfigError(
                        field,
                        f"no sink named {route.sink!r} (configured: {', '.join(sorted(sinks))})",
                    )
                owner = sinks[route.sink].tenant
                if owner != tenant_id:
                    raise ConfigError(
                        field,
                        f"sink {route.sink!r} belongs to tenant {owner!r}; a tenant's alerts go "
                        "only to its own sinks (give the tenant a policy of its own)",
                    )
        routed = [route.sink for routes in policy.routes.values() for route in routes]
        if tc.primary_sink is not None and tc.primary_sink not in routed:
            raise ConfigError(
                f"tenants.{tenant_id}.primary_sink",
                f"{tc.primary_sink!r} is not a sink this tenant routes to"
                f" (its routes name: {', '.join(sorted(set(routed))) or 'none'})",
            )
        escalation = tc.escalation
        if not 0 < escalation.ack_renotify_s < escalation.ack_escalate_s:
            raise ConfigError(
                f"tenants.{tenant_id}.escalation",
                "ack_renotify_s and ack_escalate_s must be positive seconds, "
                "the re-notification before the escalation",
            )
        if not escalation.digest_escalate_s > 0:
            raise ConfigError(
                f"tenants.{tenant_id}.escalation.digest_escalate_s", "must be positive seconds"
            )
        if escalation.secondary is not None:
            field = f"tenants.{tenant_id}.escalation.secondary.sink"
            secondary = escalation.secondary.sink
            if secondary not in sinks:
                raise ConfigError(
                    field, f"no sink named {secondary!r} (configured: {', '.join(sorted(sinks))})"
                )
            if sinks[secondary].tenant != tenant_id:
                raise ConfigError(
                    field,
                    f"sink {secondary!r} belongs to tenant {sinks[secondary].tenant!r}; "
                    "a tenant escalates only to its own sinks",
                )
        pd_secret_env = tc.pagerduty_webhook_secret_env or _tenant_env(
            "PAGERDUTY_WEBHOOK_SECRET", tenant_id, operator
        )
        tenants[tenant_id] = Tenant(
            escalation=escalation,
            pagerduty_webhook_secret=env.get(pd_secret_env) or None,
            pagerduty_webhook_secret_env=pd_secret_env,
            primary_sink=tc.primary_sink or (routed[0] if routed else None),
            tenant_id=tenant_id,
            tier=tc.tier,
            hourly_budget=tiers[tc.tier],
            sentry_secret=env.get(secret_env) or None,
            sentry_secret_env=secret_env,
            policy=policy,
            hook_secret=hook_secret,
            hook_token=env.get(hook_token_env) or None,
            hook_secret_env=hook_secret_env,
            hook_token_env=hook_token_env,
            heroku_drain=_heroku_drain(tenant_id, tc.heroku_drain),
            heroku_drain_password=env.get(tc.heroku_drain.password_env) or None
            if tc.heroku_drain is not None
            else None,
        )

    for field, route in (
        ("delivery.operator_notices.sink", file_config.delivery.operator_notices),
        ("budgets.cap_notices.sink", file_config.budgets.cap_notices),
    ):
        if route.sink not in sinks:
            raise ConfigError(
                field, f"no sink named {route.sink!r} (configured: {', '.join(sorted(sinks))})"
            )
    _check_delivery(file_config.delivery)
    check_people(file_config.people, tenant_configs)
    sup = file_config.suppression
    if sup.hold_s <= 0 or sup.quiet_s <= 0:
        raise ConfigError("suppression.hold_s", "hold_s and quiet_s must be positive seconds")
    if sup.min_tenants < 2:
        raise ConfigError(
            "suppression.min_tenants", "must be at least 2 (one tenant is never a cluster)"
        )
    if not 0.0 < sup.min_share <= 1.0:
        raise ConfigError("suppression.min_share", "must be a share above 0 and at most 1")
    for sink_id, sink in sinks.items():
        if sink.tenant not in tenant_configs:
            raise ConfigError(f"sinks.{sink_id}.tenant", f"no tenant named {sink.tenant!r}")
    sink_secrets = {
        sink_id: env[secret_env_of(sink)]
        for sink_id, sink in sinks.items()
        if env.get(secret_env_of(sink))
    }
    _refuse_tenant_slack_on_operator_token(sinks, sink_secrets, tenants, operator)
    sink_env = {
        name: env[name]
        for sink in sinks.values()
        for name in _optional_env_of(sink)
        if env.get(name)
    }
    oncall = env.get("EYETOK_ONCALL_SLACK_USER") or file_config.slack.oncall_user
    sop = env.get("EYETOK_SOP_URL") or file_config.slack.emergency_sop_url
    timeout_s = file_config.slack.request_timeout_s
    if not 0 < timeout_s <= 10:
        raise ConfigError("slack.request_timeout_s", "must be above 0 and at most 10 seconds")
    slack = SlackOptions(emergency_sop_url=sop, oncall_user=oncall, request_timeout_s=timeout_s)
    if file_config.ingest_queue < 1:
        raise ConfigError("ingest_queue", "must be at least 1")
    for name in ("idle_timeout_s", "read_timeout_s"):
        if not getattr(file_config.http, name) > 0:
            raise ConfigError(f"http.{name}", "must be positive seconds")
    if file_config.http.max_header_bytes < 1024:
        raise ConfigError("http.max_header_bytes", "must be at least 1024")
    prefixes = {tenant_env_prefix(t): t for t in tenants}
    log_level = env.get("EYETOK_LOG_LEVEL", file_config.log_level)
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            "EYETOK_LOG_LEVEL",
            f"{log_level!r} is not a log level (one of: {', '.join(LOG_LEVELS)})",
        )
    return Settings(
        port=port,
        data_dir=Path(env.get("EYETOK_DATA_DIR", ".eyetok")),
        operator_tenant=operator,
        tenants=tenants,
        sinks=sinks,
        sink_secrets=sink_secrets,
        sink_env=sink_env,
        slack_api_url=env.get("SLACK_API_URL", "https://slack.com/api/"),
        slack=slack,
        recognisers=file_config.recognisers,
        delivery=file_config.delivery,
        ingest_queue=file_config.ingest_queue,
        log_level=log_level,
        database_url=env.get("DATABASE_URL") or None,
        durability=durability_of(env),
        verification=file_config.verification,
        root_token=env.get("EYETOK_ROOT_TOKEN") or None,
        metrics_token=env.get("EYETOK_METRICS_TOKEN") or None,
        console_incidents=flag(env, "FLAG_CONSOLE_INCIDENTS"),
        secrets_key=env.get("EYETOK_SECRETS_KEY") or None,
        oncall=oncall_from(env),
        slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or None,
        public_url=(env.get("EYETOK_PUBLIC_URL") or f"http://localhost:{port}").rstrip("/"),
        dns_resolver=_host_port(env.get("EYETOK_DNS_RESOLVER"), "EYETOK_DNS_RESOLVER"),
        faults=file_config.faults,
        budgets=file_config.budgets,
        suppression=sup,
        schedules=resolve(
            file_config.schedules,
            reverify_cron=file_config.verification.reverify_cron,
            reverify_zone=file_config.verification.reverify_zone,
        ),
        routines=file_config.routines,
        retention=file_config.retention,
        http=file_config.http,
        playbooks=load_registry(
            file_config.playbooks, file_config.integrations, tenants=tenants, env=env
        ),
        people=file_config.people,
        tenant_env={
            name: value
            for name, value in env.items()
            if value and (name in SHARED_SINK_ENV or env_owner(name, prefixes) is not None)
        },
        freescout=file_config.freescout,
        freescout_link=link_from(file_config.freescout, env),
    )


SHARED_SINK_ENV = frozenset({"SMTP_URL", "PAGERDUTY_EVENTS_URL"})


def tenant_env_prefix(tenant_id: str) -> str:
    """``ACME_`` for tenant ``acme``: the environment a tenant's API sinks may name."""
    return tenant_id.upper().replace("-", "_") + "_"


def env_owner(name: str, prefixes: Mapping[str, str]) -> str | None:
    """The tenant whose API sinks may name the environment variable ``name`` (None:
    none may), given every tenant's prefix (``{"ACME_": "acme"}``). Where two prefixes
    both match (``ACME_`` and ``ACME_X_``) the longer one owns the name. Looks up only
    the name's own underscore-ended prefixes, so it costs the same for 50,000 tenants."""
    owner = None
    for i, char in enumerate(name[:-1]):
        if char == "_":
            owner = prefixes.get(name[: i + 1], owner)
    return owner


def _refuse_tenant_slack_on_operator_token(
    sinks: Mapping[str, SinkConfig],
    secrets: Mapping[str, str],
    tenants: Mapping[str, Tenant],
    operator: str,
) -> None:
    """A tenant's Slack sink that reads the operator's bot token (the same variable, or
    the same value) is in the operator's workspace: routed by the tenant, it could post
    into any of the operator's channels. Refused, unless the tenant is the operator's
    own (a drill tenant). Tokens that differ but share a workspace are caught when the
    sink's handshake asks Slack (``auth.test``)."""

    def operator_side(tenant_id: str) -> bool:
        tenant = tenants.get(tenant_id)
        return tenant_id == operator or (tenant is not None and tenant.tier in OPERATOR_SIDE_TIERS)

    slack = {s: c for s, c in sinks.items() if isinstance(c, SlackSinkConfig)}
    theirs = {s: c for s, c in slack.items() if operator_side(c.tenant)}
    names = {c.token_env for c in theirs.values()}
    values = {secrets[s] for s in theirs if s in secrets}
    for sink_id, config in sorted(slack.items()):
        if operator_side(config.tenant):
            continue
        if config.token_env in names or secrets.get(sink_id) in values:
            raise ConfigError(
                f"sinks.{sink_id}.token_env",
                f"{config.token_env} is the operator's Slack bot token: a sink of tenant "
                f"{config.tenant!r} in the operator's workspace could post into any of the "
                "operator's channels; give it a bot token of the tenant's own workspace",
            )


def tenant_env_allowed(tenant_id: str, name: str, tenants: Iterable[str]) -> bool:
    """Whether a sink written through the tenant API may name the environment variable
    ``name``: a shared relay (``SMTP_URL``) or the tenant's own (``ACME_…``), never the
    operator's credentials or another tenant's."""
    if name in SHARED_SINK_ENV:
        return True
    return env_owner(name, {tenant_env_prefix(t): t for t in tenants}) == tenant_id
