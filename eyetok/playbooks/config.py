"""The playbook registry's configuration: ``integrations:`` and ``playbooks:``.

A playbook matches incidents (tenant, SEV channel, rule, a title regex, tags, source)
and names read-only triage steps and at most one remediation. Every step and remediation
is a typed action: a tagged union on ``kind``, so an unknown kind or parameter is a
:class:`~eyetok.errors.ConfigError` naming its field path (``playbooks[0].remediation.
action.dyno``). Credentials are never in this file: an integration names the environment
variable that holds its token.

Refused at load, with the field path:
- a triage step whose kind is not read-only (triage runs by itself: on SEV3 it is the
  only thing EyeTok does without a human, so it may not change anything);
- a playbook that serves SEV1 (no autonomous action on SEV1, not even a proposal);
- a title pattern that is not a regular expression; a playbook naming no channel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

from eyetok.errors import ConfigError
from eyetok.messages import Incident, IncidentAction, IncidentChanged, SevChannel

_QUIET = (SevChannel.SEV2, SevChannel.SEV2_5, SevChannel.SEV3)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class _Kind(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    """An action's parameters; ``kind`` is the tag."""


class HerokuRestartDyno(_Kind, frozen=True, tag="heroku.restart_dyno"):
    """``DELETE /apps/{app}/dynos/{dyno}``: restart one dyno (``web.1``) or every dyno of
    a process type (``web``)."""

    app: str
    dyno: str


class HerokuScale(_Kind, frozen=True, tag="heroku.scale"):
    """``PATCH /apps/{app}/formation/{type}``: set a process type's quantity (and size)."""

    app: str
    type: str
    quantity: Annotated[int, msgspec.Meta(ge=0, le=100)]
    size: str | None = None


class SentryLatestEvent(_Kind, frozen=True, tag="sentry.latest_event"):
    """``GET /api/0/issues/{issue}/events/latest/`` (issue: default, the incident's
    dedup key, which is the Sentry issue id for Sentry signals)."""

    issue: str | None = None


class SentryResolveIssue(_Kind, frozen=True, tag="sentry.resolve_issue"):
    """``PUT /api/0/issues/{issue}/`` ``{"status": "resolved"}``."""

    issue: str | None = None


class SentryIgnoreIssue(_Kind, frozen=True, tag="sentry.ignore_issue"):
    """``PUT /api/0/issues/{issue}/`` ``{"status": "ignored"}``."""

    issue: str | None = None


class JsonExpectation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The answer's JSON at ``path`` (dotted keys) equals ``equals``."""

    path: str
    equals: str | int | float | bool | None


class HttpCheck(_Kind, frozen=True, tag="http.check"):
    """A read-only ``GET url``: found healthy when the status is ``expect_status`` (and
    the JSON condition holds, when given)."""

    url: str
    expect_status: Annotated[int, msgspec.Meta(ge=100, le=599)] = 200
    expect_json: JsonExpectation | None = None

    def __post_init__(self) -> None:
        _check_url(self.url)


class SignedHttp(_Kind, frozen=True, tag="http"):
    """A generic call to your own endpoint, signed per Standard Webhooks with the secret
    in ``secret_env`` (``whsec_...``). It may change things: never read-only."""

    url: str
    secret_env: str
    method: Literal["POST", "PUT", "PATCH", "DELETE"] = "POST"
    body: dict[str, str | int | float | bool | None] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_url(self.url)


Action = (
    HerokuRestartDyno
    | HerokuScale
    | SentryLatestEvent
    | SentryResolveIssue
    | SentryIgnoreIssue
    | HttpCheck
    | SignedHttp
)

READ_ONLY: frozenset[type[_Kind]] = frozenset({SentryLatestEvent, HttpCheck})


def kind_of(action: Action) -> str:
    return str(msgspec.inspect.type_info(type(action)).tag)  # type: ignore[attr-defined]


def is_read_only(action: Action) -> bool:
    return type(action) in READ_ONLY


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError("url", f"{url!r} is not an http(s) URL")


