"""The processes of a run: EyeTok, the ceiling, the fake Slack, py-spy; their RSS and
CPU as the bench samples them; each stopped in a ``finally``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.ingest import HOST, ROOT, SLACK_TOKEN
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, verify_slack_sync


class RssSampler:
    """Peak RSS of a process and all its descendants, sampled every ``interval_s``; and
    apart, the anonymous part (``RssAnon``: the Python heap, malloc's arenas, DuckDB's
    buffers) and the file-backed part (``RssFile`` and shared memory: the libraries'
    pages), each with its own peak (not necessarily at the same sample)."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak = 0
        self.last = 0
        self.peak_anon = 0
        self.last_anon = 0
        self.peak_file = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss-{pid}", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return
        children: list[psutil.Process] = []
        while not self._stop.is_set():
            total = shared = 0
            try:
                info = proc.memory_info()
                total, shared = info.rss, info.shared  # shared: RssFile + RssShmem
                # Listing descendants scans /proc (~2 ms here): refresh it once a second.
                if self.samples % max(1, round(1.0 / self.interval_s)) == 0:
                    children = proc.children(recursive=True)
                for child in children:
                    with contextlib.suppress(psutil.Error):
                        info = child.memory_info()
                        total += info.rss
                        shared += info.shared
            except psutil.Error:
                return
            self.last = total
            self.peak = max(self.peak, total)
            self.last_anon = total - shared
            self.peak_anon = max(self.peak_anon, total - shared)
            self.peak_file = max(self.peak_file, shared)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=2.0)
        return self.peak


def cpu_snapshot(pid: int) -> dict[str, float]:
    """CPU seconds of a process so far: all threads (exited ones included) and the main one."""
    try:
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        main = next((t.user_time + t.system_time for t in proc.threads() if t.id == pid), 0.0)
        return {"total": times.user + times.system, "main": main}
    except psutil.Error:
        return {"total": 0.0, "main": 0.0}


