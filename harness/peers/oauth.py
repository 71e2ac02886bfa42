"""A local fake OAuth 2.0 authorization server with PKCE (RFC 6749 + RFC 7636, ``S256``
only), shaped like PagerDuty's identity endpoints.

Standard library only: a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread.

* ``GET /oauth/authorize?response_type=code&client_id=…&redirect_uri=…&state=…&scope=…
  &code_challenge=…&code_challenge_method=S256`` stands for a customer who logs in and
  approves: ``302`` to ``redirect_uri?code=…&state=…&subdomain=fake``. An unknown client or
  an unregistered redirect URI is a ``400`` page (never a redirect, RFC 6749 4.1.2.1);
  other problems redirect with ``error=…`` (``invalid_request`` for a missing challenge
  or a method other than S256, ``unsupported_response_type``; ``access_denied`` after
  :meth:`FakeOAuth.deny_next`). Tests may skip HTTP and call :meth:`FakeOAuth.approve`.
* ``POST /oauth/token`` (form-encoded):
  ``grant_type=authorization_code`` checks the code (known, unexpired, never presented
  before), that ``client_id`` and ``redirect_uri`` are the ones it was issued for, and
  that ``BASE64URL(SHA256(code_verifier))`` is its challenge; any failure is
  ``400 {"error": "invalid_grant"}``. A code is spent the first time it is presented,
  right or wrong, and presenting it again also revokes the tokens it bought (RFC 6749
  4.1.2). ``grant_type=refresh_token`` returns new tokens and retires the old refresh
  token. Tokens come with ``expires_in``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from harness.peers.base import HttpPeer, PeerHTTPHandler

__all__ = ["AuthorizeError", "FakeOAuth", "Grant", "TokenRequest", "s256"]

JSONDict = dict[str, Any]

DEFAULT_CLIENT_ID = "eyetok-pagerduty-app"
DEFAULT_REDIRECT_URI = "https://eyetok.example/oauth/pagerduty/callback"
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class AuthorizeError(Exception):
    """An authorization request the fake refuses. ``redirect`` says whether the error goes
    back to the client (False: the redirect URI itself cannot be trusted)."""

    def __init__(self, error: str, description: str, *, redirect: bool = True) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.redirect = redirect


class _TokenError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


@dataclass
class Grant:
    """One authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    state: str | None
    issued_at: float  # time.monotonic()
    presented: bool = False
    tokens: list[str] = field(default_factory=list)  # access + refresh tokens it bought


@dataclass(frozen=True)
class TokenRequest:
    """One call to the token endpoint and its outcome."""

    form: dict[str, str] = field(hash=False)
    status: int
    error: str | None


class _Handler(PeerHTTPHandler):
    server_version = "FakeOAuth/1.0"
    disable_nagle_algorithm = True
    timeout = 120

    @property
    def _fake(self) -> FakeOAuth:
        fake = self.peer
        assert isinstance(fake, FakeOAuth)
        return fake

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/oauth/authorize":
            self._send_json(404, {"error": "not_found"}, {})
            return
        status, headers, payload = self._fake._authorize(url.query)
        self._send_json(status, payload, headers)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length > 0 else b""
        if url.path != "/oauth/token":
            self._send_json(404, {"error": "not_found"}, {})
            return
        content_type = self.headers.get_content_type() if self.headers.get("Content-Type") else ""
        status, payload = self._fake._token(content_type, data)
        self._send_json(status, payload, {"Cache-Control": "no-store", "Pragma": "no-cache"})


