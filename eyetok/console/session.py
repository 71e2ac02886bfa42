"""The console's session: who signed in, as what, kept in a signed cookie.

The cookie holds the person's name, their standing (``operator``: the root token;
``tenant``: a tenant token, that tenant only; ``person``: a person's token, the roles bound
to that Slack user id, judged by the people actor at every write) and the CSRF token every
form carries. It
is signed (itsdangerous, HMAC-SHA256 over a key derived from the root token, so sessions
survive a restart and die with a rotation; with no root token, a key for this process
only) and expires after :data:`MAX_AGE_S`. ``HttpOnly``, ``SameSite=Lax``, and ``Secure``
when the console is served over HTTPS (directly or behind Heroku's router)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

import msgspec
from itsdangerous import BadSignature, URLSafeTimedSerializer

from eyetok.access import Caller

COOKIE = "eyetok_console"
Standing = Literal["operator", "tenant", "person"]
MAX_AGE_S = 12 * 3600


class Session(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    standing: Standing
    tenant: str | None  # the tenant a tenant token belongs to (None: every tenant)
    csrf: str
    person: str | None = None  # a person's session: their Slack user id

    @property
    def caller(self) -> Caller:
        """Who the people actor judges this session's writes as (eyetok/access.py)."""
        if self.standing == "person":
            assert self.person is not None
            return Caller(kind="person", id=self.person)
        if self.standing == "tenant":
            return Caller(kind="tenant_token", id="console", tenant=self.tenant)
        return Caller(kind="root_token", id="root")

    @property
    def who(self) -> str:
        """How audit lines and acknowledgements name this person."""
        if self.person is not None:
            return f"console:{self.name} (person {self.person})"
        suffix = f" ({self.tenant})" if self.tenant is not None else ""
        return f"console:{self.name}{suffix}"


class Sessions:
    def __init__(self, root_token: str | None) -> None:
        key = (
            hmac.new(root_token.encode(), b"eyetok console session", hashlib.sha256).digest()
            if root_token
            else secrets.token_bytes(32)
        )
        self._signer = URLSafeTimedSerializer(
            key, salt="eyetok-console", signer_kwargs={"digest_method": hashlib.sha256}
        )

    def open(
        self, name: str, standing: Standing, tenant: str | None, person: str | None = None
    ) -> str:
        """A new session's cookie value."""
        session = Session(
            name=name,
            standing=standing,
            tenant=tenant,
            csrf=secrets.token_urlsafe(24),
            person=person,
        )
        return self._signer.dumps(msgspec.to_builtins(session))

    def read(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``; None when absent, forged, expired or malformed."""
        if not cookie:
            return None
        try:
            raw = self._signer.loads(cookie, max_age=MAX_AGE_S)
            return msgspec.convert(raw, Session)
        except (BadSignature, msgspec.ValidationError):
            return None


def csrf_matches(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
