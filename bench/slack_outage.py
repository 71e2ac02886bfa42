"""The adversarial run's two Slack findings, measured from outside against ``eyetok run``
with the default delivery settings, in real time (minutes):

* ``--outage``: Slack answers 500 twenty times, then 429 ``Retry-After: 4`` ten times;
* ``--timeouts``: Slack answers every post after 12 s (the client gives up at 10 s)
  for 25 s.

Two tenants (operator and acme), each with a verified Slack sink, 15 alerts each through
the generic hook. Prints one JSON line: alerts, posts, alerts posted more than once,
deliveries ended dead, seconds until the last post.

    python3 -m uv run python -m bench.slack_outage --outage
    python3 -m uv run python -m bench.slack_outage --timeouts
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from harness.peers.slack import FakeSlack
from harness.peers.slack_records import Scripted
from tests.e2e.daemon import DaemonProcess

_TITLE = re.compile(r"^\[[^\]]+\] (.*?)(?: \(delayed .*\))?$")
TOKENS = {"operator": "operator-hook-token-1", "acme": "acme-hook-token-1"}
CONFIG = """\
sinks:
  slack: {type: slack, token_env: SLACK_BOT_TOKEN}
  acme-slack: {type: slack, tenant: acme, token_env: ACME_SLACK_TOKEN}
tenants:
  acme:
    tier: team
    policy:
      routes:
        SEV1: [{sink: acme-slack, target: "#acme-pager"}]
        SEV2: [{sink: acme-slack, target: "#acme-pager"}]
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slack_outage")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--outage", action="store_true", help="20x 500, then 10x 429 (4 s)")
    mode.add_argument("--timeouts", action="store_true", help="answers after 12 s for 25 s")
    parser.add_argument("--per-tenant", type=int, default=15)
    parser.add_argument("--limit-s", type=float, default=1000.0)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as work, FakeSlack() as slack:
        config = Path(work) / "eyetok.yaml"
        config.write_text(CONFIG)
        env = {
            "EYETOK_CONFIG": str(config),
            "SLACK_BOT_TOKEN": slack.token,
            "ACME_SLACK_TOKEN": slack.token,
            "SLACK_API_URL": slack.base_url,
            "EYETOK_HOOK_TOKEN": TOKENS["operator"],
            "EYETOK_HOOK_TOKEN_ACME": TOKENS["acme"],
        }
        daemon = DaemonProcess(Path(work) / "data", env)
        with contextlib.ExitStack() as stack:
            daemon.start(timeout=120)  # a busy machine can take a while
            stack.callback(daemon.__exit__, None, None, None)
            daemon.verify_slack("slack").verify_slack("acme-slack")
            if args.outage:
                slack.fail_next(
                    *[Scripted.server_error(500)] * 20, *[Scripted.rate_limited(4)] * 10
                )
            else:
                slack.slow_posts(12, for_s=25)
            started = time.monotonic()
            sent = 0
            for n in range(args.per_tenant):
                for tenant, token in TOKENS.items():
                    path = f"/hooks/generic/{tenant}"
                    answer = httpx.post(
                        daemon.url + path,
                        json={
                            "title": f"{tenant} down #{n}",
                            "dedup_key": f"{tenant}-{n}",
                            "severity": "critical",
                        },
                        headers={"authorization": f"Bearer {token}"},
                        timeout=15,
                    )
                    assert answer.status_code == 202, answer.text
                    sent += 1
            alerts = {f"{t} down #{n}" for t in TOKENS for n in range(args.per_tenant)}

            def posted() -> Counter[str]:
                titles = (_TITLE.match(p.text or "") for p in slack.posts)
                return Counter(m.group(1) for m in titles if m and m.group(1) in alerts)

            last_post = None
            while time.monotonic() - started < args.limit_s:
                counts = posted()
                if len(counts) == len(alerts):
                    last_post = time.monotonic() - started
                    break
                if daemon.events("delivery_dead") and len(counts) + len(
                    daemon.events("delivery_dead")
                ) >= len(alerts):
                    break
                time.sleep(1.0)
            time.sleep(15)  # late answers and retries settle
            counts = posted()
            daemon.terminate()
        report = {
            "mode": "outage" if args.outage else "timeouts",
            "alerts": sent,
            "posts": len([p for p in slack.posts if p.channel != "eyetok-operator"]),
            "alerts_posted": len(counts),
            "posted_twice_or_more": sorted(a for a, c in counts.items() if c > 1),
            "dead": len(daemon.events("delivery_dead")),
            "found_after_timeout": len(daemon.events("slack_post_found")),
            "seconds_to_last_post": round(last_post, 1) if last_post else None,
            "post_calls": Counter(
                str(c.status) for c in slack.calls if c.method == "chat.postMessage"
            ),
        }
    print(json.dumps(report))
    return 0 if not report["posted_twice_or_more"] and not report["dead"] else 1


if __name__ == "__main__":
    sys.exit(main())
