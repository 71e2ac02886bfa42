"""The playbook registry as the config loads it: typed actions, refusals naming the
field path, matching, and credentials that never reach a post or a log line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.errors import ConfigError
from eyetok.messages import SevChannel
from eyetok.playbooks.config import HerokuRestartDyno, Registry
from eyetok.playbooks.kinds import call_of, shown
from tests.playbooks.rig import incident


def load(yaml_text: str, **env: str) -> Registry:
    return settings_from(parse_file_config(yaml_text), {"PORT": "0", **env}).playbooks


def refusal(yaml_text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(yaml_text)
    return caught.value


def test_a_sev3_playbook_whose_triage_writes_is_refused_with_its_path() -> None:
    error = refusal(
        """
playbooks:
  - name: raxx-health
    match: {sev: [SEV3]}
    triage:
      - name: check
        action: {kind: http.check, url: "https://raxx-prod.example/healthz"}
      - name: restart
        action: {kind: heroku.restart_dyno, app: raxx-prod, dyno: web}
"""
    )
    assert error.field == "playbooks[0].triage[1].action"
    assert "heroku.restart_dyno is not read-only" in str(error)
    assert "SEV3" in str(error)


@pytest.mark.parametrize(
    ("yaml_text", "field", "says"),
    [
        (
            "playbooks: [{name: x, match: {sev: [SEV2]}, remediation: {name: r, "
            "action: {kind: heroku.reboot, app: a}}}]",
            "playbooks[0].remediation.action.kind",
            "heroku.reboot",
        ),
        (
            "playbooks: [{name: x, match: {sev: [SEV2]}, remediation: {name: r, "
            "action: {kind: heroku.restart_dyno, app: a}}}]",
            "playbooks[0].remediation.action",
            "dyno",
        ),
        (
            "playbooks: [{name: x, match: {sev: [SEV1]}, remediation: {name: r, "
            "action: {kind: heroku.restart_dyno, app: a, dyno: web}}}]",
            "playbooks[0].match.sev[0]",
            "SEV1",
        ),
        (
            "playbooks: [{name: x, match: {sev: [SEV2], title: 'H12('}, remediation: "
            "{name: r, action: {kind: heroku.restart_dyno, app: a, dyno: web}}}]",
            "playbooks[0].match.title",
            "not a regular expression",
        ),
        (
            "playbooks: [{name: x, tenant: nobody, match: {sev: [SEV2]}, remediation: "
            "{name: r, action: {kind: heroku.restart_dyno, app: a, dyno: web}}}]",
            "playbooks[0].tenant",
            "no tenant named 'nobody'",
        ),
        (
            "playbooks: [{name: x, match: {sev: [SEV3]}}]",
            "playbooks[0].triage",
            "triage steps, a remediation or both",
        ),
        (
            "playbooks: [{name: x, match: {sev: [SEV3]}, triage: [{name: c, action: "
            "{kind: http.check, url: 'ftp://x'}}]}]",
            "playbooks[0].triage[0].action.url",
            "not an http(s) URL",
        ),
    ],
)
def test_bad_playbooks_are_refused_naming_the_field(yaml_text: str, field: str, says: str) -> None:
    error = refusal(yaml_text)
    assert error.field == field
    assert says in str(error)


def test_matching_and_the_credential_that_stays_out_of_sight() -> None:
    registry = load(
        """
integrations:
  heroku: {api_url: "http://127.0.0.1:9", token_env: RAXX_HEROKU_TOKEN}
playbooks:
  - name: only-tagged
    match: {sev: [SEV2], tags: {app: raxx-prod}, source: [sentry]}
    remediation: {name: r, action: {kind: heroku.restart_dyno, app: raxx-prod, dyno: web.1}}
  - name: h12
    match: {sev: [SEV2, SEV2.5], rule: [heroku-h12], title: "(?i)h12"}
    remediation: {name: r, action: {kind: heroku.restart_dyno, app: raxx-prod, dyno: web}}
""",
        RAXX_HEROKU_TOKEN="hrku-secret-value",
    )
    h12 = incident()
    assert registry.match(h12, source="sentry", tags={}).name == "h12"  # type: ignore[union-attr]
    tagged = registry.match(h12, source="sentry", tags={"app": "raxx-prod"})
    assert tagged is not None
    assert tagged.name == "only-tagged"
    assert registry.match(h12, source="generic", tags={"app": "raxx-prod"}).name == "h12"  # type: ignore[union-attr]
    assert registry.match(incident(channel=SevChannel.SEV3), source="sentry") is None
    assert registry.match(incident(channel=SevChannel.SEV1), source="sentry") is None
    assert registry.secret("RAXX_HEROKU_TOKEN") == "hrku-secret-value"
    assert "hrku-secret-value" not in repr(registry)
    remediation = tagged.remediation
    assert remediation is not None
    assert isinstance(remediation.action, HerokuRestartDyno)
    said = shown(call_of(remediation.action, h12, registry.integrations))
    assert said == "heroku.restart_dyno: DELETE http://[ip]:9/apps/raxx-prod/dynos/web.1"
    assert "hrku" not in said


def test_the_readme_playbook_example_loads() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Playbooks") :]
    [example] = [b for b in re.findall(r"```yaml\n(.*?)```", section, flags=re.S)][:1]
    registry = load(example, HEROKU_API_TOKEN="t", SENTRY_API_TOKEN="s")
    assert [p.name for p in registry.playbooks] == ["raxx-h12-storm", "raxx-sev3-triage"]
    h12 = registry.match(incident(), source="sentry")
    assert h12 is not None
    assert h12.remediation is not None
    assert shown(call_of(h12.remediation.action, incident(), registry.integrations)) == (
        "heroku.restart_dyno: DELETE https://api.heroku.com/apps/raxx-prod/dynos/web"
    )
    sev3 = incident(channel=SevChannel.SEV3, rule="warning")
    assert registry.match(sev3, source="sentry", tags={"app": "raxx-prod"}) is not None
    assert registry.secret("HEROKU_API_TOKEN") == "t"
