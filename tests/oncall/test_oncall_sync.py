"""The IdP-bound on-call rotation against a fake SCIM IdP and the fake PagerDuty REST API:
add, remove, idempotent, a root-only member refused; the SEV2 mention follows the current
on-call; the 15-minute schedule under MockClock; the command against a running daemon."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from actors.oncall import OncallDeps, next_slot, run_oncall
from eyetok.clock import TrioWallClock
from eyetok.messages import AuditRecorded, HistoryMessage, OncallMessage, TenantsMessage
from eyetok.oncall.member import Member
from eyetok.oncall.roles import IdpRoles, PeopleRoles, fixed, root_only
from eyetok.oncall.settings import oncall_from
from harness.peers.slack import FakeSlack
from tests.conftest import FIXTURES, daemon_settings, signed_headers, start_daemon
from tests.peers.pagerduty_rest import FakePagerDutyRest
from tests.peers.scim import FakeScim
from tests.rotation.helpers import AUTH, audit, client
from tests.test_commands_talk import _eyetok
from tests.verify import ROOT_TOKEN


class Idp:
    def __init__(self) -> None:
        self.scim = FakeScim()
        self.pd = FakePagerDutyRest()

    def env(self) -> dict[str, str]:
        return {
            "EYETOK_SCIM_URL": self.scim.base_url,
            "EYETOK_SCIM_TOKEN": self.scim.token,
            "EYETOK_ONCALL_GROUP": "eyetok-oncall",
            "PAGERDUTY_API_URL": self.pd.base_url,
            "PAGERDUTY_API_TOKEN": self.pd.token,
            "PAGERDUTY_SCHEDULE_ID": self.pd.schedule_id,
            "PAGERDUTY_FROM": "ops-admin@raxx.example",
        }


@pytest.fixture
def idp() -> Iterator[Idp]:
    directory = Idp()
    with directory.scim, directory.pd:
        s = directory.scim
        s.add_user("u-ann", "ann@raxx.example", slack="U0ANN", roles=("responder",))
        s.add_user("u-bob", "bob@raxx.example", slack="U0BOB", roles=("responder", "viewer"))
        s.add_user("u-root", "root@raxx.example", slack="U0ROOT", roles=("root_operator",))
        s.set_group("g-1", "eyetok-oncall", ["u-ann", "u-bob", "u-root"])
        directory.pd.add_user("carl@raxx.example", "Carl")
        directory.pd.add_user("ann@raxx.example", "Ann")
        directory.pd.set_layer(["carl@raxx.example"])
        yield directory


async def _sync(daemon) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with client(daemon) as c:
        return await c.post("/api/v1/oncall/sync", json={"requested_by": "dana"}, headers=AUTH)


async def test_sync_adds_removes_is_idempotent_and_refuses_a_root_only_member(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, idp: Idp
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack, **idp.env()))

    first = await _sync(daemon)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert answer["added"] == ["ann@raxx.example", "bob@raxx.example"]
    assert answer["removed"] == ["carl@raxx.example"]
    assert answer["created"] == ["bob@raxx.example"]  # had no PagerDuty user yet
    assert answer["refused"] == ["root@raxx.example"]
    assert idp.pd.layer_emails == ["ann@raxx.example", "bob@raxx.example"]
    assert (idp.pd.puts, idp.pd.created) == (1, 1)

    second = (await _sync(daemon)).json()  # idempotent: nothing to change, nothing sent
    assert (second["added"], second["removed"], second["created"]) == ([], [], [])
    assert second["refused"] == ["root@raxx.example"]
    assert "nothing to change" in second["message"]
    assert (idp.pd.puts, idp.pd.created) == (1, 1)

    idp.scim.set_group("g-1", "eyetok-oncall", ["u-bob", "u-root"])  # ann leaves the group
    idp.scim.deactivate("u-bob")  # and bob leaves the company: nobody wanted is left
    third = (await _sync(daemon)).json()
    assert third["removed"] == ["ann@raxx.example", "bob@raxx.example"]
    assert idp.pd.layer_emails == []
    assert "root@raxx.example" not in idp.pd.layer_emails

    synced = [json.loads(d) for e, d in await audit(daemon, "oncall_synced")]
    assert [s["added"] for s in synced] == [["ann@raxx.example", "bob@raxx.example"], [], []]
    assert synced[2]["inactive"] == ["bob@raxx.example"]
    assert all(s["by"] == "dana" for s in synced)
    refused = [json.loads(d) for e, d in await audit(daemon, "oncall_refused")]
    assert refused[0] == {"refused": ["root@raxx.example"], "role": "root_operator"}
    daemon.request_stop()


async def test_the_sev2_mention_follows_the_current_on_call(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, idp: Idp
) -> None:
    idp.scim.set_group("g-1", "eyetok-oncall", ["u-bob", "u-root"])
    config = """\
tenants:
  operator:
    tier: operator
    policy:
      business_hours: {days: []}
      routes:
        SEV2: [{sink: slack, target: "#raxx-ops-alert-SEV2"}]
