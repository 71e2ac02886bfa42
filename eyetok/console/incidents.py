"""``/console/incidents`` (the list, its rows for live updates) and
``/console/incidents/<id>`` (one incident's timeline and its buttons). Registered only
when ``FLAG_CONSOLE_INCIDENTS`` is on: off, every such path is a 404.

The acknowledge button goes through the same call as Slack's button and
``POST /api/v1/incidents/<id>/ack`` (the incidents actor: audited, the Slack thread's
first post rewritten, PagerDuty told); the console adds an audit line saying it was
pressed here and by whom."""

from __future__ import annotations

from quart import Blueprint, Response, redirect, render_template, request

from eyetok.clock import Clock
from eyetok.console.access import Access, error_page, form_posted, signed_in
from eyetok.console.badges import badge_class
from eyetok.console.filters import LABELS, STATUSES, FilterError, IncidentFilter, parse_filter
from eyetok.console.session import Session
from eyetok.messages import Incident

HTML = "text/html; charset=utf-8"
POLL_MS = 1000


def add_incident_pages(blueprint: Blueprint, access: Access, clock: Clock) -> None:
    desk = access.desk

    def wanted(session: Session) -> IncidentFilter:
        args = {key: request.args.getlist(key) for key in request.args}
        return parse_filter(args, now=clock.now(), tenant=session.tenant)

    async def listed(session: Session) -> tuple[IncidentFilter, list[Incident]] | Response:
        try:
            chosen = wanted(session)
        except FilterError as exc:
            return await error_page(400, f"filter {exc}")
        return chosen, await desk.incidents(chosen)

    @blueprint.get("/incidents")
    @signed_in(access)
    async def incidents(session: Session) -> Response:
        found = await listed(session)
        if isinstance(found, Response):
            return found
        chosen, rows = found
        body = await render_template(
            "incidents.html",
            session=session,
            chosen=chosen,
            incidents=rows,
            labels=LABELS,
            statuses=STATUSES,
            badge_class=badge_class,
            poll_ms=POLL_MS,
            now=clock.now(),
        )
        return Response(body, content_type=HTML)

    @blueprint.get("/incidents/rows")
    async def incident_rows() -> Response:
        session = access.session()
        if session is None:
            return await error_page(401, "signed out: reload the page to sign in")
        found = await listed(session)
        if isinstance(found, Response):
            return found
        _, rows = found
        body = await render_template(
            "incident_rows.html", incidents=rows, badge_class=badge_class, session=session
        )
        return Response(body, content_type=HTML, headers={"cache-control": "no-store"})

    @blueprint.get("/incidents/<incident_id>")
    @signed_in(access)
    async def incident(session: Session, incident_id: str) -> Response:
        found = await desk.incident(incident_id, tenant=session.tenant)
        if found is None:
            return await error_page(404, f"no incident {incident_id!r} you can see")
        body = await render_template(
            "incident.html",
            session=session,
            incident=found,
            moments=await desk.timeline(incident_id),
            badge_class=badge_class,
            said=request.args.get("said", ""),
        )
        return Response(body, content_type=HTML)

    @blueprint.post("/incidents/<incident_id>/ack")
    @form_posted(access)
    async def acknowledge(session: Session, _: dict[str, str], incident_id: str) -> Response:
        found = await desk.incident(incident_id, tenant=session.tenant)
        if found is None:
            return await error_page(404, f"no incident {incident_id!r} you can see")
        incident, counted = await desk.acknowledge_incident(incident_id, session.who)
        if incident is None:
            return await error_page(409, f"incident {incident_id} is not open: nothing to ack")
        said = "acknowledged" if counted else "already"
        if counted:
            await desk.audit(
                incident.tenant,
                "console_acknowledged",
                f"incident {incident_id} acknowledged on the console by {session.who}",
                incident_id,
            )
        return redirect(f"/console/incidents/{incident_id}?said={said}")  # type: ignore[return-value]
