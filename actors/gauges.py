"""The figures ``/metrics`` reads from the running daemon when scraped: each actor's
inbox depth (its channel's buffer) and restarts (the supervisor's count)."""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry

from actors.supervisor import Supervisor
from actors.topology import Topology
from eyetok.metrics import DaemonGauges, daemon_registry


def inbox_depths(topology: Topology) -> dict[str, int]:
    return {
        name: channel.statistics().current_buffer_used
        for name, channel in topology.channels.items()
        if isinstance(channel, trio.MemorySendChannel)
    }


def daemon_gauges(topology: Topology, supervisor: Supervisor) -> CollectorRegistry:
    """Restarts name every child (0 until its first): a rate over a series that appears
    only after the first crash would miss that crash."""
    names = [child.name for child in topology.children]
    return daemon_registry(
        DaemonGauges(
            lambda: inbox_depths(topology),
            lambda: {name: supervisor.restarts.get(name, 0) for name in names},
        )
    )
