"""``eyetok drill run SCENARIO``: set up the rig, run the scenario(s), keep the receipt.

The receipt is posted to the daemon (``drill_receipts``), written to ``--receipt PATH``
when asked, and summarised on stdout (``--json`` prints the receipt itself). The exit
status is 1 when any step failed (the summary names each), 2 when the drill could not
start at all, 130 when Ctrl-C ended it: one line, and the receipt of the steps so far
kept as above with the verdict ``interrupted``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime
from functools import partial

import msgspec
import trio

from eyetok.clock import Clock, SystemClock
from eyetok.receipts import Receipt, Step, encode_receipt
from harness.front_door import FrontDoorError
from harness.rig import DaemonStarter, RigError, RigOptions, daemon_process, open_rig
from harness.scenarios import SCENARIOS
from harness.steps import Steps, receipt_of
from schedules.drills import FLAVOURS

INTERRUPTED = 130  # the exit status of a drill ended by Ctrl-C (128 + SIGINT)


class DrillInterrupted(Exception):
    """Ctrl-C while the rig was being set up: no step ran, nothing to keep."""


class CtrlC:
    """Ctrl-C (SIGINT) cancels what the drill is doing now (``target``): setting up, or
    the steps, whose receipt so far is then kept, marked interrupted. The daemon the rig
    starts runs in a session of its own, so the terminal's Ctrl-C never reaches it."""

    def __init__(self) -> None:
        self.pressed = False
        self.target = trio.CancelScope()

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if threading.current_thread() is not threading.main_thread():
            task_status.started()  # (signals reach only the main thread)
            return
        with trio.open_signal_receiver(signal.SIGINT) as presses:
            task_status.started()
            async for _ in presses:
                self.pressed = True
                self.target.cancel()


async def run_drill(
    scenario: str,
    options: RigOptions,
    clock: Clock,
    *,
    starter: DaemonStarter = daemon_process,
    monthly_slot: datetime | None = None,
) -> Receipt:
    """Run the scenario(s) and keep the receipt; :class:`DrillInterrupted` if Ctrl-C
    came before any step ran."""
    names = list(SCENARIOS) if scenario == "all" else [scenario]
    started = clock.now()
    ctrl_c = CtrlC()
    receipt: Receipt | None = None
    async with trio.open_nursery() as nursery:
        await nursery.start(ctrl_c.watch)
        setting_up = ctrl_c.target
        with setting_up:
            async with open_rig(options, clock, starter=starter) as rig:
                done: list[Step] = []
                with trio.CancelScope() as stepping:
                    ctrl_c.target = stepping
                    for name in names:
                        steps = Steps(name, clock, say=rig.say)
                        try:
                            await SCENARIOS[name](rig, steps)
                        finally:
                            done.extend(steps.steps)
                ctrl_c.target = setting_up
                receipt = receipt_of(
                    scenario=scenario,
                    tenant=rig.tenant,
                    url=rig.front.url,
                    version=rig.version,
                    started=started,
                    finished=clock.now(),
                    steps=done,
                )
                receipt = msgspec.structs.replace(
                    receipt,
                    verdict="interrupted" if ctrl_c.pressed else receipt.verdict,
                    flavour=next((f.name for f in FLAVOURS if f.scenario == scenario), None),
                    monthly_slot=monthly_slot,
                )
                await rig.front.record_receipt(receipt)
        nursery.cancel_scope.cancel()
    if receipt is None:
        raise DrillInterrupted("Ctrl-C while setting up the drill: no step ran, no receipt")
    return receipt


def interrupted_line(receipt: Receipt) -> str:
    """The one line an interrupted drill ends with."""
    last = (
        f", the last {receipt.steps[-1].scenario}/{receipt.steps[-1].name}" if receipt.steps else ""
    )
    failed = len(receipt.failed_steps())
    return (
        f"drill {receipt.scenario} interrupted (Ctrl-C) after {len(receipt.steps)} steps"
        f"{last} ({failed} failed): partial receipt {receipt.receipt_id} kept, "
        "verdict interrupted"
    )


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
    setting_up = False
    try:
        receipt = trio.run(
            partial(run_drill, monthly_slot=args.monthly_slot),
            args.scenario,
            options,
            SystemClock(),
        )
    except* (DrillInterrupted, KeyboardInterrupt):
        setting_up = True
    except* (RigError, FrontDoorError, OSError) as group:
        for exc in _leaves(group):
            print(f"eyetok drill: cannot run the drill: {exc}", file=sys.stderr)
    if setting_up:
        print(f"drill {args.scenario} interrupted (Ctrl-C) while setting up: no step ran")
        return INTERRUPTED
    if receipt is None:
        return 2
    if args.receipt is not None:
        args.receipt.write_bytes(encode_receipt(receipt) + b"\n")
    if receipt.verdict == "interrupted":
        if args.json:
            print(encode_receipt(receipt).decode())
        print(interrupted_line(receipt), file=sys.stderr if args.json else sys.stdout)
        return INTERRUPTED
    print(encode_receipt(receipt).decode() if args.json else summary(receipt))
    return 1 if receipt.failed_steps() else 0