class EscalateIf(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a triage step's finding says the incident is worse: recommend ``to``.
    ``finding`` names the findings that count (``failed``: the answer was not the one
    expected; ``unreachable``: no answer)."""

    to: Literal["SEV1", "SEV2", "SEV2.5"]
    finding: tuple[Literal["failed", "unreachable"], ...] = ("failed", "unreachable")


class Step(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    action: Action
    escalate_if: EscalateIf | None = None


class Remediation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    action: Action
    # two distinct approvers, neither of them the proposer
    high_impact: bool = False


class Match(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every given criterion must hold; an empty list or mapping is no criterion."""

    sev: tuple[Literal["SEV2", "SEV2.5", "SEV3"], ...]
    rule: tuple[str, ...] = ()
    title: str | None = None  # a regular expression, searched in the incident's title
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    source: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sev:
            raise ConfigError("sev", "name at least one channel (SEV2, SEV2.5, SEV3)")
        if self.title is not None:
            try:
                re.compile(self.title)
            except re.error as exc:
                raise ConfigError(
                    "title", f"{self.title!r} is not a regular expression: {exc}"
                ) from exc


class Playbook(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    match: Match
    tenant: str | None = None  # None: every tenant
    triage: tuple[Step, ...] = ()
    remediation: Remediation | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError("name", f"{self.name!r}: playbook names are [a-z0-9_.-]")
        for index, step in enumerate(self.triage):
            if not is_read_only(step.action):
                why = (
                    "a SEV3 playbook's triage runs by itself and may not change anything"
                    if "SEV3" in self.match.sev
                    else "triage runs by itself and may not change anything"
                )
                raise ConfigError(
                    f"triage[{index}].action",
                    f"{kind_of(step.action)} is not read-only: {why}; "
                    f"put it under remediation (it then waits for approval)",
                )
        if not self.triage and self.remediation is None:
            raise ConfigError("triage", "a playbook names triage steps, a remediation or both")

    def matches(self, incident: Incident, *, source: str, tags: Mapping[str, str]) -> bool:
        m = self.match
        channel = incident.sev_channel
        return (
            channel is not None
            and channel.value in m.sev
            and (self.tenant is None or self.tenant == incident.tenant)
            and (not m.rule or incident.rule in m.rule)
            and (m.title is None or re.search(m.title, incident.title) is not None)
            and all(tags.get(k) == v for k, v in m.tags.items())
            and (not m.source or source in m.source)
        )


class HerokuIntegration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_url: str = "https://api.heroku.com"
    token_env: str = "HEROKU_API_TOKEN"


class SentryIntegration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_url: str = "https://sentry.io"
    token_env: str = "SENTRY_API_TOKEN"


class Integrations(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where the built-in kinds call, and which environment variable holds each token."""

    heroku: HerokuIntegration = HerokuIntegration()
    sentry: SentryIntegration = SentryIntegration()
    timeout_s: Annotated[float, msgspec.Meta(gt=0, le=30)] = 10.0


class Registry(msgspec.Struct, frozen=True, kw_only=True):
    """The loaded playbooks, in file order (the first match wins), with where their
    actions call and the credentials they need (values from the environment, never
    logged: :meth:`secret` is the one reader)."""

    playbooks: tuple[Playbook, ...] = ()
    integrations: Integrations = Integrations()
    env: dict[str, str] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:  # the env holds credentials
        return f"Registry({len(self.playbooks)} playbooks)"

    def match(
        self, incident: Incident, *, source: str = "", tags: Mapping[str, str] | None = None
    ) -> Playbook | None:
        if incident.sev_channel is SevChannel.SEV1:
            return None  # no autonomous action on SEV1, ever
        seen = tags or {}
        return next(
            (p for p in self.playbooks if p.matches(incident, source=source, tags=seen)), None
        )

    def hears(self, change: IncidentChanged) -> bool:
        """Whether the playbooks actor hears of ``change`` (the router asks): an opening
        a playbook may match, a resolve (its proposals are withdrawn), or a SEV3
        incident's repeat recommending a louder channel."""
        incident = change.incident
        if incident is None or incident.sev_channel not in _QUIET:
            return False
        if change.action in (IncidentAction.OPEN, IncidentAction.RESOLVE):
            return bool(self.playbooks)  # a resolve withdraws what waits for approval
        return (
            change.action is IncidentAction.UPDATE
            and incident.sev_channel is SevChannel.SEV3
            and incident.escalation_recommended is not None
        )

    def named(self, name: str) -> Playbook | None:
        return next((p for p in self.playbooks if p.name == name), None)

    def secret(self, name: str) -> str | None:
        return self.env.get(name) or None


def needed_env(playbooks: tuple[Playbook, ...], integrations: Integrations) -> set[str]:
    """The environment variables the playbooks' actions read."""
    names: set[str] = set()
    for playbook in playbooks:
        actions = [s.action for s in playbook.triage]
        if playbook.remediation is not None:
            actions.append(playbook.remediation.action)
        for action in actions:
            match action:
                case HerokuRestartDyno() | HerokuScale():
                    names.add(integrations.heroku.token_env)
                case SentryLatestEvent() | SentryResolveIssue() | SentryIgnoreIssue():
                    names.add(integrations.sentry.token_env)
                case SignedHttp(secret_env=secret_env):
                    names.add(secret_env)
                case HttpCheck():
                    pass
    return names


def load_registry(
    playbooks: tuple[Playbook, ...],
    integrations: Integrations,
    *,
    tenants: Mapping[str, object],
    env: Mapping[str, str],
) -> Registry:
    """The registry, refusing a playbook of an unknown tenant or a repeated name."""
    seen: set[str] = set()
    for index, playbook in enumerate(playbooks):
        if playbook.name in seen:
            raise ConfigError(f"playbooks[{index}].name", f"{playbook.name!r} is used twice")
        seen.add(playbook.name)
        if playbook.tenant is not None and playbook.tenant not in tenants:
            raise ConfigError(f"playbooks[{index}].tenant", f"no tenant named {playbook.tenant!r}")
    names = needed_env(playbooks, integrations)
    return Registry(
        playbooks=playbooks,
        integrations=integrations,
        env={name: env[name] for name in sorted(names) if env.get(name)},
    )
