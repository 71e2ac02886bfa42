"""``--task-cpu``: the event loop's CPU per request, task by task, ceiling beside EyeTok.

Both servers run under ``bench/task_steps.py`` (a trio Instrument). At the start and at
the end of the load window the bench asks each for its totals (SIGUSR2) and divides the
difference by the requests answered. Tasks are named by their function; EyeTok's actors,
which all run in tasks of the supervisor, by their names (``actor:history``). What the
event loop's thread spent outside every task step (the scheduler: epoll, the run queue,
callbacks from worker threads) is the ``scheduler and callbacks`` row.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench.ingest import ROOT

# what a task's function does, for the report (the rest go by their function's name)
_MEANING = {
    "hypercorn.trio.task_group._handle": "HTTP request (hypercorn: the ASGI app's task)",
    "trio._highlevel_serve_listeners._run_handler": "HTTP connection (hypercorn: read, parse)",
    "hypercorn.trio.tcp_server.TCPServer._idle_timeout": "HTTP idle timer (hypercorn)",
    "actors.delivery.run_delivery.<locals>.run_lane": "delivery lanes (render, sign, send)",
}


def recorder_prefix(out: Path) -> list[str]:
    """Prepended to a server's argv (which begins with this Python): the recorder."""
    return [sys.executable, str(ROOT / "bench" / "task_steps.py"), str(out)]


class TaskWindow:
    """Totals asked of one server's recorder at the start and the end of a window."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid = pid
        self.out = out
        self._asked = 0
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None

    def mark(self) -> None:
        """The totals so far: the window's start the first time, its end the second."""
        totals = self._ask()
        if self.start is None:
            self.start = totals
        else:
            self.end = totals

    def _ask(self, limit_s: float = 5.0) -> dict[str, Any] | None:
        path = Path(f"{self.out}.{self._asked}.json")
        self._asked += 1
        try:
            os.kill(self.pid, signal.SIGUSR2)
        except ProcessLookupError:
            return None
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if path.exists():
                loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
                return loaded
            time.sleep(0.01)
        return None

    def per_request(self, answered: int) -> dict[str, Any] | None:
        return per_request(self.start, self.end, answered)


def per_request(
    start: dict[str, Any] | None, end: dict[str, Any] | None, answered: int
) -> dict[str, Any] | None:
    """CPU (us) and steps per request by task; passes of the scheduler per request; what
    the thread spent outside task steps. None when either end of the window is missing."""
    if start is None or end is None or answered < 1:
        return None
    tasks: dict[str, dict[str, float]] = {}
    in_steps = 0.0
    for name, (cpu, steps) in end["tasks"].items():
        cpu0, steps0 = start["tasks"].get(name, (0.0, 0))
        if steps - steps0 <= 0:
            continue
        in_steps += cpu - cpu0
        tasks[name] = {
            "cpu_us": round((cpu - cpu0) * 1e6 / answered, 1),
            "steps": round((steps - steps0) / answered, 2),
        }
    thread = end["thread_cpu_s"] - start["thread_cpu_s"]
    return {
        "tasks": tasks,
        "passes": round((end["passes"] - start["passes"]) / answered, 2),
        "outside_steps_us": round((thread - in_steps) * 1e6 / answered, 1),
        "thread_us": round(thread * 1e6 / answered, 1),
    }


def report_lines(ceiling: dict[str, Any] | None, eyetok: dict[str, Any] | None) -> list[str]:
    """The table: a row per task (at least 1 us per request on either side), then the
    scheduler's share and the event loop's thread in all."""
    if ceiling is None and eyetok is None:
        return []
    c = ceiling or {"tasks": {}}
    e = eyetok or {"tasks": {}}

    def cell(side: dict[str, Any], name: str) -> str:
        t = side["tasks"].get(name)
        return f"{t['cpu_us']:>9,.1f} {t['steps']:>6.2f}" if t else f"{'-':>9} {'':>6}"

    names = sorted(
        set(c["tasks"]) | set(e["tasks"]),
        key=lambda n: (
            -max(e["tasks"].get(n, {}).get("cpu_us", 0.0), 0.0)
            - c["tasks"].get(n, {}).get("cpu_us", 0.0) / 1e3
        ),
    )
    lines = [
        "",
        "event loop CPU per request by task (--task-cpu: a trio Instrument reads the "
        "thread's CPU clock around every task step; its own cost, several us per step, "
        "is mostly in the scheduler row)",
        f"  {'task':58}{'ceiling us':>10} {'steps':>6}{'EyeTok us':>11} {'steps':>6}",
    ]
    for name in names:
        big = max(
            c["tasks"].get(name, {}).get("cpu_us", 0.0), e["tasks"].get(name, {}).get("cpu_us", 0.0)
        )
        if big < 1.0:
            continue
        label = _MEANING.get(name, name)[:57]
        lines.append(f"  {label:58}{cell(c, name)}  {cell(e, name)}")

    def total(side: dict[str, Any], key: str) -> str:
        value = side.get(key)
        return f"{value:>9,.1f} {'':>6}" if value is not None else f"{'-':>9} {'':>6}"

    lines.append(
        f"  {'scheduler and callbacks (outside task steps)':58}"
        f"{total(c, 'outside_steps_us')}  {total(e, 'outside_steps_us')}"
    )
    lines.append(f"  {'event loop thread, all':58}{total(c, 'thread_us')}  {total(e, 'thread_us')}")
    passes = (
        f"  task steps per request: ceiling {_steps(c)}, EyeTok {_steps(e)}; scheduler passes "
        f"per request: ceiling {c.get('passes', '-')}, EyeTok {e.get('passes', '-')}"
    )
    lines.append(passes)
    return lines


def _steps(side: dict[str, Any]) -> str:
    """All task steps per request on one side ("-" when it was not recorded)."""
    if not side["tasks"]:
        return "-"
    return f"{sum(t['steps'] for t in side['tasks'].values()):.1f}"
