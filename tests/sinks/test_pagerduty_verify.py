"""The PagerDuty ownership handshake (OAuth 2.0 code grant with PKCE) against a local
authorization server that enforces RFC 7636 S256."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from actors.sinks.pagerduty.verify import (
    OAuthError,
    OAuthTokens,
    PendingAuthorization,
    authorize_url,
    begin_authorization,
    challenge,
    exchange_code,
    is_verifier,
    match_callback,
    new_state,
    new_verifier,
    parse_callback,
    refresh,
    seal_verifier,
    unseal_verifier,
)
from eyetok.errors import ConfigError, EyeTokError
from eyetok.sinks.pagerduty import PagerDutySinkConfig
from harness.peers.oauth import DEFAULT_REDIRECT_URI, AuthorizeError, FakeOAuth, s256

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
UNRESERVED = re.compile(r"^[A-Za-z0-9._~-]+$")


@pytest.fixture
def fake_oauth() -> Iterator[FakeOAuth]:
    with FakeOAuth(expires_in=864000) as fake:
        yield fake


@pytest.fixture
def config(fake_oauth: FakeOAuth) -> PagerDutySinkConfig:
    return PagerDutySinkConfig(
        tenant="acme",
        routing_key_env="PD_ROUTING_KEY",
        oauth_client_id=fake_oauth.client_id,
        oauth_authorize_url=fake_oauth.authorize_url,
        oauth_token_url=fake_oauth.token_url,
        oauth_redirect_uri=DEFAULT_REDIRECT_URI,
        timeout_s=5.0,
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False) as c:
        yield c


async def authorize(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, *, sink_id: str = "pd"
) -> tuple[dict[str, PendingAuthorization], dict[str, str]]:
    """Leg 1 and 2: start a handshake, let the fake 'customer' approve, read the callback."""
    pending, url = begin_authorization(config, sink_id=sink_id, now=NOW)
    response = await client.get(url)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    return {pending.state: pending}, dict(parse_qsl(urlsplit(location).query))


# --- PKCE primitives ---------------------------------------------------------------------


def test_verifier_is_rfc7636_shaped_and_fresh() -> None:
    verifiers = {new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert UNRESERVED.match(verifier)
        assert is_verifier(verifier)
    assert len(new_verifier(32)) == 43
    assert len(new_verifier(96)) == 128
    with pytest.raises(ValueError, match="32 to 96"):
        new_verifier(31)
    assert not is_verifier("too-short")
    assert not is_verifier("x" * 129)
    assert not is_verifier("a" * 42 + "+")


def test_challenge_matches_the_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert challenge(verifier) == s256(verifier)  # the fake agrees with us
    fresh = challenge(new_verifier())
    assert len(fresh) == 43
    assert "=" not in fresh
    with pytest.raises(ValueError, match="RFC 7636"):
        challenge("not a verifier")


def test_state_is_unguessable_and_fresh() -> None:
    states = {new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(len(s) >= 43 and UNRESERVED.match(s) for s in states)


def test_authorize_url_carries_every_pkce_parameter(config: PagerDutySinkConfig) -> None:
    url = authorize_url(config, state="st4te", challenge="c" * 43)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == config.oauth_authorize_url
    assert dict(parse_qsl(parts.query)) == {
        "client_id": config.oauth_client_id,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "response_type": "code",
        "scope": "write",
        "state": "st4te",
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
    }
    read_only = authorize_url(config, state="s", challenge="c" * 43, scope="read")
    assert dict(parse_qsl(urlsplit(read_only).query))["scope"] == "read"


def test_the_handshake_needs_a_client_id_and_a_redirect_uri() -> None:
    bare = PagerDutySinkConfig(routing_key_env="PD_ROUTING_KEY")
    with pytest.raises(ConfigError) as caught:
        authorize_url(bare, state="s", challenge="c" * 43)
    assert caught.value.field == "oauth_client_id"
    no_redirect = PagerDutySinkConfig(routing_key_env="PD_ROUTING_KEY", oauth_client_id="app")
    with pytest.raises(ConfigError) as caught:
        begin_authorization(no_redirect, sink_id="pd", now=NOW)
    assert caught.value.field == "oauth_redirect_uri"


# --- the whole flow --------------------------------------------------------------------


async def test_pkce_success_gives_tokens_with_refresh_and_expiry(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    pending, callback = await authorize(config, client, sink_id="pd-acme")
    assert callback["subdomain"] == "fake"
    state, code = parse_callback(callback)
    found = match_callback(pending, state=state)
    assert found.sink_id == "pd-acme"
    assert found.issued_at == NOW

    tokens = await exchange_code(config, code=code, verifier=found.verifier, client=client, now=NOW)
    assert tokens.token_type == "bearer"
    assert tokens.access_token.startswith("pdus+_0")
    assert tokens.refresh_token is not None
    assert tokens.scope == "openid write"
    assert tokens.expires_at == NOW + timedelta(seconds=864000)
    assert not tokens.expires_within(NOW)
    assert tokens.expires_within(NOW + timedelta(days=10))
    assert fake_oauth.is_active(tokens.access_token)
    assert fake_oauth.is_active(tokens.refresh_token)

    [request] = fake_oauth.token_requests
    assert request.status == 200
    assert request.form == {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "client_id": fake_oauth.client_id,
        "code_verifier": found.verifier,
    }


async def test_a_verifier_that_does_not_match_is_invalid_grant(
    config: PagerDutySinkConfig, client: httpx.AsyncClient
) -> None:
    pending, callback = await authorize(config, client)
    state, code = parse_callback(callback)
    match_callback(pending, state=state)
    with pytest.raises(OAuthError) as caught:
        await exchange_code(config, code=code, verifier=new_verifier(), client=client, now=NOW)
    assert caught.value.error == "invalid_grant"
    assert caught.value.status == 400
    assert caught.value.retryable is False
    assert isinstance(caught.value, EyeTokError)


async def test_a_code_is_good_once(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    pending, callback = await authorize(config, client)
    state, code = parse_callback(callback)
    verifier = match_callback(pending, state=state).verifier
    tokens = await exchange_code(config, code=code, verifier=verifier, client=client, now=NOW)
    with pytest.raises(OAuthError) as caught:
        await exchange_code(config, code=code, verifier=verifier, client=client, now=NOW)
    assert caught.value.error == "invalid_grant"
    # RFC 6749 4.1.2: a replayed code revokes what it bought
    assert not fake_oauth.is_active(tokens.access_token)


async def test_an_unknown_state_is_refused(
    config: PagerDutySinkConfig, client: httpx.AsyncClient
) -> None:
    pending, callback = await authorize(config, client)
    for forged in (new_state(), "", callback["state"][:-1]):
        with pytest.raises(OAuthError) as caught:
            match_callback(pending, state=forged)
        assert caught.value.error == "invalid_state"
    with pytest.raises(OAuthError) as caught:
        parse_callback({"code": callback["code"]})  # PagerDuty's docs show no state echoed
    assert caught.value.error == "invalid_state"


async def test_refresh_trades_the_refresh_token_for_new_tokens(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    pending, callback = await authorize(config, client)
    state, code = parse_callback(callback)
    first = await exchange_code(
        config,
        code=code,
        verifier=match_callback(pending, state=state).verifier,
        client=client,
        now=NOW,
    )
    assert first.refresh_token is not None
    later = NOW + timedelta(days=9)
    second = await refresh(config, refresh_token=first.refresh_token, client=client, now=later)
    assert second.access_token != first.access_token
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.expires_at == later + timedelta(seconds=864000)
    assert second.scope == "openid write"
    assert fake_oauth.token_requests[-1].form["grant_type"] == "refresh_token"
    # the old refresh token was rotated away
    with pytest.raises(OAuthError) as caught:
        await refresh(config, refresh_token=first.refresh_token, client=client, now=later)
    assert caught.value.error == "invalid_grant"


async def test_refresh_sends_the_client_secret_when_the_app_has_one(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    fake_oauth.client_secret = "app-secret"
    pending, callback = await authorize(config, client)
    state, code = parse_callback(callback)
    tokens = await exchange_code(
        config,
        code=code,
        verifier=match_callback(pending, state=state).verifier,
        client=client,
        now=NOW,
    )
    assert tokens.refresh_token is not None
    with pytest.raises(OAuthError) as caught:
        await refresh(config, refresh_token=tokens.refresh_token, client=client, now=NOW)
    assert caught.value.error == "invalid_client"
    assert caught.value.status == 401
    renewed = await refresh(
        config,
        refresh_token=tokens.refresh_token,
        client=client,
        now=NOW,
        client_secret="app-secret",
    )
    assert renewed.refresh_token != tokens.refresh_token


# --- refusals and trouble ----------------------------------------------------------------


async def test_a_customer_who_says_no(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    fake_oauth.deny_next()
    _, callback = await authorize(config, client)
    assert "code" not in callback
    with pytest.raises(OAuthError) as caught:
        parse_callback(callback)
    assert caught.value.error == "access_denied"


def test_the_fake_insists_on_s256(fake_oauth: FakeOAuth) -> None:
    verifier = new_verifier()
    query = {
        "client_id": fake_oauth.client_id,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "response_type": "code",
        "state": "s",
        "code_challenge": challenge(verifier),
        "code_challenge_method": "S256",
    }
    assert fake_oauth.approve(query)
    for bad, error in (
        ({"code_challenge_method": "plain", "code_challenge": verifier}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"client_id": "someone-else"}, "invalid_client"),
    ):
        with pytest.raises(AuthorizeError) as caught:
            fake_oauth.approve({**query, **bad})
        assert caught.value.error == error


async def test_an_unregistered_redirect_uri_is_never_redirected_to(
    config: PagerDutySinkConfig, client: httpx.AsyncClient
) -> None:
    url = authorize_url(config, state="s", challenge=challenge(new_verifier()))
    response = await client.get(url.replace("eyetok.example", "evil.example"))
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_approve_helper_and_a_code_for_another_redirect(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    verifier = new_verifier()
    url = authorize_url(config, state="s", challenge=challenge(verifier))
    code = fake_oauth.approve(urlsplit(url).query)
    other = PagerDutySinkConfig(
        routing_key_env="PD_ROUTING_KEY",
        oauth_client_id=config.oauth_client_id,
        oauth_token_url=config.oauth_token_url,
        oauth_redirect_uri="https://eyetok.example/elsewhere",
    )
    with pytest.raises(OAuthError) as caught:
        await exchange_code(other, code=code, verifier=verifier, client=client, now=NOW)
    assert caught.value.error == "invalid_grant"


async def test_a_malformed_verifier_never_leaves(
    config: PagerDutySinkConfig, client: httpx.AsyncClient, fake_oauth: FakeOAuth
) -> None:
    with pytest.raises(OAuthError) as caught:
        await exchange_code(config, code="c", verifier="short", client=client, now=NOW)
    assert caught.value.error == "invalid_request"
    assert fake_oauth.token_requests == []


async def test_an_unreachable_token_endpoint_is_retryable(
    config: PagerDutySinkConfig, client: httpx.AsyncClient
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = PagerDutySinkConfig(
        routing_key_env="PD_ROUTING_KEY",
        oauth_client_id="app",
        oauth_redirect_uri=DEFAULT_REDIRECT_URI,
        oauth_token_url=f"http://127.0.0.1:{port}/oauth/token",
    )
    with pytest.raises(OAuthError) as caught:
        await refresh(down, refresh_token="r", client=client, now=NOW)
    assert caught.value.retryable is True
    assert "127.0.0.1" not in str(caught.value)


async def test_a_server_error_is_retryable() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>maintenance</html>")

    config = PagerDutySinkConfig(
        routing_key_env="PD_ROUTING_KEY",
        oauth_client_id="app",
        oauth_redirect_uri="https://x.example/cb",
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        with pytest.raises(OAuthError) as caught:
            await refresh(config, refresh_token="r", client=mocked, now=NOW)
    assert caught.value.error == "server_error"
    assert caught.value.retryable is True


async def test_now_must_be_aware(config: PagerDutySinkConfig, client: httpx.AsyncClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await refresh(config, refresh_token="r", client=client, now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_secrets_stay_out_of_reprs() -> None:
    tokens = OAuthTokens(
        access_token="pdus+_0XSECRET",
        refresh_token="pdus+_1XSECRET",
        token_type="bearer",
        scope="openid write",
        expires_at=NOW,
    )
    pending = PendingAuthorization(sink_id="pd", state="STATE", verifier="VERIFIER", issued_at=NOW)
    assert "SECRET" not in repr(tokens)
    assert "STATE" not in repr(pending)
    assert "VERIFIER" not in repr(pending)


# --- the verifier sealed under the state (what the history and the mirror keep) ---------


def test_a_sealed_verifier_opens_only_with_its_state() -> None:
    verifier, state = new_verifier(), new_state()
    sealed = seal_verifier(verifier, state)
    assert verifier not in sealed
    assert state not in sealed
    assert unseal_verifier(sealed, state=state, expected_challenge=challenge(verifier)) == verifier
    with pytest.raises(OAuthError, match="invalid_state"):
        unseal_verifier(sealed, state=new_state(), expected_challenge=challenge(verifier))
    tampered = ("A" if sealed[0] != "A" else "B") + sealed[1:]
    with pytest.raises(OAuthError, match="invalid_state"):
        unseal_verifier(tampered, state=state, expected_challenge=challenge(verifier))
    with pytest.raises(OAuthError, match="invalid_state"):
        unseal_verifier("!!not base64!!", state=state, expected_challenge=challenge(verifier))
