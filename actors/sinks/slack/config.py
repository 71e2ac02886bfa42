"""Slack sink configuration lives in :mod:`eyetok.sinks.slack` (``SlackSinkConfig``); this
module re-exports it and names the defaults the Slack sink relies on."""

from __future__ import annotations

from eyetok.sinks.slack import SlackSinkConfig

__all__ = ["WORKER_THREADS", "SlackSinkConfig"]

WORKER_THREADS = 4  # concurrent chat.postMessage calls across all channels
