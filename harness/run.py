"""``eyetok drill run SCENARIO``: set up the rig, run the scenario(s), keep the receipt.

The receipt is posted to the daemon (``drill_receipts``), written to ``--receipt PATH``
when asked, and summarised on stdout (``--json`` prints the receipt itself). The exit
status is 1 when any step failed (the summary names each), 2 when the drill could not
start at all.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec
import trio

from eyetok.clock import Clock, SystemClock
from eyetok.receipts import Receipt, encode_receipt
from harness.front_door import FrontDoorError
from harness.rig import BREAKAGES, DaemonStarter, RigError, RigOptions, daemon_process, open_rig
from harness.scenarios import NAMES, SCENARIOS
from harness.steps import Steps, receipt_of
from schedules.drills import FLAVOURS


def _instant(text: str) -> datetime:
    """An ISO 8601 instant with its offset, in UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant") from exc
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return at.astimezone(UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", choices=NAMES, help="the scenario, or all of them in order")
    parser.add_argument("--url", help="a running daemon (default: start one with local peers)")
    parser.add_argument("--receipt", type=Path, help="write the JSON receipt here")
    parser.add_argument("--json", action="store_true", help="print the receipt, not a summary")
    parser.add_argument("--tenant", default="drill", help="the drill tenant (default: drill)")
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="mark the hour-boundary steps skipped instead of waiting for the hour",
    )
    parser.add_argument(
        "--monthly-slot",
        type=_instant,
        help="the monthly-drill slot this run is (the daemon's schedule passes it)",
    )
    parser.add_argument(
        "--break",
        dest="breaks",
        action="append",
        default=[],
        choices=sorted(BREAKAGES),
        help="test the drill itself: break an invariant on purpose in the daemon it starts ("
        + "; ".join(f"{k}: {v}" for k, v in BREAKAGES.items())
        + ")",
    )


async def run_drill(
    scenario: str,
    options: RigOptions,
    clock: Clock,
    *,
    starter: DaemonStarter = daemon_process,
    monthly_slot: datetime | None = None,
) -> Receipt:
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    started = clock.now()
    async with open_rig(options, clock, starter=starter) as rig:
        all_steps = []
        for name in names:
            steps = Steps(name, clock)
            await SCENARIOS[name](rig, steps)
            all_steps.extend(steps.steps)
        receipt = receipt_of(
            scenario=scenario,
            tenant=rig.tenant,
            url=rig.front.url,
            version=rig.version,
            started=started,
            finished=clock.now(),
            steps=all_steps,
        )
        flavour = next((f.name for f in FLAVOURS if f.scenario == scenario), None)
        receipt = msgspec.structs.replace(receipt, flavour=flavour, monthly_slot=monthly_slot)
        await rig.front.record_receipt(receipt)
    return receipt


def summary(receipt: Receipt) -> str:
    flavour = f" ({receipt.flavour})" if receipt.flavour else ""
    lines = [
        f"drill {receipt.scenario}{flavour} against {receipt.daemon_url} "
        f"(EyeTok {receipt.daemon_version}): {receipt.verdict.upper()}  [{receipt.receipt_id}]"
    ]
    for step in receipt.steps:
        mark = {"pass": "ok  ", "fail": "FAIL", "skipped": "skip"}[step.verdict]
        latency = f" ({step.latency_ms / 1000:.1f} s)" if step.latency_ms is not None else ""
        lines.append(f"  {mark} {step.scenario}/{step.name}{latency}: {step.observation}")
    if failed := receipt.failed_steps():
        lines.append(f"failed steps: {', '.join(failed)}")
    return "\n".join(lines)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def main(args: argparse.Namespace) -> int:
    options = RigOptions(
        url=args.url,
        tenant=args.tenant,
        breaks=frozenset(args.breaks),
        no_wait=args.no_wait,
    )
    receipt: Receipt | None = None
    try:
        receipt = trio.run(
            partial(run_drill, monthly_slot=args.monthly_slot),
            args.scenario,
            options,
            SystemClock(),
        )
    except* (RigError, FrontDoorError, OSError) as group:
        for exc in _leaves(group):
            print(f"eyetok drill: cannot run the drill: {exc}", file=sys.stderr)
    if receipt is None:
        return 2
    if args.receipt is not None:
        args.receipt.write_bytes(encode_receipt(receipt) + b"\n")
    print(encode_receipt(receipt).decode() if args.json else summary(receipt))
    return 1 if receipt.failed_steps() else 0
