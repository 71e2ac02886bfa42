"""The defaults the Slack sink relies on. What the config file says about a Slack sink
(``SlackSinkConfig``) is :mod:`eyetok.sinks.slack`, where :mod:`eyetok.config` can take it
without importing ``actors/``."""

from __future__ import annotations

__all__ = ["WORKER_THREADS"]

WORKER_THREADS = 4  # concurrent chat.postMessage calls across all channels
