"""Signing in and out of the console, and the checks every page and form makes.

Sign-in takes a name and a token: the root token signs in the operator (every tenant,
the dashboard); a tenant token signs in that tenant's person (its own incidents only);
a person's token (``POST /api/v1/people/<id>/tokens``) signs in that person, who then acts
with the roles bound to their Slack user id. The tenants actor judges a tenant token, the
people actor a person's token. Every write is authorised by the people actor
(:func:`eyetok.access.authorise`, as the API's are): a refusal is a 403 page naming the
role it needs; outside open mode the root token's session is refused tenant-scoped writes
(acknowledging, resolving, approving), as the API refuses the root token. A sign-in is
audited; a refused one is logged. A form's CSRF token is the session's; the sign-in
form's is a short-lived cookie of its own (double submit), as there is no session yet."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from quart import Blueprint, Response, redirect, render_template, request

from eyetok import log
from eyetok.access import Action
from eyetok.console.desk import ConsoleDesk
from eyetok.console.session import COOKIE, MAX_AGE_S, Session, Sessions, csrf_matches

LOGIN_CSRF_COOKIE = "eyetok_console_login"
MAX_NAME = 80


def over_https() -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        secure=over_https(),
        samesite="Lax",
    )


async def error_page(status: int, message: str) -> Response:
    body = await render_template("error.html", status=status, message=message, session=None)
    return Response(body, status=status, content_type="text/html; charset=utf-8")


def _safe_next(target: str | None) -> str:
    """Only a console path is a place to go back to after signing in."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


class Access:
    def __init__(self, desk: ConsoleDesk, sessions: Sessions, root_token: str | None) -> None:
        self.desk = desk
        self.sessions = sessions
        self._root_token = root_token
        self._log = log.get("console")

    def session(self) -> Session | None:
        return self.sessions.read(request.cookies.get(COOKIE))

    def to_login(self) -> Response:
        path = request.full_path.rstrip("?")
        return redirect(f"/console/login?next={quote(path, safe='')}")  # type: ignore[return-value]

    async def form_of(self, session: Session) -> dict[str, str] | Response:
        """The posted form, once its CSRF token is the session's (else a 403 page)."""
        form = await request.form
        if not csrf_matches(session, form.get("csrf")):
            return await error_page(403, "this form is stale or not from this console: reload it")
        return dict(form)

    def add_routes(self, blueprint: Blueprint) -> None:
        blueprint.add_url_rule("/login", view_func=self.login_form, methods=["GET"])
        blueprint.add_url_rule("/login", view_func=self.sign_in, methods=["POST"])
        blueprint.add_url_rule("/logout", view_func=self.sign_out, methods=["POST"])

    async def login_form(self, problem: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        body = await render_template(
            "login.html",
            csrf=token,
            next=_safe_next(request.args.get("next")),
            problem=problem,
            session=None,
        )
        response = Response(body, status=status, content_type="text/html; charset=utf-8")
        set_cookie(response, LOGIN_CSRF_COOKIE, token, 600)
        return response

    async def sign_in(self) -> Response:
        form = await request.form
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        presented = form.get("csrf", "")
        if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
            return await self.login_form("The sign-in form expired: try again.", 403)
        name = " ".join(form.get("name", "").split())[:MAX_NAME]
        token = form.get("token", "").strip()
        tenant = form.get("tenant", "").strip() or None
        if not name or not token:
            return await self.login_form("Give your name and a token.", 400)
        person = None
        if self._root_token and hmac.compare_digest(token.encode(), self._root_token.encode()):
            cookie = self.sessions.open(name, "operator", None)
            audited_tenant, standing = "operator", "operator"
        elif tenant is not None and await self.desk.tenant_signs_in(token, tenant):
            cookie = self.sessions.open(name, "tenant", tenant)
            audited_tenant, standing = tenant, f"tenant {tenant}"
        elif (person := await self.desk.person_of(token)) is not None:
            cookie = self.sessions.open(name, "person", None, person)
            audited_tenant, standing = "operator", f"person {person}"
        else:
            why = "that token is not the root token nor a person's token" + (
                f" nor a live token of tenant {tenant!r}" if tenant else ""
            )
            self._log.warning("console_sign_in_refused", name=name, tenant=tenant, reason=why)
            return await self.login_form(f"Not signed in: {why}.", 401)
        await self.desk.audit(
            audited_tenant, "console_signed_in", f"{name} signed in as {standing}", None
        )
        self._log.info("console_signed_in", name=name, standing=standing)
        response: Response = redirect(_safe_next(form.get("next")))  # type: ignore[assignment]
        set_cookie(response, COOKIE, cookie, MAX_AGE_S)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
        return response

    async def granted(
        self, session: Session, action: Action, tenant: str | None, *, what: str = ""
    ) -> str | Response:
        """The name a write of ``session`` (``what``: the page's words for it) is made and
        audited under, once the people actor grants ``action`` (on ``tenant``); else the
        403 page naming the role it needs."""
        answer = await self.desk.authorise(session.caller, action, tenant)
        if answer.status != 200:
            needed = answer.body.get("needed_role", "")
            self._log.info(
                "console_write_refused",
                who=session.who,
                action=str(action),
                tenant=tenant,
                needed_role=needed,
            )
            doing = f"{what} " if what else ""
            return await error_page(
                403, f"refused: {doing}needs the role {needed}: {answer.body.get('error', '')}"
            )
        grant = answer.body.get("grant")
        person_role = isinstance(grant, dict) and grant.get("via") in ("binding", "hat")
        return f"{answer.body['by']} on the console" if person_role else session.who

    async def sign_out(self) -> Response:
        session = self.session()
        if session is not None:
            form = await self.form_of(session)
            if isinstance(form, Response):
                return form
        response: Response = redirect("/console/login")  # type: ignore[assignment]
        response.delete_cookie(COOKIE, path="/console")
        return response


Page = Callable[..., Awaitable[Response]]
FormPage = Callable[..., Awaitable[Response]]


def signed_in(access: Access, *, operator: bool = False) -> Callable[[Page], Page]:
    """A page that needs a session (the sign-in page otherwise); ``operator``: the root
    token's (a tenant's session gets a 403 page)."""

    def wrap(page: Page) -> Page:
        async def guarded(**kwargs: str) -> Response:
            session = access.session()
            if session is None:
                return access.to_login()
            if operator and session.standing == "tenant":
                return await error_page(403, "this page is the operator's")
            if operator and session.standing == "person":  # as the API's operator paths
                reading = request.method in ("GET", "HEAD")
                grant = await access.granted(
                    session, Action.VIEW if reading else Action.OPERATE, None
                )
                if isinstance(grant, Response):
                    return grant
            return await page(session, **kwargs)

        guarded.__name__ = page.__name__
        return guarded

    return wrap


def form_posted(access: Access, *, operator: bool = False) -> Callable[[FormPage], Page]:
    """A form's target: signed in (as :func:`signed_in`), its CSRF token the session's;
    called with the session and the posted fields."""

    def wrap(page: FormPage) -> Page:
        async def checked(session: Session, **kwargs: str) -> Response:
            form = await access.form_of(session)
            if isinstance(form, Response):
                return form
            return await page(session, form, **kwargs)

        checked.__name__ = page.__name__
        return signed_in(access, operator=operator)(checked)

    return wrap
