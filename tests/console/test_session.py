"""The console's session cookie: signed, tamper-evident, tied to the root token."""

from __future__ import annotations

from eyetok.console.session import Sessions, csrf_matches


def test_a_session_reads_back_and_a_forgery_does_not() -> None:
    sessions = Sessions("root-token")
    cookie = sessions.open("sam", "tenant", "acme")
    session = sessions.read(cookie)
    assert session is not None
    assert (session.name, session.standing, session.tenant) == ("sam", "tenant", "acme")
    assert session.who == "console:sam (acme)"
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, session.csrf + "x")
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "\ufffd\ufffd")  # a non-ASCII token is refused, not an error
    tampered = cookie[:5] + ("A" if cookie[5] != "A" else "B") + cookie[6:]
    assert sessions.read(tampered) is None
    assert sessions.read(Sessions("another-key").open("sam", "operator", None)) is None
    assert sessions.read(cookie[:-2]) is None
    assert sessions.read("") is None
    assert Sessions("rotated-root-token").read(cookie) is None
    assert Sessions("root-token").read(cookie) is not None  # survives a restart


def test_each_session_has_its_own_csrf_token() -> None:
    sessions = Sessions(None)
    first = sessions.read(sessions.open("sam", "operator", None))
    second = sessions.read(sessions.open("sam", "operator", None))
    assert first is not None
    assert second is not None
    assert first.csrf != second.csrf
    assert first.who == "console:sam"


def test_a_persons_session_is_judged_as_that_person() -> None:
    sessions = Sessions("root-token")
    person = sessions.read(sessions.open("Carol", "person", None, "U0CAROL"))
    assert person is not None
    assert (person.caller.kind, person.caller.id) == ("person", "U0CAROL")
    assert person.who == "console:Carol (person U0CAROL)"
    tenant = sessions.read(sessions.open("kim", "tenant", "acme"))
    assert tenant is not None
    assert (tenant.caller.kind, tenant.caller.tenant) == ("tenant_token", "acme")
    operator = sessions.read(sessions.open("sam", "operator", None))
    assert operator is not None
    assert operator.caller.kind == "root_token"
