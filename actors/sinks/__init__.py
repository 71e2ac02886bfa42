"""The sink registry: one line per sink type. A kind's client module is imported when a
sink of that kind is built, not before: a deployment without email, PagerDuty or webhook
sinks does not load smtplib, httptools or their code (issue 20)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eyetok.sinks.email import EmailSinkConfig
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from eyetok.sinks.slack import SlackSinkConfig
from eyetok.sinks.webhook import WebhookSinkConfig

if TYPE_CHECKING:
    from actors.sinks.base import Sink
    from eyetok.clock import Clock
    from eyetok.config import Settings


def build_sinks(settings: Settings, clock: Clock) -> dict[str, Sink]:
    """A client for every configured sink whose credentials are present."""
    sinks: dict[str, Sink] = {}
    for sink_id, config in settings.sinks.items():
        secret = settings.sink_secrets.get(sink_id)
        if secret is None:
            continue
        match config:
            case SlackSinkConfig():
                from actors.sinks.slack.deliver import SlackSink

                sinks[sink_id] = SlackSink(
                    sink_id=sink_id,
                    token=secret,
                    api_url=settings.slack_api_url,
                    options=settings.slack,
                    rate=config.rate_per_channel,
                    clock=clock,
                )
            case WebhookSinkConfig():
                from actors.sinks.webhook.deliver import WebhookSink

                environ = {**settings.sink_env, config.secret_env: secret}
                sinks[sink_id] = WebhookSink.from_config(sink_id, config, environ, clock=clock)
            case EmailSinkConfig():
                from actors.sinks.email.deliver import EmailSink

                dkim_key = settings.sink_env.get(config.dkim_key_env or "")
                sinks[sink_id] = EmailSink.from_url(
                    sink_id=sink_id, config=config, smtp_url=secret, dkim_key=dkim_key
                )
            case PagerDutySinkConfig():
                from actors.sinks.pagerduty.config import events_url
                from actors.sinks.pagerduty.deliver import PagerDutySink

                sinks[sink_id] = PagerDutySink(
                    sink_id=sink_id,
                    routing_key=secret,
                    config=config,
                    events_url=events_url(config, settings.sink_env),
                )
    return sinks
