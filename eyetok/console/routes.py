"""The console's blueprint: the dashboard, the sign-in, the stylesheet, and the incident
pages when ``FLAG_CONSOLE_INCIDENTS`` is on."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from quart import Blueprint, Response
from quart_trio import QuartTrio

from eyetok.clock import Clock
from eyetok.console.access import Access
from eyetok.console.badges import badge_css
from eyetok.console.dashboard import add_dashboard
from eyetok.console.desk import ConsoleDesk
from eyetok.console.incidents import add_incident_pages
from eyetok.console.session import Sessions

STYLESHEET = Path(__file__).parent / "static" / "console.css"


@cache
def stylesheet() -> bytes:
    """The one stylesheet: the layout, then the badge rules from the colour table."""
    return (
        STYLESHEET.read_text()
        + "\n/* severity badges (eyetok/console/badges.py) */\n"
        + badge_css()
    ).encode()


def add_console(
    app: QuartTrio,
    desk: ConsoleDesk,
    clock: Clock,
    *,
    root_token: str | None,
    incidents_on: bool,
    operator_tenant: str,
) -> None:
    blueprint = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
    access = Access(desk, Sessions(root_token), root_token)
    access.add_routes(blueprint)

    @blueprint.get("/console.css")
    async def console_css() -> Response:
        return Response(
            stylesheet(),
            content_type="text/css; charset=utf-8",
            headers={"cache-control": "max-age=300"},
        )

    @blueprint.after_request
    async def framed_nowhere(response: Response) -> Response:
        # its buttons acknowledge incidents: no page of the console may be framed
        # (clickjacking), and no console URL leaks to another site in a Referer
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = "frame-ancestors 'none'"
        response.headers["referrer-policy"] = "same-origin"
        return response

    add_dashboard(blueprint, access, clock, operator_tenant=operator_tenant)
    if incidents_on:
        add_incident_pages(blueprint, access, clock)
    app.register_blueprint(blueprint)
