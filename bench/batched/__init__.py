"""Batched hooks throughput: probe verdicts and Alertmanager payloads, EyeTok beside a
ceiling and beside Alertmanager itself, in one run.

    uv run python bench/batched.py                      # 200 requests x 100 alerts, C=8, both
    uv run python bench/batched.py --source probe -r 500
    uv run python bench/batched.py --json > result.json # one JSON object on stdout

Targets: design section 9, batched hooks (probe verdicts, Alertmanager payloads) accept
>= 20,000 alerts/s with the journal on; issue 20, EyeTok's Alertmanager hook >= 0.5x
Alertmanager's own batched rate measured in the same run. For each source
(``--source probe|alertmanager|both``):

1. ceiling: ``bench/ceiling_app.py`` (bare ASGI on hypercorn's trio worker: read the body,
   check the bearer token, msgspec-decode the JSON, answer 202 with one entry per alert,
   no journal) gets the source's R requests of P alerts at concurrency C;
2. Alertmanager (source ``alertmanager`` only, unless ``--skip-alertmanager``): Debian's
   ``prometheus-alertmanager`` (installed with apt when missing) on 127.0.0.1, a random
   port, a temp config and storage dir, no cluster listener, gets the same alerts as R
   ``POST /api/v2/alerts`` bodies of P alerts (``alertmanager.py``);
3. EyeTok: ``python -m eyetok.cli run`` on a fresh data dir, PORT 0, with one tenant
   ``bench`` whose batch hooks take a bearer token (``hook_token_env``) and which has no
   policy (no routes: every alert is journalled and recorded, nothing is delivered, so
   the figure is ingest + journal), gets the same R requests.

The parts: ``bodies.py`` (the requests), ``alertmanager.py`` (Alertmanager's process and
phase), ``phases.py`` (the ceiling's and EyeTok's phases), ``checks.py`` (what the
answers say, CPU, the journal and history checks), ``report.py``, ``cli.py``. Only
127.0.0.1. Every load loop is bounded in count and in time (``--time-limit``), the
journal wait by ``--journal-timeout``; every subprocess is stopped in a ``finally``
(SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

TENANT = "bench"
TOKEN_ENV = "BENCH_HOOK_TOKEN"
TARGET_ALERTS_PER_S = 20_000.0
TARGET_VS_ALERTMANAGER = 0.5  # issue 20: EyeTok's batched rate >= 0.5x Alertmanager's
SOURCES = ("probe", "alertmanager")
SOURCE_TITLES = {"probe": "probe verdicts", "alertmanager": "Alertmanager payloads"}


def log(message: str) -> None:
    sys.stderr.write(f"[batched {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
