"""Issue 20 item 2: a daemon whose configuration uses no vault, Postgres mirror, secrets
key, DKIM key, PagerDuty or webhook sink loads none of their client libraries."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

from actors.sinks.webhook.verify import nameserver
from bench.ingest import ROOT
from bench.ingest.footprint import OPTIONAL, import_footprint, memory_map
from bench.ingest.processes import clean_env


def test_eyetok_run_imports_no_optional_client() -> None:
    found = import_footprint()
    assert found["optional_loaded"] == [], found["optional_loaded"]
    assert found["modules"] > 100
    heaviest = {name.split(".")[0] for name, _parent, _ms in found["heaviest"]}
    assert {"trio", "duckdb"} <= heaviest
    assert not heaviest & set(OPTIONAL)


def test_memory_map_adds_up_to_the_process_rss() -> None:
    held = memory_map(os.getpid())
    with open("/proc/self/status", encoding="utf-8") as f:
        rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    assert held["Python runtime"] > 0
    assert abs(sum(held.values()) - rss_mb) < 0.05 * rss_mb + 2


# Builds the daemon's actors the way ``eyetok run`` does at start, with the default
# configuration (a Slack sink, no webhook sink, no EYETOK_DNS_RESOLVER), in a fresh
# interpreter: then prints which optional clients that loaded.
_BUILD = """
import sys, tempfile
from pathlib import Path
from actors.topology import build
from eyetok.clock import SystemClock
from eyetok.config import parse_file_config, settings_from
from state.history.store import HistoryStore
from state.history.wal import Journal
from bench.ingest.footprint import OPTIONAL

data = Path(tempfile.mkdtemp())
env = {"PORT": "0", "EYETOK_DATA_DIR": str(data), "SENTRY_CLIENT_SECRET": "s",
       "EYETOK_ROOT_TOKEN": "r", "SLACK_SIGNING_SECRET": "x", "SLACK_BOT_TOKEN": "xoxb-t",
       "SLACK_API_URL": "http://127.0.0.1:9/api/"}
settings = settings_from(parse_file_config(""), env)
build(settings, HistoryStore(":memory:"), Journal(data / "journal"), SystemClock())
print(" ".join(name for name in OPTIONAL if name in sys.modules))
"""


def test_building_the_default_daemon_loads_no_dns_client() -> None:
    """The host's nameserver is read at the first TXT lookup that needs it, not when the
    verification and rotation actors are built (dnspython is about 2 MB RSS)."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("INFISICAL_")}
    done = subprocess.run(
        [sys.executable, "-c", _BUILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split() == [], done.stdout


def test_the_nameserver_is_the_configured_one_else_the_hosts() -> None:
    assert nameserver(("127.0.0.1", 5353)) == ("127.0.0.1", 5353)
    host, port = nameserver(None)
    ipaddress.ip_address(host)
    assert port == 53
