"""The PagerDuty ownership handshake: OAuth 2.0 authorization code with PKCE (RFC 7636,
``S256``), against PagerDuty's identity endpoints.

1. :func:`begin_authorization` (or :func:`new_verifier`, :func:`challenge`,
   :func:`new_state` and :func:`authorize_url` by hand) makes a one-time verifier and a
   ``state``; the :class:`PendingAuthorization` is kept server-side, the URL goes to the
   customer's browser;
2. PagerDuty redirects to ``oauth_redirect_uri`` with ``code`` (and our ``state``);
   :func:`parse_callback` reads the query, :func:`match_callback` finds the pending
   authorization by its ``state`` (an unknown state is ``invalid_state``);
3. :func:`exchange_code` posts the code with the verifier; PagerDuty answers tokens only
   if ``BASE64URL(SHA256(verifier))`` is the challenge of step 1 (else ``invalid_grant``);
4. :func:`refresh` trades the refresh token for new tokens before they expire.

A pending authorization outlives a restart (it is state in the history and the Postgres
mirror, so a fresh dyno completes it too). The callback needs the verifier back, so it
is stored, but sealed under the ``state`` (:func:`seal_verifier`): XOR with an
HMAC-SHA256 keystream keyed by the state, and the state itself is kept only as its
SHA-256 (the lookup key). Threat model: someone who reads the history or the mirror
learns neither the state nor the verifier, so a stolen authorization code cannot be
exchanged with what the database holds; whoever holds the state (the customer's
browser, the redirect) can unseal it, and that is exactly who completes the handshake.
Unsealing checks the result against the stored S256 challenge, so a wrong state or a
tampered row is refused rather than sent. The verifier is single-use and short-lived
(:data:`AUTHORIZATION_TTL`); a server-side key would add key management for little.

Every failure is an :class:`OAuthError` carrying the OAuth ``error`` code; ``retryable``
says whether the same request may work later (network trouble, 5xx, 429). Time is
passed in (``now``), never read here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit

import httpx
import msgspec

from actors.sinks.pagerduty.config import DEFAULT_SCOPE
from eyetok.errors import ConfigError, EyeTokError
from eyetok.guard import scrub
from eyetok.sinks.pagerduty import PagerDutySinkConfig

__all__ = [
    "OAuthError",
    "OAuthTokens",
    "PendingAuthorization",
    "authorize_url",
    "begin_authorization",
    "challenge",
    "exchange_code",
    "is_verifier",
    "match_callback",
    "new_state",
    "new_verifier",
    "parse_callback",
    "refresh",
    "seal_verifier",
    "unseal_verifier",
]

VERIFIER_BYTES = 64  # 64 random bytes -> 86 base64url characters (RFC 7636: 43..128)
STATE_BYTES = 32
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 section 4.1
_MAX_DESCRIPTION = 300
AUTHORIZATION_TTL = timedelta(hours=1)  # an authorization not called back by then is gone
_SEAL_LABEL = b"eyetok pkce verifier seal v1"


class OAuthError(EyeTokError):
    """The handshake failed. ``error`` is the OAuth error code (``invalid_grant``,
    ``invalid_state``, ``access_denied``, ``server_error`` ...), ``status`` the HTTP status
    of the token endpoint's answer when there was one."""

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.status = status
        self.retryable = retryable


class OAuthTokens(msgspec.Struct, frozen=True, kw_only=True):
    """What the token endpoint granted. ``repr`` hides the tokens."""

    access_token: str
    refresh_token: str | None
    token_type: str
    scope: str
    expires_at: datetime | None  # None: the server did not say

    def expires_within(self, now: datetime, margin: timedelta = timedelta(minutes=5)) -> bool:
        """Whether the access token is expired, or will be within ``margin`` of ``now``."""
        return self.expires_at is not None and self.expires_at - margin <= now

    def __repr__(self) -> str:
        refresh = "***" if self.refresh_token else None
        return (
            f"OAuthTokens(access_token='***', refresh_token={refresh!r}, "
            f"token_type={self.token_type!r}, scope={self.scope!r}, "
            f"expires_at={self.expires_at!r})"
        )


class PendingAuthorization(msgspec.Struct, frozen=True, kw_only=True):
    """A handshake between the redirect to PagerDuty and its callback (kept server-side)."""

    sink_id: str
    state: str
    verifier: str
    issued_at: datetime

    def __repr__(self) -> str:
        return (
            f"PendingAuthorization(sink_id={self.sink_id!r}, state='***', verifier='***', "
            f"issued_at={self.issued_at!r})"
        )


