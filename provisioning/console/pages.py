"""The console's pages and actions: server-rendered HTML over the same store functions
the `/v1` routes call (one place for each decision), no JavaScript needed.

Every page needs a live console session (`signin`); every action is a POST carrying the
session's CSRF token, from our own origin, and needs the scope its `/v1` route needs.
A page shows only the actions the key's scopes allow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from provisioning.api.deps import ServicesDep, client_address
from provisioning.console import overview, signin
from provisioning.console.signin import COOKIE, IDLE, Signed
from provisioning.errors import ProvisioningError
from provisioning.models.devices import DeviceUpdate
from provisioning.services import Services
from provisioning.store import audit, devices, keys, revocations

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["isotime"] = lambda at: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
DONE = frozenset({"disabled", "enabled", "revoked"})  # what a redirect after an action says
PAGE_SIZE = 50

# Our pages load scripts, styles and images from our own origin only, are never framed,
# and post forms only to us.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null" on our own forms
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class ConsoleError(Exception):
    """Answered with the console's error page (HTML), not problem+json."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SignInRequired(Exception):
    """No live console session: pages redirect to the sign-in form."""


def render(
    request: Request, template: str, status: int = 200, signed: Signed | None = None, **context: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, template, {"signed": signed, **context}, status_code=status
    )
    response.headers.update(HEADERS)
    return response


def _redirect(to: str) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.headers.update(HEADERS)
    return response


def signed_in(request: Request, services: ServicesDep) -> Signed:
    with services.transaction() as session:
        signed = signin.resume(
            session=session, cookie=request.cookies.get(COOKIE), now=services.now()
        )
    if signed is None:
        raise SignInRequired
    return signed


SignedIn = Annotated[Signed, Depends(signed_in)]


def _same_origin(request: Request) -> bool:
    """A browser names the page a request comes from (`Origin`, `Sec-Fetch-Site`); a
    request another site makes us do is refused whatever it carries."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def acting(scope: str | None) -> Any:
    """A state-changing request: signed in, same origin, the session's CSRF token, and
    the scope the `/v1` route of this action needs (None: any operator's)."""

    def dependency(
        request: Request, signed: SignedIn, csrf_token: Annotated[str | None, Form()] = None
    ) -> Signed:
        if not _same_origin(request) or not signed.csrf_ok(csrf_token):
            raise ConsoleError(403, "Refused: this request did not come from a console page.")
        if scope is not None and not signed.may(scope):
            raise ConsoleError(403, f"Refused: this admin key lacks the scope {scope}.")
        return signed

    return Depends(dependency)


@contextmanager
def _answering() -> Iterator[None]:
    """The store's refusals (404, 409, ...) as the console's error page."""
    try:
        yield
    except ProvisioningError as exc:
        raise ConsoleError(exc.status_code, exc.detail) from exc


def install(app: Any) -> None:
    app.include_router(router)

    async def sign_in_first(request: Request, _: Exception) -> Response:
        return _redirect("/console/sign-in")

    async def error_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)  # noqa: S101
        return render(request, "error.html", exc.status, message=exc.message)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(ConsoleError, error_page)


# Sign-in and sign-out ------------------------------------------------------------------


