"""The drill rig: the daemon under drill, the peers that stand in for the drill sinks,
the synthetic endpoint, and the credentials to reach them all.

With ``--url`` the rig is only a :class:`~harness.front_door.FrontDoor` to a running
daemon (its drill tenant, drill sinks and synthetic tenants come from its configuration;
hook tokens and the root token from the environment). Without it the rig starts
everything itself: the local peers (Slack, a Standard Webhooks receiver, an SMTP mailbox,
PagerDuty with its OAuth app, a DNS server for the webhook's TXT handshake), a throwaway
data directory, a drill configuration (tenant ``drill``, tier ``drill``, four drill
sinks pointed at the peers, thirty synthetic tenants for the registry-wide outage), and
``eyetok run`` on a free port; then it verifies every sink through its real handshake.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec
import trio

from eyetok import slack_events
from eyetok.clock import Clock
from eyetok.standard_webhooks import new_secret
from harness.front_door import FrontDoor, FrontDoorError, HookCredentials
from harness.peers.dns import FakeDns
from harness.peers.mailbox import Mailbox
from harness.peers.oauth import FakeOAuth
from harness.peers.pagerduty import FakePagerDuty
from harness.peers.pagerduty import Scripted as PdScripted
from harness.peers.slack import FakeSlack
from harness.peers.slack_workspace import TEAM_ID as SLACK_TEAM_ID
from harness.peers.webhook_receiver import Answer, WebhookReceiver
from harness.synthetic import HealthEndpoint

DRILL_TENANT = "drill"
SYNTHETIC_TENANTS = 30  # the suppression floor's minimum tenant count
SYNTHETIC_PREFIX = "synth-"  # never naming the drill tenant: the payload guard
DRILL_MAIL = "drill@eyetok.invalid"
OPERATOR_NOTICES = "#eyetok-operator"
CAP_NOTICES = "#alerts-cap"
DRILL_CHANNEL = "#drill-alerts"
OAUTH_REDIRECT = "http://localhost/oauth/pagerduty/callback"
SINK_KINDS = ("slack", "webhook", "email", "pagerduty")
READY_WITHIN_S = 60.0
HANDSHAKES_WITHIN_S = 60.0
STOP_WITHIN_S = 30.0
DOWN_FOREVER = 100_000  # scripted failures: more than any drill makes


class RigError(Exception):
    """The rig could not be set up (named: which peer, sink or handshake)."""


@dataclass(frozen=True)
class RigOptions:
    url: str | None = None  # a running daemon; None: start one
    tenant: str = DRILL_TENANT
    breaks: frozenset[str] = frozenset()
    synthetic_tenants: int = SYNTHETIC_TENANTS
    no_wait: bool = False  # mark the hour-boundary steps skipped instead of waiting
    suppression_hold_s: float = 2.0
    delivery_max_age_s: float = 4.0


class LocalPeers:
    """The drill sinks' far ends on 127.0.0.1; a context manager (threads of their own)."""

    def __init__(self) -> None:
        self.slack_token = "xoxb-drill-" + secrets.token_hex(8)
        self.webhook_secret = new_secret()
        self.pd_key = secrets.token_hex(16)  # 32 characters, as PagerDuty's are
        self.slack = FakeSlack(token=self.slack_token)
        self.hook = WebhookReceiver({DRILL_TENANT: self.webhook_secret}, tolerance_s=10**10)
        self.mail = Mailbox()
        self.pd = FakePagerDuty(routing_key=self.pd_key)
        self.oauth = FakeOAuth(redirect_uris=(OAUTH_REDIRECT,))
        self.dns = FakeDns()
        self._stack = ExitStack()

    def __enter__(self) -> LocalPeers:
        for peer in (self.slack, self.hook, self.mail, self.pd, self.oauth, self.dns):
            self._stack.enter_context(peer)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def hook_url(self) -> str:
        """Under a DNS name: an IP-literal URL has no domain to verify."""
        return self.hook.url.replace("127.0.0.1", "localhost")

    def take_down(self, kind: str) -> None:
        """The drill sink of ``kind`` starts failing every delivery (retryably)."""
        if kind == "webhook":
            self.hook.fail_next(*[Answer.server_error(503)] * DOWN_FOREVER)
        elif kind == "pagerduty":
            self.pd.fail_next(*[PdScripted.server_error(503)] * DOWN_FOREVER)
        elif kind == "email":
            self.mail.failing = True
        elif kind == "slack":
            self.slack.take_down(DRILL_CHANNEL)
        else:
            raise ValueError(f"no drill sink of kind {kind!r}")

    def bring_up(self, kind: str) -> None:
        if kind == "webhook":
            self.hook.clear_script()
        elif kind == "pagerduty":
            self.pd.clear_script()
        elif kind == "email":
            self.mail.failing = False
        elif kind == "slack":
            self.slack.bring_up(DRILL_CHANNEL)


