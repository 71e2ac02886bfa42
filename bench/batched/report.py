"""The text report: per source, the ceiling, Alertmanager (its source only) and EyeTok
side by side, the ratios with their verdicts, then EyeTok's journal and history checks."""

from __future__ import annotations

from typing import Any

from bench.batched import (
    ROOT,
    SOURCE_TITLES,
    TARGET_ALERTS_PER_S,
    TARGET_VS_ALERTMANAGER,
    TENANT,
    TOKEN_ENV,
)
from bench.ingest.report import fmt


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _non202(fig: dict[str, Any]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in fig.get("non_202", {}).items()) or "0"


def source_lines(source: str, part: dict[str, Any]) -> list[str]:
    c, e = part.get("ceiling") or {}, part.get("eyetok") or {}
    a = part.get("alertmanager") or {}
    ratio, passed = part.get("ratio"), part.get("target_pass")
    lines = [
        "",
        f"{SOURCE_TITLES[source]}: {part['requests']} requests of {part['per_request']} alerts, "
        f"bodies {part['body_bytes_mean']:,.0f} B mean; POST /hooks/{source}/{TENANT}",
        f"{'':30}{'ceiling':>12}{'Alertmgr' if a else '':>12}{'EyeTok':>12}{'ratio':>8}   target",
    ]

    def row(label: str, key: str | None, rv: str = "", target: str = "") -> None:
        cv, av, ev = (None, None, None) if key is None else (c.get(key), a.get(key), e.get(key))
        lines.append(
            f"{label:30}{fmt(cv):>12}{fmt(av) if a else '':>12}{fmt(ev):>12}{rv:>8}   {target}"
        )

    def values(label: str, cv: Any, av: Any, ev: Any) -> None:
        lines.append(f"{label:30}{fmt(cv):>12}{fmt(av) if a else '':>12}{fmt(ev):>12}")

    row(
        "alerts/s accepted",
        "alerts_per_s",
        f"{ratio:.2f}" if ratio is not None else "-",
        f">= {TARGET_ALERTS_PER_S:,.0f}/s  {_verdict(passed)}",
    )
    if a:
        vs = part.get("ratio_vs_alertmanager")
        lines.append(
            f"{'  EyeTok / Alertmanager':30}{'':>36}"
            f"{f'{vs:.2f}' if vs is not None else '-':>8}   "
            f">= {TARGET_VS_ALERTMANAGER:g}x  {_verdict(part.get('alertmanager_pass'))}"
        )
    values("alerts accepted / sent", _acc(c), _acc(a), _acc(e))
    row("requests/s", "requests_per_s")
    row("HTTP p50 per request (ms)", "p50_ms")
    row("HTTP p99 per request (ms)", "p99_ms")
    row("HTTP max per request (ms)", "max_ms")
    values(
        "non-202 answers",
        _non202(c) if c else None,
        _non202(a) if a else None,
        _non202(e) if e else None,
    )
    row("peak RSS (MB)", "peak_rss_mb")
    row("server CPU/alert (us)", "server_cpu_us_per_alert")
    row("server CPU (cores busy)", "server_cpu_cores")
    row("generator CPU/request (us)", "client_cpu_us_per_request")
    if a:
        lines.append(
            f"  Alertmanager: {a.get('version')} ({a.get('how')}: {a.get('binary')}), "
            f"{part['requests']} x POST /api/v2/alerts of the same alerts (200 counted as "
            f"202); in memory, no durability; {a.get('held_active')} alerts active after"
        )
    if part.get("alertmanager_error"):
        lines.append(f"  Alertmanager not measured: {part['alertmanager_error']}")
    if not e:
        return lines
    if e.get("alerts_accepted_in_503"):
        lines.append(f"  503 answers said {e['alerts_accepted_in_503']} alerts were journalled")
    lines.append(
        f"  EyeTok's answers: actions {e.get('actions')}, channels {e.get('sev_channels')}"
    )
    j = e.get("journalled") or {}
    if j.get("journal_files"):
        lines.append(
            f"  journalled: {j['expected'] - j['missing']}/{j['expected']} accepted alerts in "
            f"the journal files at look {j['looks']}, begun {j['after_last_answer_ms']} ms "
            f"after the last answer (reading them took {j['scan_ms']} ms; a 202 follows the "
            "fsync, so this checks rather than waits)"
        )
        moved = (e.get("materialised") or {}).get("checkpointed_out_of_journal", 0)
        if moved:
            lines.append(
                f"  and {moved:,} more had left the journal files at a checkpoint: they are "
                "in history.duckdb (counted after SIGTERM, below)"
            )
    elif j:
        lines.append("  journalled: no journal-*.wal files found under <data>/journal")
    m = e.get("materialised") or {}
    if "expected" in m:
        lines.append(
            f"  after SIGTERM ({e.get('stop_s')} s, exit {e.get('exit_code')}): "
            f"{m['accepted_in_signals']}/{m['expected']} in history.duckdb signals "
            f"({m['signals_rows']} rows with the warm-up), deliveries planned {m['deliveries']}"
        )
        if "in_neither" in m and m["accepted_in_signals"] < m["expected"]:
            lines.append(
                f"  the other {m['expected'] - m['accepted_in_signals']:,} were in the journal "
                f"files (the next start materialises them); in neither: {m['in_neither']:,}"
            )
    elif m:
        lines.append(f"  history.duckdb: {m.get('error')}")
    g = e.get("journal") or {}
    if "batch_mean" in g:
        lines.append(
            f"  group commits: {g['signals']} signals in {g['signal_commits']}, mean "
            f"{g['batch_mean']} (max {g['batch_max']}), one every {g['interval_p50_ms']} ms "
            f"(p50); receipt -> commit start p50 {g['receipt_to_commit_start_p50_ms']} ms, "
            f"p99 {g['receipt_to_commit_start_p99_ms']} ms"
        )
    lines.append(
        f"  EyeTok RSS {e.get('rss_ready_mb')} MB ready, {e.get('peak_rss_burst_mb')} MB peak "
        f"in the burst; CPU per alert: main thread (trio loop) "
        f"{e.get('server_main_thread_cpu_us_per_alert')} us, other threads "
        f"{e.get('server_other_threads_cpu_us_per_alert')} us; ready in {e.get('ready_s')} s"
    )
    return lines


def _acc(fig: dict[str, Any]) -> str | None:
    if "alerts_accepted" not in fig:
        return None
    return f"{fig['alerts_accepted']}/{fig['alerts_sent']}"


def text_report(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "EyeTok batched hooks benchmark (design section 9: >= 20,000 alerts/s, journal on; "
        f"issue 20: >= {TARGET_VS_ALERTMANAGER:g}x Alertmanager's rate in the same run)",
        f"  {meta['when']}  {meta['cpus']} CPUs  Python {meta['python']}  "
        f"hypercorn {meta['hypercorn']}  trio {meta['trio']}",
        f"  R={meta['requests']} requests x P={meta['per_request']} alerts, "
        f"C={meta['concurrency']}, warm-up {meta['warmup']} requests per server",
        f"  tenant {TENANT!r}: bearer token ({TOKEN_ENV}), no routes (journalled and "
        "recorded, delivered nowhere)",
        "  load generator: raw HTTP/1.1 keep-alive, one epoll loop (bench/ingest/load.py run_raw)",
    ]
    if meta["eyetok_root"] != str(ROOT):
        lines.append(f"  EyeTok run from {meta['eyetok_root']}")
    for source in meta["sources"]:
        lines += source_lines(source, report["sources"][source])
    return "\n".join(lines)
