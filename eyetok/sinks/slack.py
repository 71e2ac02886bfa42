"""The Slack sink's configuration (a workspace reached with a bot token).

Lives in the domain so :mod:`eyetok.config` can take it into the ``SinkConfig`` union;
``actors/sinks/slack/config.py`` holds the runtime defaults.
"""

from __future__ import annotations

import msgspec


class SlackSinkConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag="slack",
    tag_field="type",
):
    """A Slack workspace reached with a bot token (read from the environment)."""

    tenant: str = "operator"  # the owner
    token_env: str = "SLACK_BOT_TOKEN"
    rate_per_channel: float = 1.0  # messages per second per channel (Slack's own limit)