def drill_config(peers: LocalPeers, options: RigOptions) -> str:
    """The drill configuration (YAML) for a daemon the rig starts itself."""
    t = options.tenant
    four = [
        {"sink": f"{t}-slack", "target": DRILL_CHANNEL},
        {"sink": f"{t}-hook", "target": t},
        {"sink": f"{t}-mail", "target": DRILL_MAIL},
        {"sink": f"{t}-pd", "target": t},
    ]
    sinks: dict[str, Any] = {
        "slack": {"type": "slack", "token_env": "SLACK_BOT_TOKEN", "rate_per_channel": 50.0},
        f"{t}-slack": {
            "type": "slack",
            "tenant": t,
            "token_env": "SLACK_BOT_TOKEN",
            "rate_per_channel": 50.0,
        },
        f"{t}-hook": {
            "type": "webhook",
            "tenant": t,
            "url": peers.hook_url,
            "secret_env": "DRILL_WEBHOOK_SECRET",
        },
        f"{t}-mail": {
            "type": "email",
            "tenant": t,
            "to": DRILL_MAIL,
            "smtp_url_env": "DRILL_SMTP_URL",
        },
        f"{t}-pd": {
            "type": "pagerduty",
            "tenant": t,
            "routing_key_env": "DRILL_PD_KEY",
            "oauth_client_id": peers.oauth.client_id,
            "oauth_authorize_url": peers.oauth.authorize_url,
            "oauth_token_url": peers.oauth.token_url,
            "oauth_redirect_uri": OAUTH_REDIRECT,
        },
    }
    tenants: dict[str, Any] = {
        t: {
            "tier": "drill",
            "hook_token_env": "EYETOK_DRILL_HOOK_TOKEN",
            "primary_sink": f"{t}-slack",  # where the hourly digest goes
            "policy": {
                "routes": {"SEV1": four, "SEV2": four, "SEV2.5": four, "SEV3": four[:1]},
            },
        }
    }
    for n in range(1, options.synthetic_tenants + 1):
        synth = f"{SYNTHETIC_PREFIX}{n:02d}"
        sinks[f"{synth}-slack"] = {"type": "slack", "tenant": synth, "token_env": "SLACK_BOT_TOKEN"}
        route = [{"sink": f"{synth}-slack", "target": f"#{synth}"}]
        tenants[synth] = {
            "tier": "drill",
            "hook_token_env": "EYETOK_DRILL_HOOK_TOKEN",
            "policy": {"routes": {c: route for c in ("SEV1", "SEV2", "SEV2.5", "SEV3")}},
        }
    config: dict[str, Any] = {
        "sinks": sinks,
        "tenants": tenants,
        "delivery": {
            "max_age_s": options.delivery_max_age_s,
            "base_backoff_s": 0.1,
            "max_backoff_s": 0.5,
            "operator_notices": {"sink": "slack", "target": OPERATOR_NOTICES},
        },
        "verification": {"txt_every_s": 0.05, "txt_for_s": HANDSHAKES_WITHIN_S},
    }
    if "clock" in options.breaks:
        config["faults"] = {"business_hours_in_utc": True}
    config["budgets"] = {
        "enabled": "budgets" not in options.breaks,
        "cap_notices": {"sink": "slack", "target": CAP_NOTICES},
    }
    config["suppression"] = {
        "enabled": "suppression" not in options.breaks,
        "hold_s": options.suppression_hold_s,
        "min_tenants": 30,
        "min_share": 0.10,
        "quiet_s": 30,
    }
    return msgspec.json.encode(config).decode()  # JSON is YAML


