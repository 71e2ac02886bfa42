"""``eyetok drill run`` end to end: the CLI starts ``eyetok run`` as a subprocess with its
local peers, drives it through its hooks, and exits 0 with a receipt when every step
holds; with an invariant broken on purpose (``--break``) it exits 1 naming the step.

Each run starts a daemon of its own (about three seconds, most of it the interpreter and
thirty-five sink handshakes), so the passing drill is one ``all`` run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240


def _drill(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    receipt = tmp_path / "receipt.json"
    result = subprocess.run(
        [sys.executable, "-m", "eyetok.cli", "drill", "run", *args, "--receipt", str(receipt)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert receipt.exists(), result.stdout + result.stderr
    return result.returncode, result.stdout, json.loads(receipt.read_text())


def _failed(receipt: dict[str, Any]) -> list[str]:
    return [f"{s['scenario']}/{s['name']}" for s in receipt["steps"] if s["verdict"] == "fail"]


def test_every_scenario_passes_against_the_daemon_as_a_subprocess(tmp_path: Path) -> None:
    code, stdout, receipt = _drill(tmp_path, "all", "--no-wait")
    assert code == 0, stdout
    assert _failed(receipt) == [], stdout
    assert receipt["verdict"] == "pass"
    assert receipt["scenario"] == "all"
    assert receipt["daemon_version"] == "0.1.0"
    assert receipt["daemon_url"].startswith("http://127.0.0.1:")
    scenarios = [s["scenario"] for s in receipt["steps"]]
    assert list(dict.fromkeys(scenarios)) == [
        "single-tenant-outage",
        "registry-wide-outage",
        "sink-failure",
        "dst-edge",
        "budget-exhaustion",  # last: it leaves the drill tenant capped for the hour
    ]
    steps = {f"{s['scenario']}/{s['name']}": s for s in receipt["steps"]}
    reached = steps["single-tenant-outage/alert-reaches-four-sinks"]
    assert len(reached["delivery_ids"]) == 4
    assert reached["latency_ms"] < 90_000
    assert set(reached["delivery_ids"]) <= set(receipt["delivery_ids"])
    # Only the hour-boundary steps are skipped, and only because of --no-wait.
    skipped = sorted(k for k, s in steps.items() if s["verdict"] == "skipped")
    assert skipped == ["budget-exhaustion/budget-reset", "budget-exhaustion/digest-at-top-of-hour"]
    assert all("--no-wait" in steps[k]["observation"] for k in skipped)
    assert "PASS" in stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("scenario", "broken", "failing_step"),
    [
        ("single-tenant-outage", "sink", "single-tenant-outage/alert-reaches-four-sinks"),
        ("sink-failure", "sink", "sink-failure/other-three-on-time"),
        ("registry-wide-outage", "suppression", "registry-wide-outage/pages-withheld"),
        ("budget-exhaustion", "budgets", "budget-exhaustion/ten-delivered"),
        ("dst-edge", "clock", "dst-edge/spring-forward-0159"),
    ],
)
def test_a_scenario_fails_when_its_invariant_is_broken(
    tmp_path: Path, scenario: str, broken: str, failing_step: str
) -> None:
    code, stdout, receipt = _drill(tmp_path, scenario, "--break", broken, "--no-wait")
    assert code == 1, stdout
    assert receipt["verdict"] == "fail"
    assert failing_step in _failed(receipt)
    assert f"failed steps: {', '.join(_failed(receipt))}" in stdout
    assert f"FAIL {failing_step}" in stdout


def test_json_prints_the_receipt(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "eyetok.cli", "drill", "run", "dst-edge", "--json"),
            *("--monthly-slot", "2027-01-06T10:00:00-05:00"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    receipt = json.loads(result.stdout)
    assert [s["name"] for s in receipt["steps"]] == [
        "spring-forward-0159",
        "spring-forward-0300",
        "fall-back-0130-edt",
        "fall-back-0130-est",
    ]
    assert {s["verdict"] for s in receipt["steps"]} == {"pass"}
    assert receipt["monthly_slot"] == "2027-01-06T15:00:00Z"


def test_the_readme_documents_the_command_and_every_scenario() -> None:
    from harness.scenarios import NAMES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "python3 -m uv run eyetok drill run single-tenant-outage" in readme
    for name in NAMES:
        assert f"| `{name}` |" in readme


def test_url_drives_a_running_daemon_and_it_keeps_the_receipt(tmp_path: Path) -> None:
    import os

    import httpx

    from tests.e2e.daemon import DaemonProcess
    from tests.verify import ROOT_TOKEN

    config = tmp_path / "eyetok.yaml"
    config.write_text("tenants:\n  drill: {tier: drill, hook_token_env: DRILL_TOKEN}\n")
    env = {"EYETOK_CONFIG": str(config), "DRILL_TOKEN": "drill-token"}
    with DaemonProcess(tmp_path / "data", env) as daemon:
        result = subprocess.run(
            [sys.executable, "-m", "eyetok.cli", "drill", "run", "dst-edge", "--url", daemon.url],
            cwd=tmp_path,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("EYETOK_")},
                "EYETOK_ROOT_TOKEN": ROOT_TOKEN,
                "EYETOK_HOOK_TOKEN_DRILL": "drill-token",
            },
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith(f"drill dst-edge against {daemon.url} (EyeTok 0.1.0): PASS")
        kept = httpx.get(
            daemon.url + "/api/v1/drills/receipts",
            headers={"authorization": f"Bearer {ROOT_TOKEN}"},
        ).json()["receipts"]
    [row] = kept
    assert row["scenario"] == "dst-edge"
    assert row["verdict"] == "pass"
    assert row["receipt_id"] in result.stdout


def test_without_a_root_token_url_cannot_start(tmp_path: Path) -> None:
    import os

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "eyetok.cli",
            "drill",
            "run",
            "dst-edge",
            "--url",
            "http://127.0.0.1:9",
        ],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("EYETOK_")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "EYETOK_ROOT_TOKEN" in result.stderr


def test_ctrl_c_ends_the_drill_with_one_line_and_a_partial_receipt(tmp_path: Path) -> None:
    """budget-exhaustion without --no-wait says in one line that it waits for the top of
    the hour; Ctrl-C (SIGINT to the terminal's whole process group) then ends it."""
    import os
    import re
    import signal
    import time

    receipt_path = tmp_path / "receipt.json"
    drill = subprocess.Popen(
        [
            *(sys.executable, "-m", "eyetok.cli", "drill", "run", "budget-exhaustion"),
            *("--receipt", str(receipt_path)),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's job is
    )
    try:
        assert drill.stderr is not None
        deadline = time.monotonic() + RUN_TIMEOUT_S
        waiting, said = "", []
        while time.monotonic() < deadline and "top of the hour" not in waiting:
            waiting = drill.stderr.readline()
            assert waiting or drill.poll() is None, "the drill ended without waiting"
            said.append(waiting)
        assert re.fullmatch(
            r"eyetok drill: budget-exhaustion waits \d+ min \d+ s for the top of the hour "
            r"\(\d\d:00 UTC\) to (see the digest and the budget reset|start in a fresh hour); "
            r"--no-wait skips this wait\n",
            waiting,
        ), waiting
        os.killpg(drill.pid, signal.SIGINT)  # Ctrl-C: the drill, not its daemon
        stdout, stderr = drill.communicate(timeout=60)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.communicate()
    assert drill.returncode == 130, stdout + stderr
    receipt = json.loads(receipt_path.read_text())
    assert receipt["verdict"] == "interrupted"
    assert receipt["flavour"] == "budget exhaustion"
    done = [s["name"] for s in receipt["steps"]]
    assert (
        done
        == [
            "budget-is-ten-an-hour",
            "thirty-alerts-in-the-hour",
            "ten-delivered",
            "rest-held",
            "one-cap-line",
            "cap-audited",
            "endpoints-recover",
        ][: len(done)]
    )
    # each step was named on stderr as it ended, before the wait
    named = [line.split()[3].split("/")[1] for line in said if line.startswith("eyetok drill: ok")]
    assert named == done
    [line] = stdout.splitlines()
    assert line.startswith(f"drill budget-exhaustion interrupted (Ctrl-C) after {len(done)} steps")
    assert line.endswith(f"partial receipt {receipt['receipt_id']} kept, verdict interrupted")
    assert "Traceback" not in stderr
