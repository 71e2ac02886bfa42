"""``/console``: the operator's dashboard (always served; the root token's session).

The notification stream of the review window grouped by tenant, the anomaly journal
with its one-click verdicts (benign, escalate; "zero anomalies" when there are none),
the verification log with a re-handshake button per sink, the drill receipts (one
printable page each), this hour's budgets and the open suppression clusters with their
acknowledge button. Every button is a form with the session's CSRF token, and every
write is audited with who pressed it."""

from __future__ import annotations

from datetime import timedelta
from itertools import groupby

from quart import Blueprint, Response, redirect, render_template, request

from eyetok.clock import Clock
from eyetok.console.access import Access, error_page, form_posted, signed_in
from eyetok.console.session import Session
from eyetok.review import parse_since

HTML = "text/html; charset=utf-8"
ZERO_ANOMALIES = "review_zero_anomalies"
VERDICTS = ("benign", "escalate")


def add_dashboard(
    blueprint: Blueprint, access: Access, clock: Clock, *, operator_tenant: str
) -> None:
    desk = access.desk

    @blueprint.get("")
    @blueprint.get("/")
    @signed_in(access, operator=True)
    async def dashboard(session: Session) -> Response:
        try:
            window = parse_since(request.args.get("since", "24h"))
        except ValueError as exc:
            return await error_page(400, f"since: {exc}")
        now = clock.now()
        since = now - window
        stream = await desk.stream(since, now)
        review = await desk.review(since)
        zero_marks = await desk.audit_lines(ZERO_ANOMALIES, now - timedelta(days=7))
        suppressions = [s for s in await desk.suppressions() if s["cleared_at"] is None]
        body = await render_template(
            "dashboard.html",
            session=session,
            since=since,
            until=now,
            window=request.args.get("since", "24h"),
            stream=[(tenant, list(rows)) for tenant, rows in groupby(stream, lambda r: r.tenant)],
            review=review,
            zero_marks=zero_marks,
            sinks=await desk.sinks(),
            receipts=await desk.receipts(20),
            budgets=await desk.budgets(),
            suppressions=suppressions,
            said=request.args.get("said", ""),
        )
        return Response(body, content_type=HTML)

    async def back(said: str) -> Response:
        return redirect(f"/console?said={said}")  # type: ignore[return-value]

    @blueprint.post("/anomalies/<anomaly_id>/verdict")
    @form_posted(access, operator=True)
    async def verdict(session: Session, form: dict[str, str], anomaly_id: str) -> Response:
        chosen = form.get("verdict", "")
        if chosen not in VERDICTS:
            return await error_page(400, "verdict: benign or escalate")
        note = form.get("note", "").strip()[:500] or f"marked {chosen} on the console"
        answer = await desk.note_anomaly(anomaly_id, chosen, note, session.who)
        if not answer.ok:
            return await error_page(404, answer.message)
        await desk.audit(
            operator_tenant,
            "console_anomaly_noted",
            f"anomaly {anomaly_id}: {chosen} by {session.who}: {note}",
            None,
        )
        return await back("noted")

    @blueprint.post("/review/zero-anomalies")
    @form_posted(access, operator=True)
    async def zero_anomalies(session: Session, form: dict[str, str]) -> Response:
        try:
            window = parse_since(form.get("since", "24h"))
        except ValueError as exc:
            return await error_page(400, f"since: {exc}")
        review = await desk.review(clock.now() - window)
        if review.anomalies:
            return await error_page(
                409, f"the review has {len(review.anomalies)} anomalies: give each a verdict"
            )
        await desk.audit(
            operator_tenant,
            ZERO_ANOMALIES,
            f"zero anomalies in the {form.get('since', '24h')} to "
            f"{review.until.isoformat()} ({review.notifications} notifications), "
            f"by {session.who}",
            None,
        )
        return await back("zero")

    @blueprint.post("/sinks/<sink_id>/verification")
    @form_posted(access, operator=True)
    async def rehandshake(session: Session, form: dict[str, str], sink_id: str) -> Response:
        answer = await desk.start_verification(sink_id, session.who)
        await desk.audit(
            operator_tenant,
            "console_rehandshake",
            f"sink {sink_id}: re-handshake asked by {session.who}: {answer.message}",
            None,
        )
        body = await render_template(
            "said.html", session=session, ok=answer.ok, message=answer.message
        )
        return Response(body, status=200 if answer.ok else 400, content_type=HTML)

    @blueprint.post("/suppressions/<cluster_id>/ack")
    @form_posted(access, operator=True)
    async def acknowledge_cluster(
        session: Session, form: dict[str, str], cluster_id: str
    ) -> Response:
        row = await desk.acknowledge_cluster(cluster_id, session.who)
        if row is None:
            return await error_page(404, f"no cluster named {cluster_id!r}")
        return await back("cluster")

    @blueprint.get("/receipts/<receipt_id>")
    @signed_in(access, operator=True)
    async def receipt(session: Session, receipt_id: str) -> Response:
        found = next((r for r in await desk.receipts(500) if r["receipt_id"] == receipt_id), None)
        if found is None:
            return await error_page(404, f"no drill receipt {receipt_id!r}")
        body = await render_template("receipt.html", session=session, receipt=found["receipt"])
        return Response(body, content_type=HTML)