@dataclass(frozen=True)
class LocalSecrets:
    root_token: str = field(default_factory=lambda: "drill-root-" + secrets.token_hex(12))
    hook_token: str = field(default_factory=lambda: "drill-hook-" + secrets.token_hex(12))
    slack_signing_secret: str = field(default_factory=lambda: secrets.token_hex(16))


def drill_env(peers: LocalPeers, keys: LocalSecrets) -> dict[str, str]:
    """The environment of a daemon the rig starts (its credentials point at the peers)."""
    return {
        "EYETOK_ROOT_TOKEN": keys.root_token,
        "SLACK_SIGNING_SECRET": keys.slack_signing_secret,
        "SLACK_BOT_TOKEN": peers.slack_token,
        "SLACK_API_URL": peers.slack.base_url,
        "EYETOK_DRILL_HOOK_TOKEN": keys.hook_token,
        "DRILL_WEBHOOK_SECRET": peers.webhook_secret,
        "DRILL_SMTP_URL": peers.mail.url,
        "DRILL_PD_KEY": peers.pd_key,
        "PAGERDUTY_EVENTS_URL": peers.pd.events_url,
        "EYETOK_DNS_RESOLVER": f"127.0.0.1:{peers.dns.port}",
        "EYETOK_LOG_LEVEL": "warning",
    }


# The drill daemon's environment is the drill's own: none of these leak in from the shell
# (a DATABASE_URL would mirror the drill into a real Postgres; a SLACK_BOT_TOKEN post).
_DAEMON_ENV = ("EYETOK_", "SLACK_", "SENTRY_", "PAGERDUTY_", "SMTP_", "DATABASE_URL", "PORT")

# A daemon starter: given the configuration text and the environment, run a daemon
# until the context exits; it yields the daemon's base URL.
DaemonStarter = Callable[[str, dict[str, str]], AbstractAsyncContextManager[str]]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def daemon_process(config: str, env: dict[str, str]) -> AsyncIterator[str]:
    """``eyetok run`` as a subprocess on a free port with a throwaway data directory, in a
    session of its own; SIGTERM (then SIGKILL) on the way out, even when the drill was
    cancelled. Its log is ``daemon.log`` in that directory."""
    with tempfile.TemporaryDirectory(prefix="eyetok-drill-") as tmp:
        data = Path(tmp)
        (data / "drill.yaml").write_text(config, encoding="utf-8")
        port = _free_port()
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_DAEMON_ENV)},
            **env,
            "PORT": str(port),
            "EYETOK_DATA_DIR": str(data / "data"),
            "EYETOK_CONFIG": str(data / "drill.yaml"),
        }
        with (data / "daemon.log").open("w") as log_file:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "eyetok.cli", "run", "--host", "127.0.0.1"],
                env=full_env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the terminal's Ctrl-C is the drill's, not its
            )
            url = f"http://127.0.0.1:{port}"
            try:
                front = FrontDoor(url, env["EYETOK_ROOT_TOKEN"])
                try:
                    with trio.move_on_after(READY_WITHIN_S):
                        while not await front.ready():
                            if process.poll() is not None:
                                break
                            await trio.sleep(0.05)
                finally:
                    await front.aclose()
                if process.poll() is not None or not await _ready(url, env):
                    tail = (data / "daemon.log").read_text(errors="replace")[-2000:]
                    raise RigError(f"eyetok run did not become ready on {url}: {tail}")
                yield url
            finally:
                with trio.CancelScope(shield=True):  # (a Ctrl-C still stops it)
                    if process.poll() is None:
                        process.send_signal(signal.SIGTERM)
                        with trio.move_on_after(STOP_WITHIN_S):
                            await process.wait()
                    if process.poll() is None:
                        process.kill()
                        await process.wait()


async def _ready(url: str, env: dict[str, str]) -> bool:
    front = FrontDoor(url, env["EYETOK_ROOT_TOKEN"])
    try:
        return await front.ready()
    finally:
        await front.aclose()


