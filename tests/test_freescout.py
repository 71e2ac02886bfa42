"""eyetok/freescout.py: the configuration, the canonical labels, the request shapes as
the fake FreeScout (which validates them as FreeScout does) accepts them, and how every
answer is classified."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from eyetok.config import parse_file_config
from eyetok.errors import ConfigError, PermanentDeliveryError, RetryableDeliveryError
from eyetok.freescout import (
    FreeScoutLink,
    FreeScoutOptions,
    close_body,
    conversation_body,
    label_cases,
    label_problems,
    link_from,
    note_body,
    tags_of,
)
from eyetok.freescout_api import FreeScoutClient, FreeScoutRefusedError, classify
from eyetok.messages import Incident, SevChannel, Severity
from tests.conftest import daemon_settings
from tests.peers.freescout import API_KEY, MAILBOX_ID, FakeFreeScout
from tests.pg import incident
from tests.test_check import eyetok_check

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    "FREESCOUT_URL": "https://help.example/",
    "FREESCOUT_API_KEY": "k3y",
    "FREESCOUT_MAILBOX_ID": "3",
}


def _incident(
    severity: Severity = Severity.HIGH, channel: SevChannel | None = SevChannel.SEV2
) -> Incident:
    return msgspec.structs.replace(
        incident("inc_abc"), severity=severity, sev_channel=channel, rule="heroku-h12"
    )


@pytest.fixture
def freescout() -> Iterator[FakeFreeScout]:
    with FakeFreeScout() as fake:
        yield fake


def test_the_link_comes_from_the_environment_and_hides_its_key() -> None:
    link = link_from(FreeScoutOptions(), ENV)
    assert link == FreeScoutLink(url="https://help.example", api_key="k3y", mailbox_id=3)
    assert "k3y" not in repr(link)
    assert link_from(FreeScoutOptions(), {}) is None  # not configured: no trail


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({**ENV, "FREESCOUT_API_KEY": ""}, "FREESCOUT_API_KEY"),
        ({**ENV, "FREESCOUT_MAILBOX_ID": "inbox"}, "FREESCOUT_MAILBOX_ID"),
        ({**ENV, "FREESCOUT_URL": "help.example"}, "FREESCOUT_URL"),
    ],
)
def test_a_half_configured_link_is_a_config_error_naming_the_variable(
    env: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        link_from(FreeScoutOptions(), env)
    assert refused.value.field == field


def test_the_config_section_is_strict() -> None:
    config = parse_file_config("freescout:\n  channels: [SEV1]\n  user_id: 7\n")
    assert config.freescout.channels == (SevChannel.SEV1,)
    with pytest.raises(ConfigError, match="freescout"):
        parse_file_config("freescout:\n  chanels: [SEV1]\n")
    with pytest.raises(ConfigError, match=r"freescout\.max_age_s"):
        link_from(FreeScoutOptions(max_age_s=0), ENV)


def test_the_tags_are_the_canonical_labels_exactly() -> None:
    assert tags_of(_incident()) == ("high", "SEV2", "acme", "heroku-h12")
    assert label_problems(_incident()) == []
    wrong = label_problems(_incident(Severity.HIGH, SevChannel.SEV1))
    assert wrong
    assert "never posted in 'SEV1'" in wrong[0]
    assert label_problems(_incident(Severity.INFO, None))  # no label for audit-only
    cases = dict(label_cases("operator"))
    assert cases["freescout-labels/fatal/SEV1"] == []
    assert {"freescout-labels/heroku-h12/SEV2", "freescout-labels/heroku-h12/SEV2.5"} <= set(cases)
    assert all(problems == [] for problems in cases.values())


@pytest.mark.parametrize(
    ("status", "retry_after", "kind", "after"),
    [
        (429, "30", RetryableDeliveryError, 30.0),
        (429, None, RetryableDeliveryError, 1.0),
        (503, "5", RetryableDeliveryError, 5.0),
        (500, None, RetryableDeliveryError, None),
        (401, None, FreeScoutRefusedError, None),
        (403, None, FreeScoutRefusedError, None),
        (422, None, PermanentDeliveryError, None),
    ],
)
def test_every_answer_is_classified(
    status: int, retry_after: str | None, kind: type[Exception], after: float | None
) -> None:
    error = classify(status, retry_after, "open the conversation")
    assert type(error) is kind
    if isinstance(error, RetryableDeliveryError):
        assert error.retry_after == after


async def test_the_shapes_are_what_freescout_accepts(freescout: FakeFreeScout) -> None:
    link = FreeScoutLink(url=freescout.base_url, api_key=API_KEY, mailbox_id=MAILBOX_ID)
    options = FreeScoutOptions()
    client = FreeScoutClient(link, timeout_s=5)
    try:
        incident = _incident()
        assert await client.find(incident.incident_id) is None
        opened = await client.create(conversation_body(incident, link, options, "first"))
        await client.add_note(opened.conversation_id, note_body("a note", options))
        await client.close(opened.conversation_id, close_body(options))
        found = await client.find(incident.incident_id)
        assert found is not None
        assert found.conversation_id == opened.conversation_id
    finally:
        await client.aclose()
    [conversation] = freescout.conversations
    assert conversation.status == "closed"
    assert [t.text for t in conversation.threads] == ["first", "a note"]
    assert all(c.status in (200, 201, 204) for c in freescout.calls())


async def test_the_fake_refuses_what_freescout_refuses(freescout: FakeFreeScout) -> None:
    async with httpx.AsyncClient(base_url=freescout.base_url) as http:
        no_key = await http.get("/api/conversations")
        assert no_key.status_code == 401
        headers = {"X-FreeScout-API-Key": API_KEY}
        body = conversation_body(
            _incident(),
            FreeScoutLink(url="", api_key="", mailbox_id=MAILBOX_ID),
            FreeScoutOptions(),
            "x",
        )
        del body["threads"][0]["user"]
        bad = await http.post("/api/conversations", json=body, headers=headers)
        assert bad.status_code == 400
        assert bad.json()["_embedded"]["errors"][0]["path"] == "threads[0].user"
        unknown = await http.put("/api/conversations/9", json={"byUser": 1}, headers=headers)
        assert unknown.status_code == 404


def test_settings_without_freescout_add_no_trail(tmp_path: Path) -> None:
    settings = daemon_settings(tmp_path, None)
    assert settings.freescout_link is None
    assert list(msgspec.to_builtins(settings.freescout)["channels"]) == ["SEV1", "SEV2", "SEV2.5"]
    configured = daemon_settings(tmp_path, None, **ENV)
    assert configured.freescout_link is not None
    assert configured.freescout_link.mailbox_id == 3


def test_eyetok_check_holds_the_tags_against_the_canonical_table() -> None:
    done = eyetok_check()
    assert done.returncode == 0, done.stdout + done.stderr
    labels = [line for line in done.stdout.splitlines() if "freescout-labels/" in line]
    assert "ok freescout-labels/fatal/SEV1" in labels
    assert "ok freescout-labels/heroku-h12/SEV2.5" in labels
    assert all(line.startswith("ok ") for line in labels)
    assert len(labels) == len(label_cases("operator"))


def test_the_readme_freescout_example_is_valid_configuration() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [example] = [
        b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S) if "freescout:" in b
    ]
    config = parse_file_config(example)
    assert config.freescout == FreeScoutOptions(user_id=1, max_age_s=3600)
    assert link_from(config.freescout, ENV) is not None


def test_the_key_is_a_credential_the_rotation_reminder_tracks(tmp_path: Path) -> None:
    from schedules.credentials import credentials_of

    assert credentials_of(daemon_settings(tmp_path, None, **ENV))["FREESCOUT_API_KEY"] == "k3y"
    assert "FREESCOUT_API_KEY" not in credentials_of(daemon_settings(tmp_path, None))
