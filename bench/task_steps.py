"""Where an event loop's CPU goes, task by task: a trio Instrument around a server.

    python bench/task_steps.py OUT [python] -m eyetok.cli run --host 127.0.0.1
    python bench/task_steps.py OUT [python] bench/ceiling_app.py --host 127.0.0.1 ...

runs the module (``-m``) or script after it with an Instrument added to every
``trio.run``: each task step's CPU time (``time.thread_time``) is added to the step's
task, named by its function, and an EyeTok actor by its name under the supervisor
(``actor:history``: every actor runs in a task of ``Supervisor._supervise``). The
scheduler's passes (each ``before_io_wait``) are counted too. On SIGUSR2 the totals so
far are written to ``OUT.<n>.json`` (n = 0, 1, ...; written whole, then renamed), so a
bench takes them at the start and at the end of its window and subtracts
(``bench/ingest/task_cpu.py``). The recorder costs CPU of its own: trio calls an
instrument's hooks through a generic dispatch, twice per step, and each hook reads the
clock. On a loop of bare checkpoints it added 8-14 us per step on the 2-core machine of
issue 20 (its step itself then read 8-12 us, the hooks' tails inside it); the rest lands
between steps, in the scheduler's share. Both servers of a bench pay it per step (about
19 steps per request for the ceiling, 22 for EyeTok): compare rows, not totals with a run
without it.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from types import FrameType
from typing import Any

import trio
import trio.abc
import trio.lowlevel

_SUPERVISED = "actors.supervisor.Supervisor._supervise"


class TaskSteps(trio.abc.Instrument):
    """CPU seconds and steps per task name; scheduler passes."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.steps: dict[str, int] = {}
        self.passes = 0
        # the actors' tasks (a few dozen, long-lived) -> "actor:<name>"; the task itself is
        # kept with its name, so that no other task can take its id (after_task_step
        # follows task_exited, so an entry cannot be dropped at exit)
        self._actors: dict[int, tuple[trio.lowlevel.Task, str]] = {}
        self._started = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        spent = time.thread_time() - self._started
        name = task.name
        if name == _SUPERVISED:
            name = self._actor_of(task)
        self.cpu[name] = self.cpu.get(name, 0.0) + spent
        self.steps[name] = self.steps.get(name, 0) + 1

    def before_io_wait(self, timeout: float) -> None:
        self.passes += 1

    def _actor_of(self, task: trio.lowlevel.Task) -> str:
        """``actor:<name>`` of a supervisor's task: the name of the ChildSpec it runs."""
        known = self._actors.get(id(task))
        if known is not None and known[0] is task:
            return known[1]
        frame = getattr(task.coro, "cr_frame", None)
        spec = frame.f_locals.get("spec") if isinstance(frame, FrameType) else None
        actor = getattr(spec, "name", None)
        if not isinstance(actor, str):
            return task.name  # its coroutine has finished: nothing to look at
        self._actors[id(task)] = (task, f"actor:{actor}")
        return f"actor:{actor}"

    def totals(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "tasks": {n: [self.cpu[n], self.steps[n]] for n in self.cpu},
            "thread_cpu_s": time.thread_time(),
        }


def main() -> None:
    out = sys.argv[1]
    rest = sys.argv[2:]
    if rest and os.path.basename(rest[0]).startswith("python"):
        rest = rest[1:]  # the server's argv as a bench builds it: this Python first
    recorder = TaskSteps()
    written = [0]

    def dump(signum: int, frame: object) -> None:
        path = f"{out}.{written[0]}.json"
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(recorder.totals(), f)
        os.replace(path + ".tmp", path)
        written[0] += 1

    signal.signal(signal.SIGUSR2, dump)
    real_run = trio.run

    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["instruments"] = [*kwargs.get("instruments", ()), recorder]
        return real_run(*args, **kwargs)

    trio.run = run  # type: ignore[assignment]
    if rest[:1] == ["-m"]:
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path.insert(0, os.path.dirname(os.path.abspath(rest[0])))
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