"""
    settings = daemon_settings(tmp_path, fake_slack, config=config, **idp.env())
    daemon = await start_daemon(nursery, settings)
    assert (await _sync(daemon)).json()["on_call"] == "bob@raxx.example"
    body = (FIXTURES / "event_alert_error_new_unhandled_prod.json").read_bytes()
    async with client(daemon) as c:
        posted = await c.post("/hooks/sentry", content=body, headers=signed_headers(body))
    assert posted.status_code == 202, posted.text
    [post] = await trio.to_thread.run_sync(fake_slack.wait_for_posts, 1, 10.0)
    assert post.channel == "raxx-ops-alert-SEV2"
    assert "<@U0BOB>" in str(post.blocks)
    assert "<@U0ONCALL>" not in str(post.blocks)  # the fixed id of the environment
    daemon.request_stop()


async def test_the_sync_runs_every_15_minutes_on_the_clock(
    mock_clock: trio.testing.MockClock, idp: Idp
) -> None:
    # the peers answer from threads in real time: jump only when idle for a while
    mock_clock.autojump_threshold = 0.2
    source = oncall_from(idp.env())
    assert source is not None
    clock = TrioWallClock(datetime(2026, 12, 4, 20, 7, tzinfo=UTC))
    assert next_slot(clock.now(), 900) == datetime(2026, 12, 4, 20, 15, tzinfo=UTC)
    inbox_tx, inbox_rx = trio.open_memory_channel[OncallMessage](0)
    history_tx, history_rx = trio.open_memory_channel[HistoryMessage](100)
    tenants_tx, tenants_rx = trio.open_memory_channel[TenantsMessage](100)
    deps = OncallDeps(source=source, roles=fixed(IdpRoles()), operator_tenant="operator")
    slots: list[datetime] = []
    async with inbox_tx, tenants_rx, trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(run_oncall, deps, inbox_rx, history_tx, tenants_tx, clock=clock)
        )
        while len(slots) < 2:
            message = await history_rx.receive()
            assert isinstance(message, AuditRecorded)
            if message.event == "oncall_synced":
                slots.append(clock.now().replace(second=0, microsecond=0))
        nursery.cancel_scope.cancel()
    assert slots == [
        datetime(2026, 12, 4, 20, 15, tzinfo=UTC),
        datetime(2026, 12, 4, 20, 30, tzinfo=UTC),
    ]
    assert idp.pd.layer_emails == ["ann@raxx.example", "bob@raxx.example"]
    assert idp.pd.puts == 1  # the second slot found nothing to change


async def test_the_oncall_command_talks_to_the_running_daemon(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, idp: Idp
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack, **idp.env()))
    url = f"http://127.0.0.1:{daemon.bound_port}"
    code, out, err = await _eyetok(
        "oncall", "sync", "--by", "erin", "--url", url, env={"EYETOK_ROOT_TOKEN": ROOT_TOKEN}
    )
    assert code == 0, err
    assert "added: ann@raxx.example, bob@raxx.example" in out
    assert "refused: root@raxx.example" in out
    daemon.request_stop()


async def test_an_idp_that_refuses_changes_nothing_and_says_so(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, idp: Idp
) -> None:
    env = {**idp.env(), "EYETOK_SCIM_TOKEN": "revoked"}
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack, **env))
    failed = await _sync(daemon)
    assert failed.status_code == 502
    assert "HTTP 401" in failed.json()["error"]
    assert idp.pd.layer_emails == ["carl@raxx.example"]
    assert idp.pd.puts == 0
    [(_, detail)] = await audit(daemon, "oncall_sync_failed")
    assert "revoked" not in detail
    daemon.request_stop()


async def test_without_an_idp_the_sync_is_refused_as_unconfigured(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack
) -> None:
    daemon = await start_daemon(nursery, daemon_settings(tmp_path, fake_slack))
    refused = await _sync(daemon)
    assert refused.status_code == 503
    assert "EYETOK_SCIM_URL" in refused.json()["error"]
    daemon.request_stop()


async def test_the_sync_reads_the_roles_eyetok_binds_not_the_idps(
    nursery: trio.Nursery, tmp_path: Path, fake_slack: FakeSlack, idp: Idp
) -> None:
    # EyeTok binds Ann only root_operator (the IdP says responder): refused; the IdP says
    # root_operator of root@, but EyeTok binds them responder: put on call; Bob is bound
    # nothing in EyeTok, so what the IdP says of him stands
    config = """\
people:
  - slack_user_id: U0ANN
    roles: [{role: root_operator}]
  - slack_user_id: U0ROOT
    email: root@raxx.example
    roles: [{role: responder}]
"""
    settings = daemon_settings(tmp_path, fake_slack, config=config, **idp.env())
    daemon = await start_daemon(nursery, settings)
    answer = (await _sync(daemon)).json()
    assert answer["refused"] == ["ann@raxx.example"]
    assert idp.pd.layer_emails == ["bob@raxx.example", "root@raxx.example"]
    refused = [json.loads(d) for e, d in await audit(daemon, "oncall_refused")]
    assert refused == [{"refused": ["ann@raxx.example"], "role": "root_operator"}]
    daemon.request_stop()


def test_people_roles_know_a_member_by_slack_id_or_email() -> None:
    book = PeopleRoles(
        roles={"U0ANN": frozenset({"root_operator"}), "U0CY": frozenset({"responder"})},
        emails={"cy@raxx.example": "U0CY"},
    )

    def member(email: str, slack: str | None, *idp_roles: str) -> Member:
        return Member(
            scim_id="u",
            email=email,
            name="",
            active=True,
            slack_user=slack,
            roles=frozenset(idp_roles),
        )

    assert root_only(book.roles_of(member("ann@raxx.example", "U0ANN", "responder")))
    assert book.roles_of(member("Cy@Raxx.example", None, "root_operator")) == {"responder"}
    assert book.roles_of(member("dee@raxx.example", "U0DEE", "viewer")) == {"viewer"}