# --- PKCE ------------------------------------------------------------------------------


def is_verifier(text: str) -> bool:
    """Whether ``text`` is a valid RFC 7636 code verifier (43-128 unreserved characters)."""
    return _VERIFIER.fullmatch(text) is not None


def new_verifier(nbytes: int = VERIFIER_BYTES) -> str:
    """A fresh high-entropy code verifier: ``nbytes`` random bytes, base64url, unpadded."""
    if not 32 <= nbytes <= 96:
        raise ValueError("a verifier takes 32 to 96 random bytes (43 to 128 characters)")
    return secrets.token_urlsafe(nbytes)


def challenge(verifier: str) -> str:
    """The ``S256`` code challenge: ``BASE64URL(SHA256(ASCII(verifier)))`` without padding."""
    if not is_verifier(verifier):
        raise ValueError("not an RFC 7636 code verifier (43-128 of A-Z a-z 0-9 - . _ ~)")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_state() -> str:
    """An unguessable ``state`` binding the callback to the browser that started it."""
    return secrets.token_urlsafe(STATE_BYTES)


def _keystream(state: str, length: int) -> bytes:
    key = state.encode("utf-8")
    blocks = (
        hmac.new(key, _SEAL_LABEL + i.to_bytes(4, "big"), hashlib.sha256).digest()
        for i in range((length + 31) // 32)
    )
    return b"".join(blocks)[:length]


def seal_verifier(verifier: str, state: str) -> str:
    """``verifier`` sealed under ``state`` (base64url): what is stored between the
    redirect and the callback (the module docstring says why this way)."""
    data = verifier.encode("ascii")
    sealed = bytes(a ^ b for a, b in zip(data, _keystream(state, len(data)), strict=True))
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def unseal_verifier(sealed: str, *, state: str, expected_challenge: str) -> str:
    """The verifier :func:`seal_verifier` sealed under ``state``; raises
    :class:`OAuthError` (``invalid_state``) unless its S256 challenge is
    ``expected_challenge`` (a wrong state, or a tampered row)."""
    try:
        data = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
    except ValueError as exc:
        raise OAuthError("invalid_state", "the stored authorization is unreadable") from exc
    opened = bytes(a ^ b for a, b in zip(data, _keystream(state, len(data)), strict=True))
    verifier = opened.decode("ascii", errors="replace")
    if not is_verifier(verifier) or not secrets.compare_digest(
        challenge(verifier), expected_challenge
    ):
        raise OAuthError("invalid_state", "this state does not open the stored authorization")
    return verifier


# --- leg 1: the authorization request --------------------------------------------------


def _client_of(config: PagerDutySinkConfig) -> tuple[str, str]:
    if config.oauth_client_id is None:
        raise ConfigError("oauth_client_id", "the PKCE handshake needs the app's client id")
    if config.oauth_redirect_uri is None:
        raise ConfigError("oauth_redirect_uri", "the PKCE handshake needs a redirect URI")
    return config.oauth_client_id, config.oauth_redirect_uri


def authorize_url(
    config: PagerDutySinkConfig, *, state: str, challenge: str, scope: str = DEFAULT_SCOPE
) -> str:
    """Where to send the customer's browser to authorise EyeTok's app."""
    client_id, redirect_uri = _client_of(config)
    query = urlencode(
        {
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    base = config.oauth_authorize_url
    joiner = "&" if urlsplit(base).query else "?"
    return f"{base}{joiner}{query}"


def begin_authorization(
    config: PagerDutySinkConfig, *, sink_id: str, now: datetime, scope: str = DEFAULT_SCOPE
) -> tuple[PendingAuthorization, str]:
    """A new pending authorization for ``sink_id`` and the URL that starts it."""
    verifier = new_verifier()
    pending = PendingAuthorization(
        sink_id=sink_id, state=new_state(), verifier=verifier, issued_at=now
    )
    url = authorize_url(config, state=pending.state, challenge=challenge(verifier), scope=scope)
    return pending, url


# --- leg 2: the callback ---------------------------------------------------------------


def parse_callback(query: Mapping[str, str]) -> tuple[str, str]:
    """``(state, code)`` from the redirect's query; an ``error`` there (the customer said
    no: ``access_denied``) or a missing part is an :class:`OAuthError`."""
    if error := query.get("error"):
        raise OAuthError(error, _clip(query.get("error_description", "")))
    state = query.get("state", "")
    code = query.get("code", "")
    if not state:
        raise OAuthError("invalid_state", "the callback carries no state")
    if not code:
        raise OAuthError("invalid_request", "the callback carries no authorization code")
    return state, code


def match_callback(
    pending: Mapping[str, PendingAuthorization], *, state: str
) -> PendingAuthorization:
    """The pending authorization the callback's ``state`` belongs to (``pending`` is keyed
    by state); an unknown or empty state is ``invalid_state``: a forged or replayed
    callback, or one for a handshake that was already finished or forgotten."""
    found = pending.get(state) if state else None
    if found is None or not secrets.compare_digest(found.state, state):
        raise OAuthError("invalid_state", "no pending PagerDuty authorization has this state")
    return found


# --- leg 3: the token endpoint ---------------------------------------------------------


class _TokenAnswer(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str
    refresh_token: str | None = None
    scope: str = ""
    expires_in: int | float | None = None


class _ErrorAnswer(msgspec.Struct, kw_only=True):
    error: str
    error_description: str = ""


def _clip(text: str) -> str:
    return scrub(" ".join(text.split()))[:_MAX_DESCRIPTION]


async def _token_request(
    config: PagerDutySinkConfig,
    form: dict[str, str],
    *,
    client: httpx.AsyncClient,
    now: datetime,
    previous_refresh: str | None = None,
) -> OAuthTokens:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        response = await client.post(
            config.oauth_token_url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=config.timeout_s,
        )
    except httpx.TransportError as exc:  # includes timeouts
        raise OAuthError(
            "temporarily_unavailable",
            _clip(f"cannot reach the token endpoint: {type(exc).__name__}: {exc}"),
            retryable=True,
        ) from exc
    status = response.status_code
    retryable = status >= 500 or status == 429
    if status != 200:
        try:
            failed = msgspec.json.decode(response.content, type=_ErrorAnswer)
        except msgspec.DecodeError:
            error = "server_error" if status >= 500 else "invalid_response"
            raise OAuthError(error, f"HTTP {status}", status=status, retryable=retryable) from None
        raise OAuthError(
            failed.error, _clip(failed.error_description), status=status, retryable=retryable
        )
    try:
        granted = msgspec.json.decode(response.content, type=_TokenAnswer)
    except msgspec.DecodeError as exc:
        raise OAuthError("invalid_response", _clip(f"token answer: {exc}"), status=status) from exc
    if granted.token_type.lower() != "bearer":
        raise OAuthError("unsupported_token_type", _clip(granted.token_type), status=status)
    if not granted.access_token:
        raise OAuthError("invalid_response", "empty access_token", status=status)
    expires_at = (
        now + timedelta(seconds=granted.expires_in)
        if granted.expires_in is not None and granted.expires_in > 0
        else None
    )
    return OAuthTokens(
        access_token=granted.access_token,
        # RFC 6749 section 6: without a new refresh token the old one stays good.
        refresh_token=granted.refresh_token or previous_refresh,
        token_type=granted.token_type,
        scope=granted.scope,
        expires_at=expires_at,
    )


async def exchange_code(
    config: PagerDutySinkConfig,
    *,
    code: str,
    verifier: str,
    client: httpx.AsyncClient,
    now: datetime,
    client_secret: str | None = None,
) -> OAuthTokens:
    """Trade the callback's ``code`` and the handshake's ``verifier`` for tokens.

    ``client_secret`` only for a Scoped OAuth app (a PKCE public client has none)."""
    client_id, redirect_uri = _client_of(config)
    if not is_verifier(verifier):
        raise OAuthError("invalid_request", "the code verifier is not RFC 7636-shaped")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }
    if client_secret:
        form["client_secret"] = client_secret
    return await _token_request(config, form, client=client, now=now)


async def refresh(
    config: PagerDutySinkConfig,
    *,
    refresh_token: str,
    client: httpx.AsyncClient,
    now: datetime,
    client_secret: str | None = None,
) -> OAuthTokens:
    """New tokens for ``refresh_token``. PagerDuty documents ``client_secret`` as required
    for a refresh, even for apps that ran PKCE; pass it when the app has one."""
    if config.oauth_client_id is None:
        raise ConfigError("oauth_client_id", "refreshing needs the app's client id")
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": config.oauth_client_id,
    }
    if client_secret:
        form["client_secret"] = client_secret
    return await _token_request(
        config, form, client=client, now=now, previous_refresh=refresh_token
    )
