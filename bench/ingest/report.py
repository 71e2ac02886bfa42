"""The text report and the verdicts."""

from __future__ import annotations

from typing import Any

from bench.ingest import (
    TARGET_CPU_RATIO,
    TARGET_E2E_P99_MS,
    TARGET_RATIO,
    TARGET_RSS_MB,
    WEBHOOK_SINK,
    durability,
    task_cpu,
)
from bench.ingest.footprint import footprint_lines


def fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}" if abs(value) >= 100 else f"{value:.2f}{unit}"
    return f"{value}{unit}"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def text_report(report: dict[str, Any]) -> str:
    meta = report["meta"]
    ceil = report.get("ceiling")
    eye = report.get("eyetok")
    tr = report.get("trickle")
    lines = [
        "EyeTok ingest benchmark",
        f"  {meta['when']}  {meta['cpus']} CPUs  Python {meta['python']}  "
        f"hypercorn {meta['hypercorn']}  trio {meta['trio']}",
        f"  N={meta['requests']} C={meta['concurrency']} warmup={meta['warmup']}  "
        f"bodies {meta['body_bytes_mean']:.0f} B mean ({meta['body_bytes_min']}-"
        f"{meta['body_bytes_max']}) from {', '.join(meta['fixtures'])}",
        f"  load generator: {meta['client_desc']}",
        "",
    ]
    if eye is not None or ceil is not None:
        lines.append(f"{'':28}{'ceiling':>14}{'EyeTok':>14}{'ratio':>9}   target")
        c = ceil or {}
        e = eye or {}
        ratio = report["figures"].get("accepted_ratio")

        def row(label: str, cv: Any, ev: Any, rv: str = "", target: str = "") -> None:
            lines.append(f"{label:28}{fmt(cv):>14}{fmt(ev):>14}{rv:>9}   {target}")

        row(
            "accepted/s",
            c.get("accepted_per_s"),
            e.get("accepted_per_s"),
            f"{ratio:.2f}" if ratio is not None else "-",
            f">= {TARGET_RATIO} x ceiling  {_verdict(report['verdicts'].get('throughput'))}",
        )
        row("accepted / sent", _acc(c), _acc(e))
        row("HTTP p50 (ms)", c.get("p50_ms"), e.get("p50_ms"))
        row("HTTP p99 (ms)", c.get("p99_ms"), e.get("p99_ms"))
        row("HTTP max (ms)", c.get("max_ms"), e.get("max_ms"))
        row("non-202 answers", _non202(c), _non202(e))
        row(
            "peak RSS (MB)",
            c.get("peak_rss_mb"),
            e.get("peak_rss_mb"),
            "",
            f"<= {TARGET_RSS_MB:g} MB  {_verdict(report['verdicts'].get('rss'))}",
        )
        row(
            "generator CPU/request (us)",
            c.get("client_cpu_us_per_request"),
            e.get("client_cpu_us_per_request"),
        )
        cpu_ratio = report["figures"].get("cpu_ratio")
        row(
            "server CPU/request (us)",
            c.get("server_cpu_us_per_request"),
            e.get("server_cpu_us_per_request"),
            f"{cpu_ratio:.2f}" if cpu_ratio is not None else "-",
            f"<= {TARGET_CPU_RATIO} x ceiling  {_verdict(report['verdicts'].get('cpu'))}",
        )
        row(
            "  main thread (event loop)",
            c.get("server_main_thread_cpu_us_per_request"),
            e.get("server_main_thread_cpu_us_per_request"),
        )
        row(
            "  other threads",
            c.get("server_other_threads_cpu_us_per_request"),
            e.get("server_other_threads_cpu_us_per_request"),
        )
        exit_ratio = report["figures"].get("cpu_ratio_to_exit")
        row(
            "  burst start to exit",
            c.get("server_cpu_us_per_request_to_exit"),
            e.get("server_cpu_us_per_request_to_exit"),
            f"{exit_ratio:.2f}" if exit_ratio is not None else "-",
            "(work left after the window and the flush at SIGTERM counted)",
        )
        row("server CPU (cores busy)", c.get("server_cpu_cores"), e.get("server_cpu_cores"))
        if eye is not None:
            lines.append(
                f"  fake Slack process during the burst: {e.get('fake_slack_cpu_cores')} cores, "
                f"{e.get('fake_slack_cpu_us_per_request')} us per request"
            )
            j = e.get("journal") or {}
            if "batch_mean" in j:
                lines.append(
                    f"  journal: {j['signals']} signals in {j['signal_commits']} group commits, "
                    f"batch mean {j['batch_mean']} (max {j['batch_max']}), one commit every "
                    f"{j['interval_p50_ms']} ms (p50; p90 {j['interval_p90_ms']}); receipt -> "
                    f"commit start p50 {j['receipt_to_commit_start_p50_ms']} ms, "
                    f"p99 {j['receipt_to_commit_start_p99_ms']} ms"
                )
            for target, lane in (j.get("lanes") or {}).items():
                lines.append(
                    f"  lane {target}: {lane['posts']} posts, one every {lane['ms_per_post']} ms; "
                    f"receipt -> delivered (journal) p50 {lane['latency_p50_ms']} ms, "
                    f"p99 {lane['latency_p99_ms']} ms"
                )
            if e.get("daemon_env"):
                lines.append(f"  WHAT-IF: daemon environment += {e['daemon_env']}")
            if e.get("switch_interval"):
                lines.append(
                    f"  WHAT-IF: daemon ran under sys.setswitchinterval({e['switch_interval']})"
                )
            lines.append(
                f"  EyeTok RSS: {e.get('rss_ready_mb')} MB ready, "
                f"{e.get('peak_rss_burst_mb')} MB peak during the HTTP burst, "
                f"{e.get('peak_rss_mb')} MB peak until all posts were in; ready in "
                f"{e.get('ready_s')} s; stopped (SIGTERM) in {e.get('stop_s')} s, "
                f"exit {e.get('exit_code')}"
            )
            if e.get("peak_rss_anon_mb") is not None:
                lines.append(
                    f"    of which anonymous (RssAnon: Python heap, malloc, DuckDB buffers): "
                    f"{e.get('rss_anon_ready_mb')} MB ready, "
                    f"{e.get('peak_rss_anon_burst_mb')} MB peak during the HTTP burst, "
                    f"{e.get('peak_rss_anon_mb')} MB peak until all posts were in; "
                    f"file-backed (RssFile: the libraries' pages) {e.get('peak_rss_file_mb')} MB "
                    f"at most"
                )
            lines += footprint_lines(e)
            lines.append(f"  SEV channels answered: {e.get('sev_channels')}")
            x = e.get("e2e") or {}
            if x.get("sink") == "webhook":
                lines += webhook_report_lines(e, report["verdicts"])
            else:
                lines += [
                    "",
                    f"receipt -> Slack post, burst of {e.get('accepted')} (Slack rate limit "
                    f"LIFTED to {e.get('slack_rate_per_channel'):g} msg/s per channel via "
                    "EYETOK_CONFIG)",
                    f"  arrived {x.get('arrived')}/{x.get('expected')} top-level posts in "
                    f"{x.get('waited_s')} s of waiting (limit {x.get('limit_s')} s)",
                    f"  p50 {fmt(x.get('p50_ms'))} ms  p90 {fmt(x.get('p90_ms'))} ms  "
                    f"p99 {fmt(x.get('p99_ms'))} ms  max {fmt(x.get('max_ms'))} ms   target "
                    f"p99 <= {TARGET_E2E_P99_MS:g} ms  "
                    f"{_verdict(report['verdicts'].get('e2e_p99'))}",
                    f"  Slack posts/s while draining: {x.get('posts_per_s')}; by channel "
                    f"{x.get('by_channel')}",
                ]
    if (ceil or {}).get("task_cpu") or (eye or {}).get("task_cpu"):
        lines += task_cpu.report_lines((ceil or {}).get("task_cpu"), (eye or {}).get("task_cpu"))
    if eye is not None and report.get("eyetok_postgres") is not None:
        lines += durability.report_lines(
            eye, report["eyetok_postgres"], report["figures"].get("durability") or {}
        )
    if tr is not None:
        x = tr.get("e2e") or {}
        lines += [
            "",
            f"trickle, default config (Slack 1 msg/s per channel): {tr['requests']} alerts "
            f"at {tr['rate_per_channel']:g}/s per channel over {tr['channels']} channels "
            f"({tr['rate_total']:g}/s total)",
            f"  accepted {tr['accepted']}/{tr['requests']}  non-202 {tr['non_202'] or 0}  "
            f"HTTP p50 {fmt(tr['http_p50_ms'])} ms  p99 {fmt(tr['http_p99_ms'])} ms",
            f"  receipt -> Slack post: arrived {x.get('arrived')}/{x.get('expected')}  "
            f"p50 {fmt(x.get('p50_ms'))} ms  p99 {fmt(x.get('p99_ms'))} ms  "
            f"max {fmt(x.get('max_ms'))} ms",
            f"  by channel {x.get('by_channel')}",
        ]
    if report.get("kill") is not None:
        lines += kill_report_lines(report["kill"], report["verdicts"])
    if meta.get("workdir_kept"):
        lines += ["", f"kept: {meta['workdir_kept']}"]
    return "\n".join(lines)