@router.get("/sign-in")
def sign_in_form(request: Request) -> HTMLResponse:
    return render(request, "sign_in.html", idle_minutes=IDLE // 60)


@router.post("/sign-in")
def sign_in(
    request: Request, services: ServicesDep, key: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    address = client_address(request)
    limited = ("console", address)
    if not _same_origin(request):
        raise ConsoleError(403, "Refused: sign in from the console's own page.")
    if services.limiter.retry_after(limited):
        return render(request, "sign_in.html", 429, error="Too many failed sign-ins: wait.")
    try:
        with services.transaction() as session:
            opened = signin.sign_in(
                session=session, key=key.strip(), now=services.now(), address=address
            )
    except ProvisioningError as exc:
        services.limiter.failed(limited)
        with services.transaction() as session:
            audit.record(
                session=session,
                now=services.now(),
                action="console.sign_in",
                outcome="refused",
                address=address,
                reason=exc.detail,
            )
        return render(request, "sign_in.html", exc.status_code, error=exc.detail)
    response = _redirect("/console")
    response.set_cookie(
        COOKIE,
        opened.cookie,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.post("/sign-out")
def sign_out(
    request: Request,
    services: ServicesDep,
    _: Annotated[Signed, acting(None)],
) -> Response:
    with services.transaction() as session:
        signin.sign_out(session=session, cookie=request.cookies.get(COOKIE), now=services.now())
    response = _redirect("/console/sign-in")
    response.delete_cookie(COOKIE, path="/console")
    return response


# Pages ---------------------------------------------------------------------------------


@router.get("")
def overview_page(request: Request, services: ServicesDep, signed: SignedIn) -> HTMLResponse:
    with services.transaction() as session:
        seen = overview.read(
            session=session, now=services.now(), audit_read=signed.may("audit:read")
        )
    return render(request, "overview.html", signed=signed, seen=seen, is_attack=overview.is_attack)


@router.get("/devices")
def devices_page(
    request: Request,
    services: ServicesDep,
    signed: SignedIn,
    prefix: Annotated[str, Query(max_length=128)] = "",
    fleet: Annotated[str, Query(max_length=128)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    _need(signed, "devices:read")
    with services.transaction() as session, _answering():
        rows, next_cursor = devices.list_devices(
            session=session,
            fleet=fleet or None,
            status=status or None,
            prefix=prefix or None,
            cursor=cursor or None,
            limit=PAGE_SIZE,
        )
    query = {"prefix": prefix, "fleet": fleet, "status": status}
    more = None
    if next_cursor:
        more = "?" + "&".join(
            f"{k}={quote(v)}" for k, v in {**query, "cursor": next_cursor}.items()
        )
    return render(request, "devices.html", signed=signed, rows=rows, query=query, more=more)


@router.get("/devices/{device_id}")
def device_page(
    request: Request, services: ServicesDep, signed: SignedIn, device_id: str, done: str = ""
) -> HTMLResponse:
    _need(signed, "devices:read")
    with services.transaction() as session, _answering():
        device = devices.get_device(session=session, device_id=device_id)
        public = devices.to_public(session=session, device=device)
        signing = keys.signing_versions(session=session, device_id=device_id)
        events = (
            audit.latest(session=session, device_id=device_id, limit=20)
            if signed.may("audit:read")
            else None
        )
    return render(
        request,
        "device.html",
        signed=signed,
        device=public,
        signing=signing,
        events=events,
        done=done if done in DONE else "",
    )


def _need(signed: Signed, scope: str) -> None:
    if not signed.may(scope):
        raise ConsoleError(403, f"This admin key lacks the scope {scope}.")


# Actions -------------------------------------------------------------------------------


def _back(device_id: str, done: str) -> RedirectResponse:
    return _redirect(f"/console/devices/{quote(device_id, safe='')}?done={done}")


# What each destructive action does, said on its confirmation page before it is done.
CONSEQUENCES = {
    "disable": (
        "Disable",
        "Its live MQTT sessions are cut within a second and it gets no token until it "
        "is enabled again.",
    ),
    "revoke": (
        "Revoke",
        "Every access and refresh token of the device dies, its live MQTT sessions are "
        "cut within a second, and it stays revoked: it can never get a token again.",
    ),
}
Confirmed = Annotated[str, Form(max_length=8)]


def _unconfirmed(request: Request, signed: Signed, name: str, device_id: str) -> HTMLResponse:
    label, consequence = CONSEQUENCES[name]
    return render(
        request,
        "confirm.html",
        signed=signed,
        name=name,
        label=label,
        consequence=consequence,
        device_id=device_id,
    )


def _set_status(services: Services, device_id: str, status: str, actor: str) -> None:
    with services.transaction() as session, _answering():
        devices.update_device(
            session=session,
            device_id=device_id,
            device_update=DeviceUpdate.model_validate({"status": status}),
            now=services.now(),
            actor=actor,
            max_metadata_bytes=services.settings.max_metadata_bytes,
        )


@router.post("/devices/{device_id}/disable")
def disable(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("devices:write")],
    confirmed: Confirmed = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "disable", device_id)
    _set_status(services, device_id, "disabled", signed.admin.id)
    return _back(device_id, "disabled")


@router.post("/devices/{device_id}/enable")
def enable(
    device_id: str, services: ServicesDep, signed: Annotated[Signed, acting("devices:write")]
) -> Response:
    _set_status(services, device_id, "active", signed.admin.id)
    return _back(device_id, "enabled")


@router.post("/devices/{device_id}/revoke")
def revoke(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("tokens:revoke")],
    confirmed: Confirmed = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "revoke", device_id)
    with services.transaction() as session, _answering():
        device = devices.get_device(session=session, device_id=device_id)
        revocations.revoke_device(
            session=session, device=device, now=services.now(), actor=signed.admin.id
        )
    return _back(device_id, "revoked")
