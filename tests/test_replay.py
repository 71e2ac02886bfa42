"""eyetok.replay in-process: which paths name payloads, and the table for people."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eyetok.config import parse_file_config, settings_from
from eyetok.replay import Judge, NoPayloadsError, payload_files, table
from eyetok.sources import sentry

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sentry"


def test_a_folder_gives_its_payloads_sorted_and_never_the_sidecars(tmp_path: Path) -> None:
    for name in ("b.json", "a.json", "a.headers.json", "notes.txt"):
        (tmp_path / name).write_text("{}")
    assert payload_files([tmp_path]) == [tmp_path / "a.json", tmp_path / "b.json"]
    assert payload_files([tmp_path / "a*.json"]) == [tmp_path / "a.json"]
    # A named file that does not exist is the replay's to report, per file.
    assert payload_files([tmp_path / "missing.json"]) == [tmp_path / "missing.json"]


@pytest.mark.parametrize("pattern", ["", "*.json", "x?.json", "[ab].json"])
def test_nothing_to_replay_is_refused(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "only.headers.json").write_text("{}")
    with pytest.raises(NoPayloadsError, match="payload"):
        payload_files([tmp_path / pattern if pattern else tmp_path])


def test_the_table_aligns_errors_and_judged_lines_alike() -> None:
    settings = settings_from(parse_file_config(""), {"SLACK_BOT_TOKEN": "xoxb-t"})
    judge = Judge(settings, "operator")
    path = FIXTURES / "event_alert_fatal.json"
    signal = sentry.normalise(
        path.read_bytes(),
        "event_alert",
        tenant="operator",
        signal_id="t-1",
        received_at=datetime(2026, 3, 9, 14, 0, tzinfo=UTC),  # Monday, EDT since Sunday
        recognisers=settings.recognisers,
    )
    line, sends = judge.line(signal, str(path))
    assert sends
    error = {"file": "/x/garbage.json", "tenant": "operator", "error": "malformed JSON"}
    header, judged, failed = table([line, error])
    assert judged.startswith("Mon 2026-03-09 10:00 EDT  14:00 UTC")
    assert header.index("file") == judged.index("event_alert_fatal.json")
    assert failed.index("garbage.json") == header.index("file")
    assert failed.split()[:2] == ["garbage.json", "error"]
    assert judged.endswith('level is "fatal"')
