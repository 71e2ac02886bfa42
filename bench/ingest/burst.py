"""The phases of a normal run: the ceiling, the EyeTok burst, the trickle."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx

from bench.ingest import (
    BURST_FIXTURES,
    HOST,
    TRICKLE_FIXTURES,
    WEBHOOK_SECRET_ENV,
    WEBHOOK_SINK,
    WEBHOOK_VERIFY_LIMIT_S,
    log,
)
from bench.ingest.bodies import Request, RequestFactory, retarget
from bench.ingest.footprint import held_at_stop, import_footprint, memory_map
from bench.ingest.load import RunResult, run_load, summarise
from bench.ingest.peers import (
    SlackWatch,
    WebhookPeers,
    burst_config,
    expected_posts,
    journal_stats,
    slack_alert_posts,
    verify_webhook_sync,
    wait_for_webhooks,
)
from bench.ingest.processes import (
    Proc,
    RssSampler,
    cpu_figures,
    cpu_snapshot,
    start_ceiling,
    start_eyetok,
    start_py_spy,
    stop_py_spy,
)
from bench.ingest.task_cpu import TaskWindow, recorder_prefix


def phase_ceiling(
    args: argparse.Namespace, factory: RequestFactory, requests: list[Request], workdir: Path
) -> dict[str, Any]:
    steps_out = workdir / "ceiling.task-steps"
    prefix = recorder_prefix(steps_out) if args.task_cpu else None
    proc, port = start_ceiling(factory.secret, workdir, prefix=prefix)
    window = TaskWindow(proc.pid, steps_out) if args.task_cpu else None
    sampler = RssSampler(proc.pid).start()
    try:
        reqs = retarget(requests, 1, port)
        if args.warmup:
            warm = retarget(factory.batch("c", args.warmup, BURST_FIXTURES, 1), 1, port)
            run_load(args.client, port, warm, args.concurrency, 60.0)
        log(f"ceiling: {len(reqs)} requests at concurrency {args.concurrency} -> :{port}")
        if window is not None:
            window.mark()
        cpu0 = cpu_snapshot(proc.pid)
        result = run_load(args.client, port, reqs, args.concurrency, args.time_limit)
        cpu1 = cpu_snapshot(proc.pid)
        if window is not None:
            window.mark()
        figures = summarise(result)
        figures.update(cpu_figures(cpu0, cpu1, figures["answered"], figures["seconds"], "server_"))
        if window is not None:
            figures["task_cpu"] = window.per_request(figures["answered"])
    finally:
        figures_rss = sampler.stop()
        proc.stop(5.0)
    figures["peak_rss_mb"] = round(figures_rss / 2**20, 1)
    figures.update(cpu_to_exit(proc, cpu0, figures["answered"]))
    log(
        f"ceiling: {figures['accepted_per_s']} accepted/s, p50 {figures['p50_ms']} ms, "
        f"p99 {figures['p99_ms']} ms, peak RSS {figures['peak_rss_mb']} MB"
    )
    return figures


def phase_burst(
    args: argparse.Namespace,
    factory: RequestFactory,
    requests: list[Request],
    workdir: Path,
    slack: Proc,
    slack_url: str,
    watch: SlackWatch,
    hook: WebhookPeers | None = None,
) -> dict[str, Any]:
    config = burst_config(args, hook)
    profile = workdir / "eyetok.cprofile" if args.profile else None
    prefix = args.daemon_prefix.split() if args.daemon_prefix else None
    steps_out = workdir / f"{workdir.name}.task-steps"
    if getattr(args, "task_cpu", False):
        prefix = recorder_prefix(steps_out)
    extra_env = dict(kv.split("=", 1) for kv in args.daemon_env)
    if hook is not None:
        extra_env[WEBHOOK_SECRET_ENV] = hook.secret
        extra_env["EYETOK_DNS_RESOLVER"] = f"{HOST}:{hook.dns.port}"
    daemon = start_eyetok(
        secret=factory.secret,
        slack_url=slack_url,
        data_dir=workdir / "eyetok-burst",
        config_yaml=config,
        profile_path=profile,
        prefix=prefix,
        switch_interval=args.switch_interval,
        extra_env=extra_env,
    )
    window = TaskWindow(daemon.proc.pid, steps_out) if getattr(args, "task_cpu", False) else None
    sampler = RssSampler(daemon.proc.pid).start()
    figures: dict[str, Any] = {"sink": "webhook" if hook is not None else "slack"}
    figures["imports"] = import_footprint()
    try:
        if hook is not None:
            base_url = f"http://{HOST}:{daemon.port}"
            figures["webhook_verification"] = verify_webhook_sync(
                base_url, hook, WEBHOOK_VERIFY_LIMIT_S
            )
            figures["webhook_url"] = hook.url
            log(
                f"eyetok: webhook sink {WEBHOOK_SINK} -> {hook.url} verified through DNS TXT in "
                f"{figures['webhook_verification']['handshake_s']} s"
            )
        time.sleep(0.2)
        figures["rss_ready_mb"] = round(sampler.last / 2**20, 1)
        figures["rss_anon_ready_mb"] = round(sampler.last_anon / 2**20, 1)
        watch.skip_existing()
        reqs = retarget(requests, 1, daemon.port)
        if args.warmup:
            warm = retarget(factory.batch("w", args.warmup, BURST_FIXTURES, 1), 1, daemon.port)
            run_load(args.client, daemon.port, warm, args.concurrency, 60.0)
        hook_start = len(hook.receiver.deliveries) if hook is not None else 0
        mono_to_wall = time.time() - time.monotonic()
        log(f"eyetok: {len(reqs)} requests at concurrency {args.concurrency} -> :{daemon.port}")
        spy = start_py_spy(daemon.proc.pid, Path(args.py_spy)) if args.py_spy else None
        if window is not None:
            window.mark()
        cpu0, slack0 = cpu_snapshot(daemon.proc.pid), cpu_snapshot(slack.pid)
        try:
            result = run_load(args.client, daemon.port, reqs, args.concurrency, args.time_limit)
        finally:
            cpu1, slack1 = cpu_snapshot(daemon.proc.pid), cpu_snapshot(slack.pid)
            if spy is not None:
                stop_py_spy(spy)
            if window is not None:
                window.mark()
        figures.update(summarise(result))
        n_ok, secs = figures["answered"], figures["seconds"]
        if window is not None:
            figures["task_cpu"] = window.per_request(n_ok)
        figures.update(cpu_figures(cpu0, cpu1, n_ok, secs, "server_"))
        fake = cpu_figures(slack0, slack1, n_ok, secs, "fake_slack_")
        figures["fake_slack_cpu_us_per_request"] = fake["fake_slack_cpu_us_per_request"]
        figures["fake_slack_cpu_cores"] = fake["fake_slack_cpu_cores"]
        figures["rss_after_burst_mb"] = round(sampler.last / 2**20, 1)
        figures["peak_rss_burst_mb"] = round(sampler.peak / 2**20, 1)
        figures["peak_rss_anon_burst_mb"] = round(sampler.peak_anon / 2**20, 1)
        figures["memory_at_peak"] = memory_map(daemon.proc.pid)
        log(
            f"eyetok: {figures['accepted_per_s']} accepted/s, p50 {figures['p50_ms']} ms, "
            f"p99 {figures['p99_ms']} ms, non-202 {figures['non_202']}"
        )
        expected, markers, channels = expected_posts(reqs, result, factory)
        figures["sev_channels"] = channels
        if hook is None:
            log(f"eyetok: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} Slack posts")
            e2e = watch.wait_for(expected, markers, args.e2e_timeout)
            e2e["sink"] = "slack"
        else:
            log(f"eyetok: waiting (<= {args.e2e_timeout:g}s) for {len(expected)} webhooks")
            e2e = wait_for_webhooks(
                hook.receiver,
                expected,
                args.e2e_timeout,
                start_index=hook_start,
                mono_to_wall=mono_to_wall,
            )
            time.sleep(0.5)  # anything Slack would (wrongly) get right after the last hook
            figures["slack_during_burst"] = slack_alert_posts(watch, expected)
        figures["e2e"] = e2e
        # CPU from the first request until the last delivery arrived: the whole cost of a
        # request, wherever the HTTP window ended (a faster ingest leaves more of its
        # deliveries for after the window).
        through = cpu_figures(cpu0, cpu_snapshot(daemon.proc.pid), n_ok, secs, "")
        figures["server_cpu_us_per_delivered_request"] = through["cpu_us_per_request"]
        figures["server_main_thread_cpu_us_per_delivered_request"] = through[
            "main_thread_cpu_us_per_request"
        ]
        log(
            f"eyetok: {e2e['arrived']}/{e2e['expected']} {e2e['sink']} deliveries, receipt->"
            f"arrival p50 {e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms"
        )
    finally:
        peak = sampler.stop()
        t_stop = time.perf_counter()
        code = daemon.proc.stop(40.0)
        figures["stop_s"] = round(time.perf_counter() - t_stop, 2)
        figures["exit_code"] = code
    figures.update(cpu_to_exit(daemon.proc, cpu0, figures["answered"]))
    figures["journal"] = journal_stats(daemon.data_dir / "data" / "history.duckdb")
    figures["actors_held_at_stop"] = held_at_stop(daemon.log_path)
    figures["peak_rss_mb"] = round(peak / 2**20, 1)
    figures["peak_rss_anon_mb"] = round(sampler.peak_anon / 2**20, 1)
    figures["peak_rss_file_mb"] = round(sampler.peak_file / 2**20, 1)
    figures["slack_rate_per_channel"] = args.slack_rate if config else 1.0
    figures["ready_s"] = round(daemon.ready_s, 2)
    figures["switch_interval"] = args.switch_interval
    figures["daemon_env"] = args.daemon_env
    if profile is not None and profile.exists():
        figures["cprofile"] = str(profile)
    return figures


def phase_trickle(
    args: argparse.Namespace,
    factory: RequestFactory,
    workdir: Path,
    slack_url: str,
    watch: SlackWatch,
) -> dict[str, Any]:
    daemon = start_eyetok(
        secret=factory.secret,
        slack_url=slack_url,
        data_dir=workdir / "eyetok-trickle",
        config_yaml=None,  # the default: Slack's 1 msg/s per channel
    )
    figures: dict[str, Any] = {}
    count = args.trickle_count
    channels = len(TRICKLE_FIXTURES)
    interval = 1.0 / (args.trickle_rate * channels)
    try:
        watch.skip_existing()
        reqs = retarget(factory.batch("t", count, TRICKLE_FIXTURES, 1), 1, daemon.port)
        result = RunResult.empty(count, "httpx-sync")
        url = f"http://{HOST}:{daemon.port}/hooks/sentry"
        log(
            f"trickle: {count} alerts over {channels} channels, {args.trickle_rate:g}/s per "
            f"channel ({1 / interval:.2f}/s total), default Slack rate 1/s per channel"
        )
        begin = time.perf_counter()
        with httpx.Client(timeout=15.0) as client:
            for i, req in enumerate(reqs):
                due = begin + i * interval
                while (now := time.perf_counter()) < due:
                    time.sleep(min(due - now, 0.05))
                if now - begin > count * interval + 60.0:
                    break
                result.wall0[i] = time.time()
                result.t0[i] = time.perf_counter()
                try:
                    resp = client.post(url, content=req.body, headers=req.headers)
                except httpx.HTTPError:
                    result.status[i] = -1
                    result.t1[i] = time.perf_counter()
                    continue
                result.t1[i] = time.perf_counter()
                result.status[i] = resp.status_code
                result.bodies[i] = resp.content
        http = summarise(result)
        figures.update(
            requests=count,
            accepted=http["accepted"],
            non_202=http["non_202"],
            http_p50_ms=http["p50_ms"],
            http_p99_ms=http["p99_ms"],
            channels=channels,
            rate_per_channel=args.trickle_rate,
            rate_total=round(1 / interval, 3),
        )
        expected, markers, sev = expected_posts(reqs, result, factory)
        figures["sev_channels"] = sev
        e2e = watch.wait_for(expected, markers, args.e2e_timeout)
        figures["e2e"] = e2e
        log(
            f"trickle: {e2e['arrived']}/{e2e['expected']} posts, receipt->post p50 "
            f"{e2e['p50_ms']} ms, p99 {e2e['p99_ms']} ms"
        )
    finally:
        figures["exit_code"] = daemon.proc.stop(40.0)
    return figures


def cpu_to_exit(proc: Proc, cpu0: dict[str, float], answered: int) -> dict[str, float]:
    """Server CPU per request from the burst's first request to the process's exit: what the
    HTTP window leaves for later (deliveries, a materialisation, the flush at SIGTERM)
    counted too. Empty when the process was killed or never reaped."""
    if proc.cpu_s_at_exit is None or not answered:
        return {}
    cpu = proc.cpu_s_at_exit - cpu0["total"]
    return {"server_cpu_us_per_request_to_exit": round(cpu * 1e6 / answered, 1)}
