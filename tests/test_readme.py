"""The README stays true: its commands are the ones CI runs, and its examples work."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from eyetok.config import parse_file_config, settings_from

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_readme_starts_with_the_run_and_the_test_command() -> None:
    run, test = (block.strip() for block in _blocks("sh")[:2])
    assert README.index(run) < README.index(test) < README.index("## What EyeTok is")
    assert run.endswith("uv run eyetok run")
    assert test.endswith("uv run pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()


def test_the_replay_example_runs() -> None:
    [example] = [b for b in _blocks("sh") if "replay --explain" in b]
    argv = shlex.split(example.strip())
    assert argv[:5] == ["python3", "-m", "uv", "run", "eyetok"]
    result = subprocess.run(
        [sys.executable, "-m", "eyetok.cli", *argv[5:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["action"] for line in lines] == ["open", "resolve"]
    assert lines[0]["sev_channel"] == "SEV2.5"


def test_the_yaml_example_is_valid_configuration() -> None:
    example = _blocks("yaml")[0]  # the first yaml block is the configuration example
    settings = settings_from(parse_file_config(example), {"ACME_SENTRY_SECRET": "s"})
    acme = settings.tenants["acme"]
    assert acme.sentry_secret == "s"
    assert acme.policy.business_hours.zone == "Europe/London"


def test_the_procfile_declares_the_one_process_as_web() -> None:
    procfile = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    assert procfile == ["web: eyetok run"]
    app = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))
    assert "web" in app["formation"]
    for variable in app["env"]:
        assert f"`{variable}`" in README
