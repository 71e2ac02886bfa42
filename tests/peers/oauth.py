"""Re-exported: the peer lives in ``harness/peers/oauth.py``
(the drill harness ships it)."""

from __future__ import annotations

from harness.peers.oauth import (
    DEFAULT_REDIRECT_URI,
    AuthorizeError,
    FakeOAuth,
    Grant,
    TokenRequest,
    s256,
)

__all__ = ["DEFAULT_REDIRECT_URI", "AuthorizeError", "FakeOAuth", "Grant", "TokenRequest", "s256"]
