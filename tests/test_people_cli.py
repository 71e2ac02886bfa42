"""``eyetok role`` and ``eyetok changes`` from a terminal, against the daemon running
in-process: a hat switch, the list of pending changes with their diff, and an approval
that only a second person can give."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from eyetok import cli, log
from harness.peers.slack import FakeSlack
from tests.http.test_access import NEW_ROUTES, open_sev1, running, token_of
from tests.verify import ROOT_TOKEN


async def eyetok(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, token: str, *argv: str
) -> tuple[int, str, str]:
    """Run the CLI in a worker thread (it is synchronous), as the person holding ``token``;
    the daemon's own log lines share the captured stdout."""
    monkeypatch.setenv("EYETOK_TOKEN", token)
    status = await trio.to_thread.run_sync(cli.main, list(argv))
    out, err = capsys.readouterr()
    return status, out, err


async def test_role_switch_and_the_review_from_the_terminal(
    nursery: trio.Nursery,
    tmp_path: Path,
    fake_slack: FakeSlack,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EYETOK_ROOT_TOKEN", ROOT_TOKEN)
    # the CLI would bind the log to pytest's captured stdout, closed after this test
    monkeypatch.setattr(log, "configure", lambda level="info": None)
    async with running(nursery, tmp_path, fake_slack) as (daemon, api):
        url = f"http://127.0.0.1:{daemon.bound_port}"
        alice = (await token_of(api, "U0ALICE"))["authorization"].removeprefix("Bearer ")
        bob = (await token_of(api, "U0BOB"))["authorization"].removeprefix("Bearer ")
        capsys.readouterr()
        as_alice = ("--url", url)
        status, out, err = await eyetok(
            capsys, monkeypatch, alice, "role", "switch", "tenant_scoped_operator",
            "--tenant", "acme", "--for", "8h", "--why", "cover for Sam", *as_alice,
        )  # fmt: skip
        assert status == 0, err
        assert "You wear tenant_scoped_operator for acme until " in out
        status, out, err = await eyetok(capsys, monkeypatch, alice, "role", "whoami", *as_alice)
        assert "U0ALICE holds " in out
        assert "wears tenant_scoped_operator" in out
        proposed = await api.put(
            "/api/v1/tenants/acme/routes",
            json={**NEW_ROUTES, "why": "acme moved its on-call to the war room"},
            headers={"authorization": f"Bearer {alice}"},
        )
        change_id = proposed.json()["change"]["change_id"]
        status, out, _ = await eyetok(
            capsys, monkeypatch, bob, "changes", "list", "--status", "pending", *as_alice
        )
        assert status == 0
        assert f"{change_id}  PENDING   acme  tenant_routes  by person:U0ALICE" in out
        assert '+      "target": "#acme-war-room"' in out
        status, _, err = await eyetok(
            capsys, monkeypatch, alice, "changes", "approve", change_id,
            "--why", "it is fine", *as_alice,
        )  # fmt: skip
        assert status == 1
        assert "HTTP 403" in err
        assert "two-person rule" in err
        status, out, err = await eyetok(
            capsys, monkeypatch, bob, "changes", "approve", change_id,
            "--why", "matches the acme on-call page", *as_alice,
        )  # fmt: skip
        assert status == 0, err
        assert f"{change_id} is applied (person:U0BOB): applied: HTTP 200" in out
        status, out, _ = await eyetok(capsys, monkeypatch, alice, "role", "end", *as_alice)
        assert status == 0
        assert "taken off" in out

        # eyetok ack acts as the person in EYETOK_TOKEN too
        incident_id = await open_sev1(api)
        vic = (await token_of(api, "U0VIC"))["authorization"].removeprefix("Bearer ")
        carol = (await token_of(api, "U0CAROL"))["authorization"].removeprefix("Bearer ")
        capsys.readouterr()
        ack = ("ack", incident_id, "--by", "someone", *as_alice)
        status, _, err = await eyetok(capsys, monkeypatch, vic, *ack)
        assert status == 1
        assert "needs the role responder" in err
        status, out, err = await eyetok(capsys, monkeypatch, carol, *ack)
        assert status == 0, err
        assert f"Acknowledged {incident_id} as person:U0CAROL as responder." in out