def cpu_figures(
    before: dict[str, float], after: dict[str, float], answered: int, seconds: float, prefix: str
) -> dict[str, float]:
    total = after["total"] - before["total"]
    main = after["main"] - before["main"]
    per = 1e6 / max(answered, 1)
    return {
        f"{prefix}cpu_s": round(total, 3),
        f"{prefix}cpu_cores": round(total / max(seconds, 1e-9), 2),
        f"{prefix}cpu_us_per_request": round(total * per, 1),
        f"{prefix}main_thread_cpu_us_per_request": round(main * per, 1),
        f"{prefix}other_threads_cpu_us_per_request": round((total - main) * per, 1),
    }


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    files: list[Any] = field(default_factory=list)
    cpu_s_at_exit: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; the exit code (None if killed).

        The process is reaped with ``wait4`` so its whole-life CPU (all threads, until exit:
        the work it finishes after SIGTERM included) lands in :attr:`cpu_s_at_exit`."""
        code = self.popen.poll()
        if code is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            code = self._reap(grace_s)
            if code is None:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self._reap(5.0)
                code = None
        for f in self.files:
            with contextlib.suppress(OSError):
                f.close()
        return code

    def _reap(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for the exit; record its rusage. The exit code, or None."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                pid, status, usage = os.wait4(self.popen.pid, os.WNOHANG)
            except ChildProcessError:  # already reaped (by poll())
                return self.popen.returncode
            if pid:
                self.cpu_s_at_exit = usage.ru_utime + usage.ru_stime
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                return self.popen.returncode
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)


def _read_json_line(proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> dict[str, Any]:
    """The first stdout line of ``proc`` as JSON, within ``timeout_s``."""
    assert proc.stdout is not None
    box: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: box.setdefault("line", proc.stdout.readline()))
    reader.daemon = True
    reader.start()
    reader.join(timeout_s)
    line = box.get("line", b"")
    if not line:
        raise RuntimeError(f"{what} printed nothing within {timeout_s}s (exit {proc.poll()})")
    return json.loads(line)


def clean_env() -> dict[str, str]:
    drop = ("EYETOK_", "SENTRY_CLIENT_SECRET", "SLACK_", "DATABASE_URL", "PORT")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def start_ceiling(
    secret: str, workdir: Path, *, token: str | None = None, prefix: list[str] | None = None
) -> tuple[Proc, int]:
    """The bare ASGI ceiling on a free port; ``token``: the bearer token its batch hooks
    (``bench/batched.py``) require; ``prefix``: prepended to its argv (a recorder)."""
    workdir.mkdir(parents=True, exist_ok=True)
    err = (workdir / "ceiling.stderr").open("ab")
    argv = [sys.executable, str(ROOT / "bench" / "ceiling_app.py"), "--host", HOST]
    # "--opt=value": a random secret or token may begin with "-" (1 in 64 of token_urlsafe)
    argv += ["--port", "0", f"--secret={secret}"]
    if token is not None:
        argv.append(f"--token={token}")
    argv = (prefix or []) + argv
    popen = subprocess.Popen(argv, cwd=ROOT, env=clean_env(), stdout=subprocess.PIPE, stderr=err)
    proc = Proc("ceiling", popen, [err])
    try:
        port = int(_read_json_line(popen, 30.0, "ceiling_app")["port"])
    except Exception:
        proc.stop()
        raise
    return proc, port


def start_fake_slack(workdir: Path) -> tuple[Proc, str]:
    err = (workdir / "fake_slack.stderr").open("wb")
    popen = subprocess.Popen(
        [sys.executable, "-m", "harness.peers.slack", "--port", "0", "--token", SLACK_TOKEN],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=err,
    )
    proc = Proc("fake_slack", popen, [err])
    try:
        base_url = str(_read_json_line(popen, 30.0, "fake Slack")["base_url"])
    except Exception:
        proc.stop()
        raise
    return proc, base_url


@dataclass
class Daemon:
    proc: Proc
    port: int
    data_dir: Path
    log_path: Path
    ready_s: float


_SWITCH_INTERVAL_BOOT = (
    "import runpy, sys; sys.setswitchinterval(float(sys.argv.pop(1))); "
    "runpy.run_module('eyetok.cli', run_name='__main__', alter_sys=True)"
)


def start_eyetok(
    *,
    secret: str,
    slack_url: str,
    data_dir: Path,
    config_yaml: str | None,
    profile_path: Path | None = None,
    prefix: list[str] | None = None,
    switch_interval: float | None = None,
    extra_env: dict[str, str] | None = None,
    port: int = 0,
    name: str = "eyetok",
) -> Daemon:
    """``port`` 0 lets the daemon pick one; ``name`` is the stem of its log files."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    env.update(
        PORT=str(port),
        EYETOK_DATA_DIR=str(data_dir / "data"),
        SENTRY_CLIENT_SECRET=secret,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_API_URL=slack_url,
        EYETOK_ROOT_TOKEN=ROOT_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SIGNING_SECRET,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    if config_yaml is not None:
        config_path = data_dir / "eyetok.yaml"
        config_path.write_text(config_yaml, encoding="utf-8")
        env["EYETOK_CONFIG"] = str(config_path)
    argv = [sys.executable]
    if profile_path is not None:
        argv += ["-m", "cProfile", "-o", str(profile_path)]
    if switch_interval:
        # A what-if, not a change to the daemon: the same entry point under another
        # GIL switch interval (sys.setswitchinterval; CPython's default is 5 ms).
        argv += ["-c", _SWITCH_INTERVAL_BOOT, str(switch_interval)]
    else:
        argv += ["-m", "eyetok.cli"]
    argv += ["run", "--host", HOST]
    argv = (prefix or []) + argv
    log_path = data_dir / f"{name}.log"
    out = log_path.open("wb")
    err_path = data_dir / f"{name}.stderr"
    err = err_path.open("wb")
    t0 = time.perf_counter()
    popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
    proc = Proc("eyetok", popen, [out, err])
    try:
        bound = wait_ready(popen, log_path, err_path, 60.0)
        # The Slack sink delivers only once its ownership is verified: run the real
        # handshake (a nonce DM'd through the Events API). A restart keeps it.
        verify_slack_sync(f"http://{HOST}:{bound}", "slack")
    except Exception:
        proc.stop()
        raise
    return Daemon(proc, bound, data_dir, log_path, time.perf_counter() - t0)


def wait_ready(popen: subprocess.Popen[bytes], log_path: Path, err_path: Path, limit: float) -> int:
    deadline = time.perf_counter() + limit
    port: int | None = None
    while time.perf_counter() < deadline:
        if popen.poll() is not None:
            tail = err_path.read_text(errors="replace")[-2000:] + log_path.read_text()[-2000:]
            raise RuntimeError(f"EyeTok exited with {popen.returncode} before ready:\n{tail}")
        if port is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if '"eyetok_ready"' in line:
                    port = int(json.loads(line)["port"])
                    break
        if port is not None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2.0).status_code == 200:
                    return port
        time.sleep(0.05)
    raise RuntimeError(f"EyeTok was not ready within {limit}s")


def start_py_spy(pid: int, out: Path) -> Proc:
    """Attach py-spy to ``pid`` (active samples of every thread, collapsed stacks)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    err = out.with_suffix(out.suffix + ".stderr").open("wb")
    argv = [exe, "record", "--pid", str(pid), "--threads", "--nonblocking"]
    argv += ["-r", "200", "-f", "raw", "-o", str(out)]
    popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(1.0)  # let it attach before the load starts
    return Proc("py-spy", popen, [err])


def stop_py_spy(spy: Proc) -> None:
    if spy.popen.poll() is None:
        spy.popen.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.popen.wait(timeout=30.0)
    spy.stop(5.0)
