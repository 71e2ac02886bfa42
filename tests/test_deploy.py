"""The deploy files work the first time: Heroku's at the root, every variable described,
the Slack app manifest agreeing with the daemon, the README's Deploy commands real."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import yaml

from eyetok.cli import _parser
from eyetok.config import FileConfig, settings_from
from eyetok.doctor import diagnose
from eyetok.http.app import create_app
from eyetok.onboarding import SLACK_BOT_EVENTS, SLACK_BOT_SCOPES, slack_steps

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
APP = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))
MANIFEST = yaml.safe_load((ROOT / "deploy" / "slack-app-manifest.yaml").read_text("utf-8"))


def test_heroku_finds_its_three_files_at_the_root() -> None:
    assert (ROOT / "Procfile").read_text(encoding="utf-8") == "web: eyetok run\n"
    version = (ROOT / ".python-version").read_text(encoding="utf-8").strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert requires["requires-python"] == f">={version}"
    assert not (ROOT / "deploy" / "app.json").exists()


def test_app_json_describes_every_variable_and_generates_the_root_token() -> None:
    assert re.fullmatch(r"https://github\.com/[\w-]+/[\w-]+", APP["repository"])
    env = APP["env"]
    for name, spec in env.items():
        assert spec["description"].strip(), name
        assert f"`{name}`" in README, name
    assert env["EYETOK_ROOT_TOKEN"]["generator"] == "secret"
    assert APP["addons"][0]["plan"].startswith("heroku-postgresql:")
    # what the doctor asks for on a fresh install, app.json asks for too
    fresh = diagnose(settings_from(FileConfig(), {}), environ={})
    wanted = {
        word
        for check in fresh
        if check.unlock and not check.ready
        for word in re.findall(r"\b[A-Z][A-Z_]{3,}\b", check.unlock)
    }
    assert wanted - set(env) == {"DATABASE_URL"}  # the Postgres add-on sets it
    required = {n for n, spec in env.items() if spec.get("required")}
    assert required == {
        "EYETOK_PUBLIC_URL",
        "SENTRY_CLIENT_SECRET",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
    }


def test_the_slack_manifest_agrees_with_the_daemon() -> None:
    assert tuple(MANIFEST["oauth_config"]["scopes"]["bot"]) == SLACK_BOT_SCOPES
    events = MANIFEST["settings"]["event_subscriptions"]
    assert tuple(events["bot_events"]) == SLACK_BOT_EVENTS
    assert MANIFEST["features"]["app_home"]["messages_tab_enabled"] is True
    interactivity = MANIFEST["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    app = create_app(
        readiness=dict,
        verifier=object(),  # type: ignore[arg-type]
        clock=object(),  # type: ignore[arg-type]
        operations=object(),  # type: ignore[arg-type]
    )
    routes = {rule.rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    for url in (events["request_url"], interactivity["request_url"]):
        assert url.startswith("https://eyetok.example.com/")
        assert url.removeprefix("https://eyetok.example.com") in routes


def test_the_manifest_the_readme_and_verify_slack_name_the_same_scopes() -> None:
    manifest = list(MANIFEST["oauth_config"]["scopes"]["bot"])
    # the Slack sink reads history and threads and resolves channel names (deliver.py)
    for needed in ("channels:history", "groups:history", "channels:read", "groups:read"):
        assert needed in manifest
    # every scope is explained by a comment on its line in the manifest
    text = (ROOT / "deploy" / "slack-app-manifest.yaml").read_text("utf-8")
    for scope in manifest:
        assert re.search(rf"^\s*- {re.escape(scope)} # \S", text, re.M), scope
    # the README's Slack app step lists exactly these, in this order
    step = README[README.index("**1. The Slack app.**") :]
    step = step[: step.index("**2.")]
    listed = re.search(r"the bot scopes (.*?);", step, re.S)
    assert listed is not None
    assert re.findall(r"`([^`]+)`", listed.group(1)) == manifest
    # what `eyetok verify slack` prints
    settings = settings_from(FileConfig(), {"SLACK_BOT_TOKEN": "xoxb-test"})
    lines = slack_steps(settings, "slack", "nonce")
    printed = lines[lines.index(next(x for x in lines if "bot scopes" in x)) + 1]
    assert printed.strip().split(", ") == manifest


def test_the_deploy_sections_eyetok_commands_are_real() -> None:
    section = README[README.index("## Deploy") : README.index("## Routing")]
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"exec (/opt/eyetok/\.venv/bin/eyetok [^'`]*)'", section)
    invocations = []
    for line in lines:
        argv = shlex.split(line)
        for i in range(len(argv) - 1):
            if argv[i : i + 3] == ["uv", "run", "eyetok"]:
                invocations.append(argv[i + 3 :])
            elif argv[i : i + 2] in (["--", "eyetok"], ["exec", "/opt/eyetok/.venv/bin/eyetok"]):
                invocations.append(argv[i + 2 :])
            elif i == 0 and argv[0] == "/opt/eyetok/.venv/bin/eyetok":
                invocations.append(argv[1:])
    subcommands = [argv[0] for argv in invocations]
    assert subcommands.count("doctor") >= 3
    assert {"verify", "test-alert"} <= set(subcommands)
    for argv in invocations:
        parsed = _parser().parse_args(argv)
        assert parsed.command == argv[0]
