"""Single-webhook ingest benchmark: EyeTok beside a bare hypercorn-trio ceiling, one run.

    uv run python bench/ingest.py                 # N=5000, C=32, ceiling + EyeTok burst
    uv run python bench/ingest.py -n 500 --trickle
    uv run python bench/ingest.py --json          # one JSON object on stdout
    uv run python bench/ingest.py --sink webhook  # burst delivered to a webhook sink

Phases (each bounded in count and time; only 127.0.0.1; every subprocess is stopped in
a ``finally``):

1. ceiling: ``bench/ceiling_app.py`` (bare ASGI on hypercorn's trio worker: body, size,
   HMAC, msgspec decode, 202; no journal) gets the same N signed requests at
   concurrency C from the same load generator: accepted/s, p50/p99, peak RSS.
2. burst: the fake Slack (``harness.peers.slack``) and EyeTok (fresh data dir, Slack rate
   per channel lifted to ``--slack-rate`` through ``EYETOK_CONFIG``) get the same N
   requests: accepted/s, p50/p99, non-202 answers by status, peak RSS of the daemon
   (psutil, every 50 ms, children included), then receipt -> Slack post latency for
   every accepted signal (matched by incident id; each body has its own issue id, so
   each opens an incident and makes one top-level post).
   ``--sink webhook``: the operator tenant's policy routes all four SEV channels only to
   a webhook sink whose receiver (``harness.peers.webhook_receiver``, threads in this
   process) is verified through the real DNS TXT handshake against ``harness.peers.dns``
   (also threads here); then receipt -> webhook arrival per incident instead (design
   section 9's end-to-end target). Slack stays configured for the operator notices.
3. trickle (``--trickle``): a fresh EyeTok on the default config (Slack's real 1 msg/s
   per channel) gets ``--trickle-count`` alerts, one at a time, spread over the SEV
   channels at ``--trickle-rate`` per channel: receipt -> Slack post p50/p99.

The load generator is a single-threaded epoll loop over C raw HTTP/1.1 keep-alive
connections with pre-signed, pre-serialised requests (``--client raw``, the default), so
its cost per request is a few tens of microseconds and it is not the bottleneck on a
2-core machine; ``--client httpx`` runs httpx.AsyncClient on trio instead, for
comparison. The report states the generator's own CPU per request.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"
FIXTURE_DIR = ROOT / "tests" / "fixtures" / "sentry"
# ~4 KB event_alert bodies that open an incident and post to Slack, one per SEV channel
# family: paper_gate -> SEV1, h12/synthetic -> SEV2 (SEV2.5 in business hours),
# warning -> SEV3. (The 7-10 KB fixtures and the audit-only info/debug ones are left out.)
BURST_FIXTURES = (
    "event_alert_h12.json",
    "event_alert_paper_gate.json",
    "event_alert_synthetic.json",
    "event_alert_warning.json",
)
TRICKLE_FIXTURES = (
    "event_alert_paper_gate.json",
    "event_alert_h12.json",
    "event_alert_warning.json",
)
SLACK_TOKEN = "xoxb-test"
TARGET_RATIO = 0.9
TARGET_CPU_RATIO = 1.5  # server CPU per accepted request <= 1.5 x the ceiling's (issue 20)
TARGET_E2E_P99_MS = 1000.0
TARGET_RSS_MB = 120.0
SEV_CHANNELS = ("SEV1", "SEV2", "SEV2.5", "SEV3")
WEBHOOK_SINK = "bench-hook"  # --sink webhook: the operator's webhook sink
WEBHOOK_TARGET = "bench"
WEBHOOK_SECRET_ENV = "BENCH_WHSEC"
WEBHOOK_VERIFY_LIMIT_S = 30.0
INCIDENT_IN_POST = re.compile(r"\*incident\* `(inc_[0-9a-f]+)`")
ANY_INCIDENT = re.compile(r"inc_[0-9a-f]+")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()
