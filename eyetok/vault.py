"""Credentials from the Infisical vault (ADR decision 3: read at dyno start, re-read on
SIGHUP so a rotation needs no redeploy).

With ``INFISICAL_CLIENT_ID`` set, EyeTok logs in with the machine identity (universal
auth) through the official ``infisicalsdk`` client, lists the secrets of the project's
environment under ``INFISICAL_SECRET_PATH`` (default ``/Raxx/Eyetok/``) and resolves its
settings from the environment with the vault's values on top: a credential the vault does
not hold falls back to the environment. Without any ``INFISICAL_*`` setting the environment
is all there is, as before.

Errors (all :class:`~eyetok.errors.ConfigError`, naming the setting at fault):

- some ``INFISICAL_*`` settings but not the four a login needs;
- the vault refused the machine identity, or does not know the project or environment;
- the vault did not answer (unreachable, or not Infisical).

At start-up they stop the process; on SIGHUP the credentials in use stay in use.
Names only ever leave this module, never values.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Literal

import msgspec

from eyetok.config import Settings, load_settings, secret_env_of
from eyetok.errors import ConfigError
from eyetok.sinks.webhook import WebhookSinkConfig

DEFAULT_PATH = "/Raxx/Eyetok/"
DEFAULT_SITE_URL = "https://app.infisical.com"
REQUEST_TIMEOUT_S = 10.0  # one call to the vault (the SDK sets none)
_REQUIRED = (
    "INFISICAL_CLIENT_ID",
    "INFISICAL_CLIENT_SECRET",
    "INFISICAL_PROJECT_ID",
    "INFISICAL_ENVIRONMENT",
)

Origin = Literal["vault", "environment", "unset"]


class VaultAccess(msgspec.Struct, frozen=True, kw_only=True):
    """Where the vault is and who EyeTok is to it (the client secret is never logged)."""

    client_id: str
    client_secret: str
    project_id: str
    environment: str
    site_url: str = DEFAULT_SITE_URL
    path: str = DEFAULT_PATH

    def __repr__(self) -> str:  # keep the client secret out of tracebacks
        return f"VaultAccess(site_url={self.site_url!r}, path={self.path!r})"


def access_from(env: Mapping[str, str]) -> VaultAccess | None:
    """The vault's settings, or None when no ``INFISICAL_*`` setting is present."""
    present = [name for name in env if name.startswith("INFISICAL_") and env[name]]
    if not present:
        return None
    missing = [name for name in _REQUIRED if not env.get(name)]
    if missing:
        raise ConfigError(
            missing[0],
            f"the vault needs {', '.join(_REQUIRED)} (set: {', '.join(sorted(present))}); "
            "unset every INFISICAL_* setting to read credentials from the environment only",
        )
    path = env.get("INFISICAL_SECRET_PATH") or DEFAULT_PATH
    if not path.startswith("/"):
        raise ConfigError("INFISICAL_SECRET_PATH", f"{path!r} is not an absolute secret path")
    return VaultAccess(
        client_id=env["INFISICAL_CLIENT_ID"],
        client_secret=env["INFISICAL_CLIENT_SECRET"],
        project_id=env["INFISICAL_PROJECT_ID"],
        environment=env["INFISICAL_ENVIRONMENT"],
        site_url=(env.get("INFISICAL_SITE_URL") or DEFAULT_SITE_URL).rstrip("/"),
        path=path,
    )


def read_vault(access: VaultAccess) -> dict[str, str]:
    """Every secret under the access's path: name -> value. Blocking (run it in a worker
    thread inside trio). The vault's client (and boto3, which it pulls in) is imported
    here, so a deployment without INFISICAL_* never loads it."""
    import requests
    from infisical_sdk import InfisicalSDKClient  # type: ignore[import-untyped]
    from infisical_sdk.infisical_requests import (  # type: ignore[import-untyped]
        APIError,
        InfisicalError,
    )

    client = InfisicalSDKClient(host=access.site_url, cache_ttl=None)
    session = client.api.session
    session.request = functools.partial(session.request, timeout=REQUEST_TIMEOUT_S)
    try:
        try:
            client.auth.universal_auth.login(access.client_id, access.client_secret)
        except APIError as exc:
            raise ConfigError(
                "INFISICAL_CLIENT_ID",
                f"the vault at {access.site_url} refused the machine identity ({exc})",
            ) from exc
        try:
            listed = client.secrets.list_secrets(
                environment_slug=access.environment,
                secret_path=access.path,
                project_id=access.project_id,
                expand_secret_references=True,
                include_imports=False,
            )
        except APIError as exc:
            raise ConfigError(
                "INFISICAL_PROJECT_ID",
                f"the vault would not list {access.path} in environment "
                f"{access.environment!r} of project {access.project_id!r} "
                f"({exc})",
            ) from exc
    except (InfisicalError, requests.RequestException, OSError) as exc:
        raise ConfigError(
            "INFISICAL_SITE_URL", f"the vault at {access.site_url} did not answer: {exc}"
        ) from exc
    finally:
        client.close()
    return {secret.secretKey: secret.secretValue for secret in listed.secrets}


class Loaded(msgspec.Struct, frozen=True, kw_only=True):
    """Settings resolved from the vault and the environment, and where each credential
    came from (variable name -> origin)."""

    settings: Settings
    origins: dict[str, Origin]
    vault: str | None  # the vault's site and path, None without one


def load(environ: Mapping[str, str] | None = None) -> Loaded:
    """The settings, the vault's values over the environment's. Blocking."""
    env = os.environ if environ is None else environ
    access = access_from(env)
    held = read_vault(access) if access is not None else {}
    # the vault stands in for the dyno's environment, except for how to reach the vault
    held = {k: v for k, v in held.items() if not k.startswith("INFISICAL_")}
    settings = load_settings({**env, **held})
    origins: dict[str, Origin] = {}
    for name in credential_variables(settings):
        if name in held:
            origins[name] = "vault"
        elif env.get(name):
            origins[name] = "environment"
        else:
            origins[name] = "unset"
    where = None if access is None else f"{access.site_url} {access.path}"
    return Loaded(settings=settings, origins=origins, vault=where)


def credential_variables(settings: Settings) -> list[str]:
    """The name of every variable a credential of ``settings`` is read from."""
    names: list[str] = []
    for sink in settings.sinks.values():
        names.append(secret_env_of(sink))
        if isinstance(sink, WebhookSinkConfig) and sink.previous_secret_env:
            names.append(sink.previous_secret_env)
    for tenant in settings.tenants.values():
        names += [tenant.sentry_secret_env, tenant.hook_secret_env, tenant.hook_token_env]
    names += ["EYETOK_ROOT_TOKEN", "SLACK_SIGNING_SECRET", "DATABASE_URL", "EYETOK_SECRETS_KEY"]
    if settings.oncall is not None:
        names += ["EYETOK_SCIM_TOKEN", "PAGERDUTY_API_TOKEN"]
    return sorted({name for name in names if name})


def origins_line(loaded: Loaded) -> dict[str, object]:
    """The fields of the one log line saying where each credential came from (names only)."""
    out: dict[str, list[str]] = {"vault": [], "environment": [], "unset": []}
    for name, origin in sorted(loaded.origins.items()):
        out[origin].append(name)
    return {
        "vault": loaded.vault or "none",
        "from_vault": out["vault"],
        "from_environment": out["environment"],
        "unset": out["unset"],
    }
