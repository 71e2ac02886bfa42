"""``/console/incidents`` (the list, its rows for live updates) and
``/console/incidents/<id>`` (one incident's timeline and its buttons). Registered only
when ``FLAG_CONSOLE_INCIDENTS`` is on: off, every such path is a 404.

The buttons go through the same calls as Slack's: acknowledge as Slack's button and
``POST /api/v1/incidents/<id>/ack`` (the incidents actor: audited, the Slack thread's
first post rewritten, PagerDuty told); resolve with a note as Slack's modal; approve and
reject a pending playbook proposal as the proposal's buttons (the playbooks actor decides:
quorum, proposer, already decided). Each is authorised by the people actor as a
tenant-scoped action on the incident's tenant, and the console adds an audit line saying
it was pressed here and by whom."""

from __future__ import annotations

from quart import Blueprint, Response, redirect, render_template, request

from eyetok.access import Action
from eyetok.clock import Clock
from eyetok.console.access import Access, error_page, form_posted, signed_in
from eyetok.console.badges import badge_class
from eyetok.console.filters import LABELS, STATUSES, FilterError, IncidentFilter, parse_filter
from eyetok.console.session import Session
from eyetok.messages import Incident

HTML = "text/html; charset=utf-8"
MAX_NOTE = 500  # a resolve note (as the Slack modal's)
PROPOSAL_VERBS = ("approve", "reject")
CLICK_OUTCOMES = ("approved", "counted", "rejected", "refused")  # the playbooks actor's verdicts
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
            proposals=await desk.proposals(incident_id),
            badge_class=badge_class,
            said=request.args.get("said", ""),
        )
        return Response(body, content_type=HTML)

    async def decided(
        session: Session, incident_id: str, what: str, action: Action = Action.ACKNOWLEDGE
    ) -> tuple[Incident, str] | Response:
        """The incident a button of the page decides on, and the name the people actor
        grants the decision (``what``) under: a tenant-scoped ``action`` on its tenant (a
        playbook's approve or reject is ``remediate``, as from Slack)."""
        found = await desk.incident(incident_id, tenant=session.tenant)
        if found is None:
            return await error_page(404, f"no incident {incident_id!r} you can see")
        by = await access.granted(session, action, found.tenant, what=what)
        return by if isinstance(by, Response) else (found, by)

    def back(incident_id: str, said: str) -> Response:
        return redirect(f"/console/incidents/{incident_id}?said={said}")  # type: ignore[return-value]

    @blueprint.post("/incidents/<incident_id>/ack")
    @form_posted(access)
    async def acknowledge(session: Session, _: dict[str, str], incident_id: str) -> Response:
        found = await decided(session, incident_id, "acknowledging it")
        if isinstance(found, Response):
            return found
        incident, counted = await desk.acknowledge_incident(incident_id, found[1])
        if incident is None:
            return await error_page(409, f"incident {incident_id} is not open: nothing to ack")
        if counted:
            await desk.audit(
                incident.tenant,
                "console_acknowledged",
                f"incident {incident_id} acknowledged on the console by {found[1]}",
                incident_id,
            )
        return back(incident_id, "acknowledged" if counted else "already")

    @blueprint.post("/incidents/<incident_id>/resolve")
    @form_posted(access)
    async def resolve(session: Session, form: dict[str, str], incident_id: str) -> Response:
        note = " ".join(form.get("note", "").split())[:MAX_NOTE]
        if not note:
            return await error_page(400, "note: say what was done (it goes to the thread)")
        found = await decided(session, incident_id, "resolving it")
        if isinstance(found, Response):
            return found
        incident, counted = await desk.resolve_incident(incident_id, found[1], note)
        if incident is None or not counted:
            return await error_page(409, f"incident {incident_id} is not open: nothing to resolve")
        await desk.audit(
            incident.tenant,
            "console_resolved",
            f"incident {incident_id} resolved on the console by {found[1]}: {note}",
            incident_id,
        )
        return back(incident_id, "resolved")

    @blueprint.post("/incidents/<incident_id>/proposals/<proposal_id>")
    @form_posted(access)
    async def proposal(
        session: Session, form: dict[str, str], incident_id: str, proposal_id: str
    ) -> Response:
        verb = form.get("do", "")
        if verb not in PROPOSAL_VERBS:
            return await error_page(400, "do: approve or reject")
        found = await decided(
            session, incident_id, f"{verb} of a playbook proposal", Action.REMEDIATE
        )
        if isinstance(found, Response):
            return found
        if proposal_id not in {p.proposal_id for p in await desk.proposals(incident_id)}:
            return await error_page(
                409, f"no proposal {proposal_id!r} of this incident waits for a decision"
            )
        said = await desk.playbook_click(verb, proposal_id, found[1])
        await desk.audit(
            found[0].tenant,
            "console_playbook_click",
            f"{verb} of proposal {proposal_id} on the console by {found[1]}: {said}",
            incident_id,
        )
        outcome = said.rpartition(": ")[2] if not said.startswith("refused") else "refused"
        return back(incident_id, "playbook-" + (outcome if outcome in CLICK_OUTCOMES else "told"))
