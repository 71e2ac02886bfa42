"""Many tenants: the suppression window and the budgets under a registry-wide burst.

    uv run python bench/tenants.py [--tenants 50000] [--verdicts 100000] [--keys 500]

Builds a configuration of ``--tenants`` tenants (tiers mixed: public, author, team,
enterprise; each with its own webhook sink), then a burst of ``--verdicts`` probe verdicts
across ``--keys`` cluster keys, decoded by the real probe hook's ``normalise``, decided by
``classify``/``decide`` and planned by the router's ``plan``. One key is a registry-wide
outage (enough distinct tenants to fire: at least 30 and 10% of the active tenants); 100
noisy tenants send 100 verdicts each (over every public tier's budget); the rest are
spread at random.

The deliveries then go through the real suppression and budgets actors (real channels,
a real DuckDB history file for their start-up reads) under trio's MockClock, so the hold
window closes without waiting a minute of real time; the time measured is real CPU time
(``time.perf_counter``). It prints:

* the hold: alerts/s the suppression actor takes into its hold windows;
* the evaluation per hold window: from the window's close to every held alert withheld
  or released downstream (500 keys, 100,000 alerts), and per key;
* the per-alert budget check: the pure ``spend`` and the budgets actor's whole step;
* RSS (current and peak) of the process;
* the ceiling, measured in the same run: the same deliveries relayed through two bare trio
  actors that do nothing but forward (the cost of the channels alone).
"""

from __future__ import annotations

import argparse
import functools
import math
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import psutil
import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.budgets import BudgetsDeps, run_budgets  # noqa: E402
from actors.router import plan  # noqa: E402
from actors.suppression import SuppressionDeps, run_suppression  # noqa: E402
from eyetok.budgets import Window, spend  # noqa: E402
from eyetok.clock import TrioWallClock  # noqa: E402
from eyetok.config import (  # noqa: E402
    FileConfig,
    SinkConfig,
    SuppressionOptions,
    TenantConfig,
    settings_from,
)
from eyetok.incidents import apply, decide  # noqa: E402
from eyetok.messages import (  # noqa: E402
    BudgetMessage,
    BudgetStanding,
    Deliver,
    DeliveryFinished,
    HistoryMessage,
    IncidentChanged,
    Reply,
    SevChannel,
    ShowBudgets,
)
from eyetok.policy import Policy, Route  # noqa: E402
from eyetok.severity import classify  # noqa: E402
from eyetok.sources import probe  # noqa: E402
from eyetok.suppression import threshold  # noqa: E402
from state.history.store import HistoryStore  # noqa: E402

ANCHOR = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
TIERS = ("public", "author", "team", "enterprise")
NOISY = 100  # tenants that send 100 verdicts each


def mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def build_config(tenants: int) -> FileConfig:
    sink = msgspec.convert(
        {
            "type": "webhook",
            "tenant": "operator",
            "url": "https://hooks.example/in",
            "secret_env": "BENCH_WEBHOOK_SECRET",
        },
        SinkConfig,
    )
    sinks: dict[str, SinkConfig] = {"slack": msgspec.convert({"type": "slack"}, SinkConfig)}
    configs: dict[str, TenantConfig] = {"operator": TenantConfig(tier="operator")}
    for i in range(tenants):
        tenant = f"tenant-{i:05d}"
        sinks[f"{tenant}-hook"] = msgspec.structs.replace(sink, tenant=tenant)
        route = (Route(sink=f"{tenant}-hook", target=f"https://{tenant}.example/hook"),)
        configs[tenant] = TenantConfig(
            tier=TIERS[i % len(TIERS)],
            policy=Policy(routes={SevChannel.SEV2: route, SevChannel.SEV2_5: route}),
        )
    return FileConfig(tenants=configs, sinks=sinks)