def progress(line: str) -> None:
    """One line about what the drill is doing, on stderr (stdout is the summary or
    ``--json``'s receipt)."""
    print(f"eyetok drill: {line}", file=sys.stderr, flush=True)


@dataclass
class Rig:
    """What a scenario works with."""

    front: FrontDoor
    clock: Clock
    tenant: str
    credentials: dict[str, HookCredentials]
    endpoint: HealthEndpoint
    about: dict[str, Any]
    options: RigOptions
    peers: LocalPeers | None = None
    say: Callable[[str], None] = progress  # a progress line for the operator

    async def wait_for_hour(self, scenario: str, until: datetime, why: str) -> None:
        """Sleep until ``until`` (a top of the hour), having said so in one line."""
        left = max(0, round((until - self.clock.now()).total_seconds()))
        self.say(
            f"{scenario} waits {left // 60} min {left % 60} s for the top of the hour "
            f"({until:%H:%M} UTC) {why}; --no-wait skips this wait"
        )
        await self.clock.sleep_until(until)

    @property
    def version(self) -> str:
        return str(self.about.get("version", "unknown"))

    def tenants_of_tier(self, tier: str) -> list[str]:
        return [t["tenant"] for t in self.about["tenants"] if t["tier"] == tier]

    def synthetic_tenants(self) -> list[str]:
        return sorted(t for t in self.tenants_of_tier("drill") if t != self.tenant)

    def sinks_of(self, tenant: str) -> dict[str, str]:
        """sink id -> sink type, for the tenant's own sinks."""
        for row in self.about["tenants"]:
            if row["tenant"] == tenant:
                return {s["sink_id"]: s["sink_type"] for s in row["sinks"]}
        return {}

    def hook_credentials(self, tenant: str) -> HookCredentials:
        found = self.credentials.get(tenant)
        if found is None:
            raise RigError(
                f"no hook credentials for tenant {tenant!r}: set "
                f"EYETOK_HOOK_TOKEN_{tenant.upper().replace('-', '_')} or EYETOK_DRILL_HOOK_TOKEN"
            )
        return found


def _env_credentials(tenants: list[str]) -> dict[str, HookCredentials]:
    found: dict[str, HookCredentials] = {}
    shared = os.environ.get("EYETOK_DRILL_HOOK_TOKEN")
    for tenant in tenants:
        suffix = tenant.upper().replace("-", "_")
        token = os.environ.get(f"EYETOK_HOOK_TOKEN_{suffix}") or shared
        secret = os.environ.get(f"EYETOK_HOOK_SECRET_{suffix}")
        if token or secret:
            found[tenant] = HookCredentials(token=token, secret=None if token else secret)
    return found


async def verify_sinks(
    front: FrontDoor,
    peers: LocalPeers,
    sink_types: dict[str, str],
    clock: Clock,
    signing_secret: str,
) -> None:
    """Every sink through its real ownership handshake, then the peers forget the
    handshake traffic so that the drill counts alerts only."""
    for sink_id, kind in sink_types.items():
        started = await front.start_verification(sink_id)
        if kind == "slack":  # the nonce, DM'd to the app, seen through the Events API
            body = msgspec.json.encode(
                {
                    "type": "event_callback",
                    "team_id": SLACK_TEAM_ID,  # the local Slack's: the sinks' workspace
                    "event": {
                        "type": "message",
                        "channel": "D0DRILL",
                        "channel_type": "im",
                        "user": "U0DRILL",
                        "text": f"drill nonce: {started['nonce']}",
                    },
                }
            )
            stamp = int(clock.now().timestamp())
            await front.slack_event(
                body,
                {
                    "content-type": "application/json",
                    "x-slack-request-timestamp": str(stamp),
                    "x-slack-signature": slack_events.sign(body, stamp, signing_secret),
                },
            )
        elif kind == "webhook":  # the nonce in TXT _eyetok-verify.<the URL's host>
            host = urlsplit(peers.hook_url).hostname or "localhost"
            peers.dns.set_txt(f"_eyetok-verify.{host}", str(started["nonce"]))
        elif kind == "email":  # the magic link, mailed and opened
            link = await _magic_link(peers, clock)
            await front.open_link(urlsplit(link).path)
        elif kind == "pagerduty":  # OAuth authorization code with PKCE, approved
            query = dict(parse_qsl(urlsplit(str(started["url"])).query))
            code = peers.oauth.approve(query)
            await front.open_link(
                "/oauth/pagerduty/callback", {"state": query["state"], "code": code}
            )
    with trio.move_on_after(HANDSHAKES_WITHIN_S):
        while True:
            live = {s["sink_id"] for s in await front.sinks() if s["deliverable"]}
            if set(sink_types) <= live:
                break
            await trio.sleep(0.05)
    live = {s["sink_id"] for s in await front.sinks() if s["deliverable"]}
    if missing := sorted(set(sink_types) - live):
        raise RigError(f"sinks not verified after their handshakes: {', '.join(missing)}")
    peers.mail.reset()
    peers.hook.reset()
    peers.pd.reset()
    peers.slack.reset()


