"""The sink registry: one line per sink type."""

from __future__ import annotations

from actors.sinks.base import Sink
from actors.sinks.slack.deliver import SlackSink
from eyetok.config import Settings, SlackSinkConfig


def build_sinks(settings: Settings) -> dict[str, Sink]:
    """A client for every configured sink whose credentials are present."""
    sinks: dict[str, Sink] = {}
    for sink_id, config in settings.sinks.items():
        secret = settings.sink_secrets.get(sink_id)
        if secret is None:
            continue
        match config:
            case SlackSinkConfig():
                sinks[sink_id] = SlackSink(
                    sink_id=sink_id,
                    token=secret,
                    api_url=settings.slack_api_url,
                    options=settings.slack,
                    rate=config.rate_per_channel,
                )
    return sinks
