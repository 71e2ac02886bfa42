"""The ingest bench's CPU figures: the ratio to the ceiling and the whole-life CPU at exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from bench.ingest.burst import cpu_to_exit
from bench.ingest.processes import Proc, start_ceiling
from bench.ingest.report import judge

BUSY_THEN_WAIT = (
    "import signal, sys\n"
    "total = sum(range(3_000_000))\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "print('ready', flush=True)\n"
    "signal.pause()\n"
)


def test_stop_reaps_the_process_and_keeps_its_whole_life_cpu() -> None:
    popen = subprocess.Popen([sys.executable, "-c", BUSY_THEN_WAIT], stdout=subprocess.PIPE)
    assert popen.stdout is not None
    assert popen.stdout.readline() == b"ready\n"
    proc = Proc("busy", popen)

    assert proc.stop(10.0) == 0
    assert proc.cpu_s_at_exit is not None
    assert proc.cpu_s_at_exit > 0.01
    assert popen.poll() == 0  # Popen knows it was reaped
    popen.stdout.close()

    figures = cpu_to_exit(proc, {"total": 0.0, "main": 0.0}, 10)
    assert figures["server_cpu_us_per_request_to_exit"] == round(proc.cpu_s_at_exit * 1e6 / 10, 1)


def test_a_killed_or_unreaped_process_has_no_figure_to_exit() -> None:
    popen = subprocess.Popen([sys.executable, "-c", "pass"])
    popen.wait()
    proc = Proc("gone", popen)
    assert proc.stop(1.0) == 0
    assert proc.cpu_s_at_exit is None
    assert cpu_to_exit(proc, {"total": 0.0, "main": 0.0}, 10) == {}


def _report(eye_us: float, ceiling_us: float) -> dict[str, object]:
    base = {"accepted_per_s": 100.0, "peak_rss_mb": 100.0}
    return {
        "ceiling": {**base, "server_cpu_us_per_request": ceiling_us},
        "eyetok": {
            **base,
            "server_cpu_us_per_request": eye_us,
            "server_cpu_us_per_request_to_exit": eye_us * 2,
        },
        "figures": {},
        "verdicts": {},
    }


def test_the_cpu_verdict_is_eyetoks_cpu_per_request_over_the_ceilings() -> None:
    within, over = _report(1500.0, 1000.0), _report(1510.0, 1000.0)
    judge(within)
    judge(over)
    assert within["figures"]["cpu_ratio"] == 1.5  # type: ignore[index]
    assert within["verdicts"]["cpu"] is True  # type: ignore[index]
    assert over["verdicts"]["cpu"] is False  # type: ignore[index]
    # no ceiling figure to exit: no ratio to exit either
    assert "cpu_ratio_to_exit" not in within["figures"]  # type: ignore[operator]


def test_the_ceiling_takes_a_secret_and_a_token_that_begin_with_a_dash(tmp_path: Path) -> None:
    proc, port = start_ceiling("-secret", tmp_path, token="-token")
    try:
        url = f"http://127.0.0.1:{port}/hooks/alertmanager/acme"
        body = b'{"alerts": []}'
        right = httpx.post(url, headers={"Authorization": "Bearer -token"}, content=body)
        wrong = httpx.post(url, headers={"Authorization": "Bearer token"}, content=body)
        assert wrong.status_code == 401
        assert right.status_code != 401
    finally:
        proc.stop(5.0)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()