async def _magic_link(peers: LocalPeers, clock: Clock) -> str:
    with trio.move_on_after(HANDSHAKES_WITHIN_S):
        while True:
            for message in peers.mail.messages:
                part = message.get_body(("plain",))
                text = part.get_content() if part is not None else ""
                for word in str(text).split():
                    if "/verify/email/" in word:
                        return word
            await trio.sleep(0.05)
    raise RigError("the email sink's magic link never reached the drill mailbox")


@asynccontextmanager
async def open_rig(
    options: RigOptions,
    clock: Clock,
    *,
    starter: DaemonStarter = daemon_process,
) -> AsyncIterator[Rig]:
    endpoint = HealthEndpoint()
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.serve)
        try:
            if options.url is not None:
                async with _remote_rig(options, clock, endpoint) as rig:
                    yield rig
            else:
                async with _local_rig(options, clock, endpoint, starter) as rig:
                    yield rig
        finally:
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def _remote_rig(
    options: RigOptions, clock: Clock, endpoint: HealthEndpoint
) -> AsyncIterator[Rig]:
    assert options.url is not None
    if options.breaks:
        raise RigError("--break needs the daemon the drill starts itself (no --url)")
    root = os.environ.get("EYETOK_ROOT_TOKEN")
    if not root:
        raise RigError("--url needs EYETOK_ROOT_TOKEN (the operator's API token)")
    front = FrontDoor(options.url, root)
    try:
        about = await front.about()
        tenants = [t["tenant"] for t in about["tenants"]]
        if options.tenant not in tenants:
            raise RigError(f"the daemon at {options.url} has no tenant {options.tenant!r}")
        yield Rig(
            front=front,
            clock=clock,
            tenant=options.tenant,
            credentials=_env_credentials(tenants),
            endpoint=endpoint,
            about=about,
            options=options,
        )
    except FrontDoorError as exc:
        raise RigError(str(exc)) from exc
    finally:
        await front.aclose()


@asynccontextmanager
async def _local_rig(
    options: RigOptions, clock: Clock, endpoint: HealthEndpoint, starter: DaemonStarter
) -> AsyncIterator[Rig]:
    keys = LocalSecrets()
    with LocalPeers() as peers:
        async with starter(drill_config(peers, options), drill_env(peers, keys)) as url:
            front = FrontDoor(url, keys.root_token)
            try:
                about = await front.about()
                await verify_sinks(
                    front, peers, dict(about["sinks"]), clock, keys.slack_signing_secret
                )
                if "sink" in options.breaks:
                    peers.take_down("pagerduty")
                tenants = [t["tenant"] for t in about["tenants"]]
                credentials = {
                    t: HookCredentials(token=keys.hook_token)
                    for t in tenants
                    if t == options.tenant or t.startswith(SYNTHETIC_PREFIX)
                }
                yield Rig(
                    front=front,
                    clock=clock,
                    tenant=options.tenant,
                    credentials=credentials,
                    endpoint=endpoint,
                    about=about,
                    options=options,
                    peers=peers,
                )
            finally:
                await front.aclose()