def burst(tenants: int, verdicts: int, keys: int, rng: random.Random) -> list[tuple[str, int]]:
    """(tenant, key index) per verdict: one key fires, 100 tenants are noisy."""
    firing = max(30, math.ceil(0.10 * tenants)) + max(1, tenants // 100)
    plan_: list[tuple[str, int]] = [(f"tenant-{i:05d}", 0) for i in range(min(firing, tenants))]
    noisy = [
        (f"tenant-{(i * 7919) % tenants:05d}", 1 + (n % (keys - 1)))
        for i in range(NOISY)
        for n in range(100)
    ]
    plan_ += noisy[: max(0, (verdicts - len(plan_)) // 2)]
    while len(plan_) < verdicts:
        plan_.append((f"tenant-{rng.randrange(tenants):05d}", 1 + rng.randrange(keys - 1)))
    rng.shuffle(plan_)
    return plan_[:verdicts]


def verdict_body(server: str, key: int) -> bytes:
    return msgspec.json.encode(
        {
            "server": server,
            "verdict": "down",
            "error_kind": f"kind{key % 7}",
            "asn": 64_512 + key,
            "registry": f"registry{key}",
            "region": "us-east-1",
            "observed_at": "2026-11-24T15:10:00Z",
        }
    )


async def run_pipeline(
    deliveries: list[Deliver], deps_s: SuppressionDeps, deps_b: BudgetsDeps, hold_s: float
) -> dict[str, float]:
    clock = TrioWallClock(ANCHOR)
    to_supp_tx, to_supp_rx = trio.open_memory_channel[Deliver](1024)
    tap_tx, tap_rx = trio.open_memory_channel[BudgetMessage](1024)
    to_budg_tx, to_budg_rx = trio.open_memory_channel[BudgetMessage](1024)
    out_tx, out_rx = trio.open_memory_channel[Deliver](math.inf)
    hist_tx, hist_rx = trio.open_memory_channel[HistoryMessage](math.inf)
    counts = {"released": 0, "withheld": 0, "delivered": 0}
    settled = trio.Event()
    expected = len(deliveries)

    def check_done() -> None:
        if counts["released"] + counts["withheld"] >= expected:
            settled.set()

    async def tap() -> None:
        """Between suppression and budgets: counts what the window released."""
        async for message in tap_rx:
            counts["released"] += 1
            check_done()
            await to_budg_tx.send(message)

    async def drain_out() -> None:
        async for _ in out_rx:
            counts["delivered"] += 1

    async def drain_history() -> None:
        async for message in hist_rx:
            if isinstance(message, DeliveryFinished) and message.outcome == "suppressed":
                counts["withheld"] += 1
                check_done()

    async with trio.open_nursery() as nursery:
        await nursery.start(
            functools.partial(run_suppression, clock=clock), deps_s, to_supp_rx, tap_tx, hist_tx
        )
        await nursery.start(
            functools.partial(run_budgets, clock=clock), deps_b, to_budg_rx, out_tx, hist_tx
        )
        nursery.start_soon(tap)
        nursery.start_soon(drain_out)
        nursery.start_soon(drain_history)
        started = time.perf_counter()
        opened_at = trio.current_time()
        for deliver in deliveries:
            await to_supp_tx.send(deliver)
        held_s = time.perf_counter() - started
        # Everything is now in a hold window. The windows close hold_s after they opened;
        # the mock clock jumps there as soon as all is idle.
        await trio.sleep_until(opened_at + hold_s)
        closed = time.perf_counter()
        await settled.wait()
        evaluation_s = time.perf_counter() - closed
        reply: Reply[tuple[BudgetStanding, ...]] = Reply()
        await to_budg_tx.send(ShowBudgets(reply=reply))
        standings = await reply.wait()
        budgets_s = time.perf_counter() - closed
        nursery.cancel_scope.cancel()
    held = sum(s.held for s in standings)
    return {
        "hold_s": held_s,
        "evaluation_s": evaluation_s,
        "budgets_s": budgets_s,
        "held_for_digest": held,
        "capped": sum(1 for s in standings if s.capped),
        **counts,
    }


async def run_ceiling(deliveries: list[Deliver]) -> float:
    """Two bare actors that only forward: the channels' own cost for the same burst."""
    a_tx, a_rx = trio.open_memory_channel[Deliver](1024)
    b_tx, b_rx = trio.open_memory_channel[Deliver](1024)
    done = trio.Event()

    async def relay(
        inbox: trio.MemoryReceiveChannel[Deliver], out: trio.MemorySendChannel[Deliver]
    ) -> None:
        async for message in inbox:
            await out.send(message)

    async def sink() -> None:
        n = 0
        async for _ in b_rx:
            n += 1
            if n == len(deliveries):
                done.set()

    c_tx, c_rx = trio.open_memory_channel[Deliver](1024)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay, a_rx, b_tx)
        nursery.start_soon(relay, c_rx, a_tx)
        nursery.start_soon(sink)
        started = time.perf_counter()
        for deliver in deliveries:
            await c_tx.send(deliver)
        await done.wait()
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=50_000)
    parser.add_argument("--verdicts", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.tenants < 100 or args.keys < 2 or args.verdicts < args.tenants // 10 + 1:
        parser.error("need at least 100 tenants, 2 keys, and verdicts > 10% of tenants")
    rng = random.Random(args.seed)
    process = psutil.Process()
    rss_start = process.memory_info().rss

    t0 = time.perf_counter()
    settings = settings_from(build_config(args.tenants), {"PORT": "0"})
    config_s = time.perf_counter() - t0
    active = len(settings.tenants)
    options = SuppressionOptions()
    print(
        f"tenants {active:,} (threshold for a cluster: {threshold(active, options):,} tenants); "
        f"configuration loaded in {config_s:.2f} s"
    )

    # The burst through the real decode, severity, incident and routing code.
    t0 = time.perf_counter()
    open_incidents: dict[object, object] = {}
    sink_types = settings.sink_types()
    deliveries: list[Deliver] = []
    for n, (tenant, key) in enumerate(burst(args.tenants, args.verdicts, args.keys, rng)):
        [signal] = probe.normalise(
            verdict_body(f"{tenant}-{n % 3}.registry.example", key),
            tenant=tenant,
            received_at=ANCHOR,
            new_id=lambda n=n: f"sig_{n:07d}",  # type: ignore[misc]
        )
        routing = classify(signal, window=settings.tenants[tenant].policy.business_hours)
        action, incident = decide(open_incidents, signal, routing)  # type: ignore[arg-type]
        apply(open_incidents, action, incident)  # type: ignore[arg-type]
        change = IncidentChanged(signal=signal, routing=routing, action=action, incident=incident)
        deliveries.extend(plan(change, settings, sink_types))
    prepare_s = time.perf_counter() - t0
    print(
        f"burst: {args.verdicts:,} probe verdicts over {args.keys} keys -> "
        f"{len(deliveries):,} deliveries, prepared in {prepare_s:.2f} s "
        f"({args.verdicts / prepare_s:,.0f} verdicts/s decode+classify+decide+plan)"
    )

    rss_prepared = process.memory_info().rss
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore(Path(tmp) / "history.duckdb")
        deps_s = SuppressionDeps(
            store=store,
            options=options,
            active_tenants=active,
            operator_tenant=settings.operator_tenant,
            notices=settings.notices_destination(),
        )
        deps_b = BudgetsDeps(
            store=store,
            enabled=True,
            caps={t: tenant.hourly_budget for t, tenant in settings.tenants.items()},
            tiers={t: tenant.tier for t, tenant in settings.tenants.items()},
            primary=settings.primary_destinations(),
            cap_notices=settings.cap_destination(),
            operator_tenant=settings.operator_tenant,
        )
        ceiling_s = trio.run(run_ceiling, deliveries)
        result = trio.run(
            run_pipeline,
            deliveries,
            deps_s,
            deps_b,
            options.hold_s,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        store.close()

    # The per-alert budget check, pure: the same deliveries against fresh windows.
    caps = deps_b.caps
    windows: dict[str, Window] = {}
    t0 = time.perf_counter()
    for deliver in deliveries:
        window = windows.get(deliver.tenant)
        if window is None:
            window = windows[deliver.tenant] = Window(start=ANCHOR)
        spend(window, deliver.signal_id, caps[deliver.tenant])
    spend_us = (time.perf_counter() - t0) / len(deliveries) * 1e6

    n = len(deliveries)
    print(
        f"ceiling (two bare forwarding actors, same {n:,} deliveries): "
        f"{ceiling_s * 1000:.0f} ms, {n / ceiling_s:,.0f}/s"
    )
    print(
        f"hold: {n:,} deliveries into the suppression window in {result['hold_s'] * 1000:.0f} ms "
        f"({n / result['hold_s']:,.0f}/s, {result['hold_s'] / ceiling_s:.2f}x the ceiling's time)"
    )
    print(
        f"evaluation per hold window ({args.keys} keys): {result['evaluation_s'] * 1000:.0f} ms "
        f"from the close to every alert withheld or released "
        f"({result['evaluation_s'] / args.keys * 1e6:,.0f} us per key); "
        f"withheld {int(result['withheld']):,}, released {int(result['released']):,}"
    )
    budget_step = (result["budgets_s"]) / max(result["released"], 1) * 1e6
    print(
        f"budgets: {int(result['delivered']):,} delivered within budget, "
        f"{int(result['held_for_digest']):,} held for digests ({int(result['capped'])} tenants "
        f"capped); budget check per alert {spend_us:.2f} us (pure spend), "
        f"{budget_step:.1f} us per released alert through the window close, the budgets "
        "actor and its channel hops"
    )
    print(
        f"RSS: {mb(rss_start)} at start, {mb(rss_prepared)} with the configuration and the "
        f"burst built, {mb(process.memory_info().rss)} after the run, peak {mb(peak_rss())} "
        f"(the actors' own state: about {mb(peak_rss() - rss_prepared)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
