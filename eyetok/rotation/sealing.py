"""Credentials at rest: sealed with Fernet (AES-128-CBC + HMAC-SHA256, from the
``cryptography`` package) under the key in ``EYETOK_SECRETS_KEY``.

Without the key nothing can be stored or read back, and a rotation is refused with a
:class:`~eyetok.errors.ConfigError` naming it; a stored value the key does not open (the
key changed) is a :class:`SealError`, never a silently empty credential.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from eyetok.errors import ConfigError, StateError

KEY_ENV = "EYETOK_SECRETS_KEY"


class SealError(StateError):
    """A sealed credential that the configured key does not open."""


class Sealer:
    """Seals and opens one credential's material (a small name -> value map)."""

    def __init__(self, key: str) -> None:
        # cryptography is loaded only where EYETOK_SECRETS_KEY is set.
        from cryptography.fernet import Fernet, InvalidToken

        self._invalid_token = InvalidToken
        try:
            self._fernet = Fernet(key.encode())
        except ValueError as exc:
            raise ConfigError(
                KEY_ENV, "is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    def __repr__(self) -> str:
        return "Sealer(***)"

    def seal(self, material: Mapping[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(dict(material), sort_keys=True).encode())

    def open(self, sealed: bytes, *, what: str) -> dict[str, str]:
        try:
            plain = self._fernet.decrypt(sealed)
        except self._invalid_token as exc:
            raise SealError(f"{what}: {KEY_ENV} does not open it (was the key changed?)") from exc
        opened = json.loads(plain)
        return {str(k): str(v) for k, v in opened.items()}


def sealer_from(env: Mapping[str, str]) -> Sealer | None:
    """The sealer of ``EYETOK_SECRETS_KEY``, or None when it is unset."""
    key = env.get(KEY_ENV)
    return Sealer(key) if key else None


def new_key() -> str:
    """A fresh key for ``EYETOK_SECRETS_KEY``."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
