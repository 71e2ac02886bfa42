"""The batched hooks bench (``bench/batched/``; ``tests/test_bench_cli.py`` checks both
ways of starting it): the alerts Alertmanager gets are the alerts EyeTok's hook gets, in the shape
Alertmanager's API takes; the report puts Alertmanager beside EyeTok with the verdict.
The bench itself measures outside the test suite."""

from __future__ import annotations

import json
from pathlib import Path

from bench.batched.bodies import API_ALERTS_PATH, Bodies, api_alerts
from bench.batched.report import source_lines

ROOT = Path(__file__).resolve().parents[1]


def test_alertmanager_gets_the_same_alerts_as_its_api_takes_them() -> None:
    bodies = Bodies(tag="t", per_request=20, lookback=2, token="tok")
    webhooks = bodies.requests("alertmanager", "b", 4)
    for webhook in webhooks:
        group = json.loads(webhook.body)["alerts"]
        post = api_alerts(webhook)
        assert post.raw.startswith(f"POST {API_ALERTS_PATH} HTTP/1.1\r\n".encode())
        assert b"authorization" not in post.raw.lower()
        posted = json.loads(post.body)
        assert [a["labels"] for a in posted] == [a["labels"] for a in group]
        assert [a["annotations"] for a in posted] == [a["annotations"] for a in group]
        for sent, original in zip(posted, group, strict=True):
            assert sent["startsAt"] == original["startsAt"]
            # a firing alert has no end (Alertmanager sets its own); a resolved one ended
            assert sent.get("endsAt") == (
                original["endsAt"] if original["status"] == "resolved" else None
            )
    resolved = sum(
        a["status"] == "resolved" for w in webhooks for a in json.loads(w.body)["alerts"]
    )
    assert resolved == 4 * 4  # 20% of 20 per request


def test_the_report_puts_alertmanager_beside_eyetok_with_the_verdict() -> None:
    part = {
        "requests": 200,
        "per_request": 100,
        "body_bytes_mean": 64_000.0,
        "ceiling": {"alerts_per_s": 60_000.0, "alerts_accepted": 20_000, "alerts_sent": 20_000},
        "alertmanager": {
            "alerts_per_s": 30_000.0,
            "server_cpu_us_per_alert": 28.0,
            "peak_rss_mb": 130.0,
            "version": "alertmanager, version 0.25.0",
            "how": "found",
            "binary": "/usr/bin/prometheus-alertmanager",
        },
        "eyetok": {"alerts_per_s": 12_000.0, "server_cpu_us_per_alert": 120.0},
        "ratio": 0.2,
        "target_pass": False,
        "ratio_vs_alertmanager": 0.4,
        "alertmanager_pass": False,
    }
    text = "\n".join(source_lines("alertmanager", part))
    assert "Alertmgr" in text
    assert "EyeTok / Alertmanager" in text
    ratio_line = next(line for line in text.splitlines() if "EyeTok / Alertmanager" in line)
    assert "0.40" in ratio_line
    assert "MISS" in ratio_line
    cpu_line = next(line for line in text.splitlines() if "server CPU/alert" in line)
    assert "28.0" in cpu_line
    assert "120" in cpu_line
