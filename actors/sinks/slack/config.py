"""Slack sink configuration lives in :mod:`eyetok.config` (``SlackSinkConfig``); this module
names the defaults the Slack sink relies on."""

from __future__ import annotations

DEFAULT_API_URL = "https://slack.com/api/"
REQUEST_TIMEOUT_S = 10
WORKER_THREADS = 4  # concurrent chat.postMessage calls across all channels