def webhook_report_lines(e: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    x = e.get("e2e") or {}
    v = e.get("webhook_verification") or {}
    sl = e.get("slack_during_burst") or {}
    extras = (
        f"  receiver: {x.get('deliveries')} requests since the burst began, answers "
        f"{x.get('receiver_answers')}; by type {x.get('by_type')}; duplicates "
        f"{x.get('duplicates')}, unverified {x.get('unverified')}, not for a burst incident "
        f"{x.get('other_deliveries')}"
    )
    lines = [
        "",
        f"receipt -> webhook arrival, burst of {e.get('accepted')}: the operator's SEV1/SEV2/"
        f"SEV2.5/SEV3 routed ONLY to webhook sink {WEBHOOK_SINK} (no rate limit), verified "
        f"through DNS TXT {v.get('txt_record')} in {v.get('handshake_s')} s; receiver = "
        "harness.peers.webhook_receiver, threads in the bench process (signatures checked)",
        f"  arrived {x.get('arrived')}/{x.get('expected')} incident.opened webhooks in "
        f"{x.get('waited_s')} s of waiting (limit {x.get('limit_s')} s); last one "
        f"{fmt(x.get('last_arrival_after_first_send_s'))} s after the first send",
        f"  p50 {fmt(x.get('p50_ms'))} ms  p90 {fmt(x.get('p90_ms'))} ms  "
        f"p99 {fmt(x.get('p99_ms'))} ms  max {fmt(x.get('max_ms'))} ms   target p99 "
        f"<= {TARGET_E2E_P99_MS:g} ms  {_verdict(verdicts.get('e2e_p99'))}",
        f"  webhooks/s while draining: {x.get('posts_per_s')}; by SEV channel "
        f"{x.get('by_channel')}",
        extras,
    ]
    if x.get("unverified_problems"):
        lines.append(f"  unverified: {x['unverified_problems']}")
    lines += [
        f"  Slack (kept for operator notices): {sl.get('posts')} posts during the burst, "
        f"{sl.get('naming_a_burst_incident')} naming a burst incident; by channel "
        f"{sl.get('by_channel')}",
        f"  bench process during the HTTP burst: generator loop thread "
        f"{e.get('client_thread_cpu_us_per_request')} us/request; its other threads "
        f"(webhook receiver, fake DNS, RSS sampler) {e.get('client_other_threads_cpu_cores')} "
        "cores, on the same GIL as the generator (the generator CPU/request row above is the "
        "whole bench process, receiver included)",
    ]
    return lines


def kill_report_lines(k: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    def pf(ok: bool | None) -> str:
        return "PASS" if ok else "FAIL"

    def counts(d: dict[str, int]) -> str:
        return ", ".join(f"{key}: {v}" for key, v in d.items()) or "none"

    lines = [
        f"kill -9 mid-stream: {k['requests']} distinct signed webhooks at C={k['concurrency']}, "
        f"Slack rate limit LIFTED to {k['slack_rate_per_channel']:g} msg/s per channel",
    ]
    if k.get("killed"):
        lines += [
            f"  SIGKILL {k.get('kill_at_s')} s into the load, after "
            f"{k.get('accepted_at_kill')} answered 202 (target {k['kill_after_accepted']}); "
            f"exit {k.get('killed_exit')}",
            f"  durability {k.get('durability')}; restart on "
            + (
                "a NEW, EMPTY data dir (same Postgres; "
                f"{k.get('rehydrated_deliveries')} pending deliveries rehydrated)"
                if k.get("fresh_data_dir")
                else "the same data dir"
            )
            + f" and port :{k['port']}: kill -> ready "
            f"{fmt(k.get('kill_to_ready_s'))} s (spawn -> ready "
            f"{fmt(k.get('spawn_to_ready_s'))} s); its first 202 "
            f"{fmt(k.get('kill_to_first_202_s'))} s after the kill; outbox_requeued "
            f"{k.get('outbox_requeued')} pending deliveries",
            f"  at the kill: {k.get('accepted_before_kill')} incidents accepted, "
            f"{k.get('posted_before_kill')} of them already in Slack -> "
            f"{k.get('pending_at_kill')} deliveries pending across the kill",
        ]
    else:
        lines.append(f"  NO KILL: fewer than {k['kill_after_accepted']} requests were accepted")
    lines += [
        f"  sent {k['sent']}  accepted (202) {k['accepted']}/{k['requests']} in "
        f"{k['load_seconds']} s ({k['accepted_per_s']}/s overall)  actions {counts(k['actions'])}",
        f"  retried: {k['retries']} re-sends of {k['retried_requests']} requests (at most "
        f"{k['max_attempts']} attempts each); {k['connection_errors']} attempts lost with their "
        f"connection, {k['connect_refused']} connection attempts refused",
        f"  answers by status (every attempt): {counts(k['answers_by_status'])}",
        f"  refused in the end (never 202) by status: {counts(k['refused_by_status'])}"
        + ("  (load deadline hit)" if k.get("timed_out") else ""),
        f"  Slack: delivered {k['delivered']}/{k['expected_incidents']} accepted incidents "
        f"(waited {k.get('delivery_wait_s')} s, limit {k.get('e2e_limit_s')} s); last post "
        f"+{fmt(k.get('last_post_after_kill_s'))} s after the kill; "
        f"{k['slack_posts']} posts: {k['slack_thread_replies']} thread replies, "
        f"{k['slack_unmatched_posts']} top-level for no accepted incident",
        f"  duplicates: {k['duplicates']} incidents posted more than once as a top-level "
        f"message ({k['duplicate_posts']} extra posts; at-least-once delivery)",
    ]
    if k.get("journal_error"):
        lines.append(f"  journal: could not read history.duckdb: {k['journal_error']}")
    else:
        if k.get("checked_in"):
            lines.append(
                f"  every 202's incident looked up in {k['checked_in']} (the dead dyno's "
                "journal went with its disk)"
            )
        lines.append(
            f"  journal ({k['journal_signals']} signals in history.duckdb after SIGTERM of the "
            f"restarted daemon: exit {k.get('exit_code')} in {k.get('stop_s')} s): "
            f"{k['accepted_signal_ids']} accepted signal ids, "
            f"{k['journalled_not_accepted']} journalled but never answered 202"
        )
    if k.get("accepted_without_incident"):
        lines.append(f"  202s without an incident id: {k['accepted_without_incident']}")
    lost_ids = f"  e.g. {', '.join(k['lost_incidents'][:5])}" if k["lost"] else ""
    lines += [
        "",
        f"  ==> LOST (accepted, never delivered): {k['lost']}   "
        f"{pf(verdicts.get('kill_lost'))}{lost_ids}",
        f"  ==> 202 without journal: {fmt(k.get('accepted_without_journal'))}   "
        f"{pf(verdicts.get('kill_journal'))}",
    ]
    if not verdicts.get("kill_complete"):
        lines.append(
            "  ==> the run is incomplete (no kill, no restart or not every request accepted): FAIL"
        )
    return lines


def _acc(fig: dict[str, Any]) -> str | None:
    return f"{fig['accepted']}/{fig['sent']}" if "accepted" in fig else None


def _non202(fig: dict[str, Any]) -> str | None:
    if "non_202" not in fig:
        return None
    return ", ".join(f"{k}:{v}" for k, v in fig["non_202"].items()) or "0"


def judge(report: dict[str, Any]) -> None:
    ceil, eye = report.get("ceiling"), report.get("eyetok")
    figures, verdicts = report["figures"], report["verdicts"]
    if ceil and eye and ceil.get("accepted_per_s"):
        figures["accepted_ratio"] = round(eye["accepted_per_s"] / ceil["accepted_per_s"], 3)
        verdicts["throughput"] = figures["accepted_ratio"] >= TARGET_RATIO
    if ceil and eye and ceil.get("server_cpu_us_per_request"):
        figures["cpu_ratio"] = round(
            eye["server_cpu_us_per_request"] / ceil["server_cpu_us_per_request"], 3
        )
        verdicts["cpu"] = figures["cpu_ratio"] <= TARGET_CPU_RATIO
        if eye.get("server_cpu_us_per_request_to_exit") and ceil.get(
            "server_cpu_us_per_request_to_exit"
        ):
            figures["cpu_ratio_to_exit"] = round(
                eye["server_cpu_us_per_request_to_exit"]
                / ceil["server_cpu_us_per_request_to_exit"],
                3,
            )
    if eye:
        verdicts["rss"] = eye["peak_rss_mb"] <= TARGET_RSS_MB
        p99 = (eye.get("e2e") or {}).get("p99_ms")
        complete = (eye.get("e2e") or {}).get("missing") == 0
        verdicts["e2e_p99"] = p99 is not None and complete and p99 <= TARGET_E2E_P99_MS
        figures["eyetok_accepted_per_s"] = eye["accepted_per_s"]
        figures["e2e_p99_ms"] = p99
        figures["e2e_sink"] = eye.get("sink", "slack")
        if eye.get("slack_during_burst") is not None:
            figures["slack_posts_naming_burst_incidents"] = eye["slack_during_burst"][
                "naming_a_burst_incident"
            ]
        figures["peak_rss_mb"] = eye["peak_rss_mb"]
    if ceil:
        figures["ceiling_accepted_per_s"] = ceil["accepted_per_s"]
    kill = report.get("kill")
    if kill:
        verdicts["kill_lost"] = kill["lost"] == 0
        verdicts["kill_journal"] = kill.get("accepted_without_journal") == 0
        verdicts["kill_complete"] = (
            kill["killed"] and kill["restarted"] and kill["accepted"] == kill["requests"]
        )
        figures["kill_lost"] = kill["lost"]
        figures["kill_duplicates"] = kill["duplicates"]
        figures["kill_to_ready_s"] = kill.get("kill_to_ready_s")
        figures["kill_accepted_without_journal"] = kill.get("accepted_without_journal")
    pg = report.get("eyetok_postgres")
    if eye and pg:
        figures["durability"] = durability.compare(eye, pg)
        verdicts["durability_cost"] = figures["durability"].get("cost_ok")
    trickle = report.get("trickle")
    if trickle:
        figures["trickle_e2e_p50_ms"] = trickle["e2e"]["p50_ms"]
        figures["trickle_e2e_p99_ms"] = trickle["e2e"]["p99_ms"]


def version_of(name: str, module: Any) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return str(getattr(module, "__version__", "?"))
