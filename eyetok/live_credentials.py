"""The credentials the HTTP app checks on every request and SIGHUP may change: the root
API token (``EYETOK_ROOT_TOKEN``) and Slack's signing secret (``SLACK_SIGNING_SECRET``).

One holder, made at start from the settings, read by each request (never copied into a
closure), and swapped by the credential reload (actors/credential_reload.py) after the
vault or the environment is read again: the next request is checked against the new
value, the old one is refused from then on. The people actor reads the root token from it
too. Values are never logged; :meth:`LiveCredentials.swap` returns the names that changed.
"""

from __future__ import annotations

from eyetok.config import Settings


class LiveCredentials:
    """The root token and the Slack signing secret in use now (None: not configured)."""

    __slots__ = ("root_token", "slack_signing_secret")

    def __init__(
        self, root_token: str | None = None, slack_signing_secret: str | None = None
    ) -> None:
        self.root_token = root_token
        self.slack_signing_secret = slack_signing_secret

    @classmethod
    def of(cls, settings: Settings) -> LiveCredentials:
        return cls(settings.root_token, settings.slack_signing_secret)

    def swap(self, settings: Settings) -> list[str]:
        """Put ``settings``' values in use; the names of those that changed."""
        changed = [
            name
            for name, old, new in (
                ("EYETOK_ROOT_TOKEN", self.root_token, settings.root_token),
                ("SLACK_SIGNING_SECRET", self.slack_signing_secret, settings.slack_signing_secret),
            )
            if old != new
        ]
        self.root_token = settings.root_token
        self.slack_signing_secret = settings.slack_signing_secret
        return changed
