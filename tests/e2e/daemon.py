"""Run ``eyetok run`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import httpx

from eyetok.sources import sentry
from tests.verify import ROOT_TOKEN, SLACK_SIGNING_SECRET, verify_slack_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DaemonProcess:
    """``eyetok run`` in a subprocess; its JSON log lines are collected as they come."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "EYETOK_DATA_DIR": str(data_dir),
            "EYETOK_ROOT_TOKEN": ROOT_TOKEN,
            "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            **env,
        }
        if "EYETOK_CONFIG" not in env:
            self.env.pop("EYETOK_CONFIG", None)
        self.logs: list[dict[str, object]] = []
        self.raw: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 20.0, until: str = "/readyz") -> DaemonProcess:
        """Start it and wait until ``until`` answers 200."""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "eyetok.cli", "run", "--host", "127.0.0.1"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._join()
                raise AssertionError(f"daemon exited {self._proc.returncode}: {self.raw[-20:]}")
            try:
                if httpx.get(self.url + until, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"daemon not ready in {timeout}s: {self.raw[-20:]}")

    def verify_slack(self, sink_id: str = "slack") -> DaemonProcess:
        """Run the Slack ownership handshake through the daemon's HTTP surfaces."""
        verify_slack_sync(self.url, sink_id)
        return self

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.raw.append(line.rstrip("\n"))
            with contextlib.suppress(ValueError):
                self.logs.append(json.loads(line))

    def post_sentry(
        self, body: bytes, resource: str | None, secret: str, tenant: str | None = None
    ) -> httpx.Response:
        headers = {
            "content-type": "application/json",
            "sentry-hook-signature": sentry.sign(body, secret),
        }
        if resource:
            headers["sentry-hook-resource"] = resource
        path = "/hooks/sentry" + (f"/{tenant}" if tenant else "")
        return httpx.post(self.url + path, content=body, headers=headers, timeout=15.0)

    def terminate(self, *, timeout: float = 30.0) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds the drain took."""
        assert self._proc is not None
        started = time.monotonic()
        self._proc.send_signal(signal.SIGTERM)
        code = self._proc.wait(timeout=timeout)
        elapsed = time.monotonic() - started
        self._join()
        return code, elapsed

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(timeout=10)
        self._join()

    def wait(self, timeout: float = 30.0) -> int:
        assert self._proc is not None
        code = self._proc.wait(timeout=timeout)
        self._join()
        return code

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.logs if line.get("event") == name]

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self.kill()