class FakeOAuth(HttpPeer):
    """A fake authorization server (authorize + token endpoints). Thread-safe."""

    label = "FakeOAuth"
    thread_name = "fake-oauth-{port}"
    handler = _Handler

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        redirect_uris: Sequence[str] = (DEFAULT_REDIRECT_URI,),
        client_secret: str | None = None,  # when set, a refresh must present it
        expires_in: int = 3600,
        code_ttl: float = 600.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.client_id = client_id
        self.redirect_uris = tuple(redirect_uris)
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.code_ttl = code_ttl
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, str] = {}  # access token -> scope
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (client_id, scope)
        self._requests: list[TokenRequest] = []
        self._deny: str | None = None

    # -- where it is ----------------------------------------------------------

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/oauth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token"

    # -- inspection and control ----------------------------------------------

    @property
    def token_requests(self) -> list[TokenRequest]:
        with self._cond:
            return list(self._requests)

    def is_active(self, token: str) -> bool:
        """Whether an access or refresh token is currently honoured."""
        with self._cond:
            return token in self._access or token in self._refresh

    def deny_next(self, error: str = "access_denied") -> None:
        """The next authorization request is refused by the "customer" with ``error``."""
        with self._cond:
            self._deny = error

    # -- the authorization endpoint ------------------------------------------

    def approve(self, query: Mapping[str, str] | str) -> str:
        """What a consenting customer gets: a fresh code for this authorization request
        (``query`` as a mapping or a query string). Raises :class:`AuthorizeError`."""
        params = dict(parse_qsl(query, keep_blank_values=True)) if isinstance(query, str) else query
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id != self.client_id:
            raise AuthorizeError("invalid_client", "unknown client_id", redirect=False)
        if redirect_uri not in self.redirect_uris:
            raise AuthorizeError(
                "invalid_request", "redirect_uri is not registered", redirect=False
            )
        if params.get("response_type") != "code":
            raise AuthorizeError("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge", "")
        if not challenge:
            raise AuthorizeError("invalid_request", "code challenge required")
        if params.get("code_challenge_method") != "S256":
            raise AuthorizeError("invalid_request", "transform algorithm not supported (S256 only)")
        if not _CHALLENGE.match(challenge):
            raise AuthorizeError("invalid_request", "code_challenge is not a base64url SHA-256")
        with self._cond:
            denied, self._deny = self._deny, None
            if denied:
                raise AuthorizeError(denied, "The resource owner denied the request.")
            code = secrets.token_urlsafe(24)
            self._grants[code] = Grant(
                code=code,
                client_id=client_id,
                redirect_uri=redirect_uri,
                challenge=challenge,
                scope=params.get("scope", "read"),
                state=params.get("state"),
                issued_at=time.monotonic(),
            )
        return code

    def _authorize(self, query: str) -> tuple[int, dict[str, str], JSONDict]:
        params = dict(parse_qsl(query, keep_blank_values=True))
        answer: dict[str, str]
        try:
            answer = {"code": self.approve(params)}
        except AuthorizeError as exc:
            if not exc.redirect:
                return 400, {}, {"error": exc.error, "error_description": exc.description}
            answer = {"error": exc.error, "error_description": exc.description}
        if params.get("state"):
            answer["state"] = params["state"]
        answer["subdomain"] = "fake"
        location = f"{params['redirect_uri']}?{urlencode(answer)}"
        return 302, {"Location": location}, {}

    # -- the token endpoint ----------------------------------------------------

    def _token(self, content_type: str, data: bytes) -> tuple[int, JSONDict]:
        form: dict[str, str] = {}
        try:
            if content_type != "application/x-www-form-urlencoded":
                raise _TokenError("invalid_request", "the body must be form-encoded")
            form = dict(parse_qsl(data.decode("utf-8"), keep_blank_values=True))
            with self._cond:
                if form.get("client_id") != self.client_id:
                    raise _TokenError("invalid_client", "unknown client", status=401)
                grant_type = form.get("grant_type")
                if grant_type == "authorization_code":
                    payload = self._exchange(form)
                elif grant_type == "refresh_token":
                    payload = self._refresh_grant(form)
                else:
                    raise _TokenError("unsupported_grant_type", f"{grant_type!r}")
                self._requests.append(TokenRequest(form, 200, None))
            return 200, payload
        except _TokenError as exc:
            with self._cond:
                self._requests.append(TokenRequest(form, exc.status, exc.error))
            return exc.status, {"error": exc.error, "error_description": exc.description}

    def _issue(self, client_id: str, scope: str) -> tuple[JSONDict, list[str]]:
        access = "pdus+_0XFAKE_" + secrets.token_hex(16)
        refresh = "pdus+_1XFAKE_" + secrets.token_hex(16)
        granted = f"openid {scope}".strip()
        self._access[access] = granted
        self._refresh[refresh] = (client_id, scope)
        payload = {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "scope": granted,
            "expires_in": self.expires_in,
        }
        return payload, [access, refresh]

    def _exchange(self, form: dict[str, str]) -> JSONDict:
        code = form.get("code", "")
        grant = self._grants.get(code)
        if grant is None:
            raise _TokenError("invalid_grant", "unknown authorization code")
        if grant.presented:
            for token in grant.tokens:  # a replayed code revokes what it bought
                self._access.pop(token, None)
                self._refresh.pop(token, None)
            raise _TokenError("invalid_grant", "authorization code already used")
        grant.presented = True
        if time.monotonic() - grant.issued_at > self.code_ttl:
            raise _TokenError("invalid_grant", "authorization code expired")
        if form.get("client_id") != grant.client_id:
            raise _TokenError("invalid_grant", "code was issued to another client")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise _TokenError("invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        if not verifier:
            raise _TokenError("invalid_request", "code_verifier required")
        if not _VERIFIER.match(verifier):
            raise _TokenError("invalid_request", "code_verifier is malformed")
        if not secrets.compare_digest(s256(verifier), grant.challenge):
            raise _TokenError("invalid_grant", "PKCE verification failed")
        payload, tokens = self._issue(grant.client_id, grant.scope)
        grant.tokens.extend(tokens)
        return payload

    def _refresh_grant(self, form: dict[str, str]) -> JSONDict:
        token = form.get("refresh_token", "")
        held = self._refresh.get(token)
        if held is None:
            raise _TokenError("invalid_grant", "unknown or revoked refresh token")
        client_id, scope = held
        if form.get("client_id") != client_id:
            raise _TokenError("invalid_grant", "refresh token was issued to another client")
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            raise _TokenError("invalid_client", "client authentication failed", status=401)
        del self._refresh[token]  # rotation: the old refresh token is spent
        payload, _ = self._issue(client_id, scope)
        return payload
