"""``bench/ingest.py --task-cpu``: the recorder (bench/task_steps.py) around real servers,
and the per-request arithmetic of its window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from bench.ingest.processes import start_ceiling
from bench.ingest.task_cpu import TaskWindow, per_request, recorder_prefix, report_lines

_HANDLE = "hypercorn.trio.task_group._handle"

# An actor under EyeTok's own supervisor, busy for a while, then the totals asked for
# (SIGUSR2 to itself, as the bench sends it: Python runs the handler in this thread before
# its next bytecode, so the file is written before the run ends).
_SUPERVISED = """
import os, signal, trio
from actors.supervisor import ChildSpec, Restart, Supervisor

async def echo(*, task_status=trio.TASK_STATUS_IGNORED):
    task_status.started()
    for _ in range(200):
        sum(range(2000))
        await trio.sleep(0)

async def main():
    supervisor = Supervisor()
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, [ChildSpec("echo", echo, Restart.TRANSIENT)])
    os.kill(os.getpid(), signal.SIGUSR2)  # its handler runs before the next bytecode

trio.run(main)
"""


def test_an_actor_is_named_after_its_child_spec_and_its_steps_counted(tmp_path: Path) -> None:
    script = tmp_path / "supervised.py"
    script.write_text(_SUPERVISED, encoding="utf-8")
    out = tmp_path / "steps"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [*recorder_prefix(out), sys.executable, str(script)],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    totals = json.loads(Path(f"{out}.0.json").read_text(encoding="utf-8"))
    cpu, steps = totals["tasks"]["actor:echo"]
    assert steps >= 200  # one step per sleep(0), and the first
    assert cpu > 0
    assert "actors.supervisor.Supervisor._supervise" not in totals["tasks"]
    assert totals["passes"] >= 1
    assert totals["thread_cpu_s"] >= sum(c for c, _ in totals["tasks"].values())


def test_the_ceilings_requests_show_up_per_request_in_its_window(tmp_path: Path) -> None:
    out = tmp_path / "ceiling.task-steps"
    proc, port = start_ceiling("secret", tmp_path, token="token", prefix=recorder_prefix(out))
    try:
        window = TaskWindow(proc.pid, out)
        window.mark()
        url = f"http://127.0.0.1:{port}/hooks/alertmanager/acme"
        with httpx.Client() as client:
            for _ in range(20):
                answer = client.post(
                    url, headers={"Authorization": "Bearer token"}, content=b'{"alerts": []}'
                )
                assert answer.status_code == 202
        window.mark()
    finally:
        proc.stop(5.0)
        if proc.popen.stdout is not None:
            proc.popen.stdout.close()
    figures = window.per_request(20)
    assert figures is not None
    handle = figures["tasks"][_HANDLE]
    assert handle["steps"] >= 1.0  # every request ran the app's task at least once
    assert handle["cpu_us"] > 0
    in_steps = sum(t["cpu_us"] for t in figures["tasks"].values())
    assert abs(in_steps + figures["outside_steps_us"] - figures["thread_us"]) < 1.0
    lines = report_lines(figures, None)
    assert any("HTTP request" in line for line in lines)
    steps = sum(t["steps"] for t in figures["tasks"].values())
    assert f"task steps per request: ceiling {steps:.1f}, EyeTok -;" in lines[-1]


def test_the_window_is_the_difference_of_its_ends_divided_by_the_requests() -> None:
    start = {"passes": 10, "thread_cpu_s": 1.0, "tasks": {"a": [0.5, 100], "b": [0.1, 5]}}
    end = {
        "passes": 30,
        "thread_cpu_s": 2.0,
        "tasks": {"a": [1.1, 300], "b": [0.1, 5], "c": [0.2, 10]},
    }
    figures = per_request(start, end, 100)
    assert figures == {
        "tasks": {"a": {"cpu_us": 6000.0, "steps": 2.0}, "c": {"cpu_us": 2000.0, "steps": 0.1}},
        "passes": 0.2,
        "outside_steps_us": 2000.0,
        "thread_us": 10000.0,
    }
    assert per_request(start, None, 100) is None  # the recorder never answered
    assert per_request(start, end, 0) is None
