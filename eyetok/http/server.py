"""The HTTP server's settings: hypercorn, told how long to wait on a client.

Without timeouts a client that opens a connection and stalls part way through its headers
or its body holds a task and a descriptor forever (an adversarial run left 4,000 such
connections open). Two of hypercorn's limits close them:

- ``keep_alive_timeout`` (``http.idle_timeout_s``): a connection with no request in
  progress is closed after this long. A connection counts as idle from the moment it
  opens (or its previous answer went out) until a request's headers are complete, so
  this is also the deadline for the headers, and trickling a byte at a time does not
  extend it;
- ``read_timeout`` (``http.read_timeout_s``): the longest silence from a client while its
  request is read or answered. It is a per-read limit and applies to idle connections
  too, so it is set above the idle timeout.

``h11_max_incomplete_size`` (``http.max_header_bytes``) caps a request line and headers.
Bodies are capped where they are read (1 MiB on the hooks).
"""

from __future__ import annotations

import logging

from hypercorn.config import Config

from eyetok.config import HttpOptions


def server_config(options: HttpOptions, *, bind: str, graceful_timeout_s: float) -> Config:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # one JSON line each (eyetok/log.py)
    config.graceful_timeout = graceful_timeout_s
    config.keep_alive_timeout = options.idle_timeout_s
    config.read_timeout = options.read_timeout_s
    config.h11_max_incomplete_size = options.max_header_bytes
    return config
