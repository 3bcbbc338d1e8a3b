"""Sign-in, the overview, the devices and a device's page with its actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from provisioning.api.deps import ServicesDep, client_address
from provisioning.console import overview, signin
from provisioning.console.signin import COOKIE, IDLE, Signed
from provisioning.console.web import (
    PAGE_SIZE,
    ConsoleError,
    SignedIn,
    acting,
    answering,
    need,
    redirect,
    render,
    router,
    same_origin,
)
from provisioning.errors import ProvisioningError
from provisioning.models.devices import DeviceUpdate
from provisioning.services import Services
from provisioning.store import audit, devices, keys, revocations, sessions

# What a redirect after an action says it did.
DONE = frozenset(
    {"disabled", "enabled", "revoked", "rotated", "key removed", "logged out", "session ended"}
)

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
    if not same_origin(request):
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
    response = redirect("/console")
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
    response = redirect("/console/sign-in")
    response.delete_cookie(COOKIE, path="/console")
    return response


# Pages ---------------------------------------------------------------------------------


@router.get("")
def overview_page(request: Request, services: ServicesDep, signed: SignedIn) -> HTMLResponse:
    with services.transaction() as session:
        seen = overview.read(
            session=session,
            now=services.now(),
            audit_read=signed.may("audit:read"),
            traffic=services.traffic,
            minutes=services.minutes,
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
    need(signed, "devices:read")
    with services.transaction() as session, answering():
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
    need(signed, "devices:read")
    connections = services.connections(device_id)
    with services.transaction() as session, answering():
        device = devices.get_device(session=session, device_id=device_id)
        public = devices.to_public(session=session, device=device)
        signing = keys.signing_versions(session=session, device_id=device_id)
        live = sessions.list_sessions(
            session=session, device=device, connections=connections, now=services.now()
        )
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
        sessions=live,
        events=events,
        done=done if done in DONE else "",
    )


# Actions -------------------------------------------------------------------------------


def _back(device_id: str, done: str) -> RedirectResponse:
    return redirect(f"/console/devices/{quote(device_id, safe='')}?done={done}")


def _done(
    services: Services,
    signed: Signed,
    device_id: str,
    done: str,
    act: Callable[..., object],
    **args: Any,
) -> RedirectResponse:
    """`act` (a store function) on the device, by the signed-in key, in one transaction
    (the store's refusals as the error page); then back to the device's page, saying
    what was `done`."""
    with services.transaction() as session, answering():
        act(
            session=session,
            device=devices.get_device(session=session, device_id=device_id),
            now=services.now(),
            actor=signed.admin.id,
            **args,
        )
    return _back(device_id, done)


# What each destructive action does, said on its confirmation page before it is done.
CONSEQUENCES = {
    "disable": (
        "Disable",
        "Its live MQTT sessions are cut within a second and it gets no token until it "
        "is enabled again.",
    ),
    "rotate": (
        "Rotate the signing key of",
        'A new signing key version signs its tokens from now on. With "at once", tokens '
        "the old version signed stop working now and its live sessions are cut; without, "
        "they work until they expire.",
    ),
    "remove-key": (
        "Remove a credential key of",
        "The device can no longer prove itself with this key; tokens it already has live "
        "until they expire.",
    ),
    "logout": (
        "Log out everywhere",
        "Every access and refresh token of the device dies and its live MQTT sessions are "
        "cut within a second; the device stays active and may get new tokens at once.",
    ),
    "end-session": (
        "End a session of",
        "The session's refresh and access tokens die and its live MQTT connections are cut "
        "within a second; the device's other sessions go on.",
    ),
    "revoke": (
        "Revoke",
        "Every access and refresh token of the device dies, its live MQTT sessions are "
        "cut within a second, and it stays revoked: it can never get a token again.",
    ),
}
Confirmed = Annotated[str, Form(max_length=8)]


def _unconfirmed(
    request: Request, signed: Signed, name: str, device_id: str, **fields: str
) -> HTMLResponse:
    """The confirmation page: what the action will do, and a form posting it again with
    `confirmed=yes` and the same `fields`."""
    label, consequence = CONSEQUENCES[name]
    return render(
        request,
        "confirm.html",
        signed=signed,
        name=name,
        label=label,
        consequence=consequence,
        device_id=device_id,
        fields=fields,
    )


def _set_status(services: Services, device_id: str, status: str, actor: str) -> None:
    with services.transaction() as session, answering():
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
    return _done(services, signed, device_id, "revoked", revocations.revoke_device)


@router.post("/devices/{device_id}/rotate")
def rotate(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("devices:write")],
    confirmed: Confirmed = "",
    immediate: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "rotate", device_id, immediate=immediate)
    return _done(
        services,
        signed,
        device_id,
        "rotated",
        keys.rotate_signing_key,
        keyring=services.keyring,
        leeway=services.settings.leeway,
        immediate=immediate == "yes",
    )


@router.post("/devices/{device_id}/remove-key")
def remove_key(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("devices:write")],
    kid: Annotated[str, Form(max_length=200)],
    confirmed: Confirmed = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "remove-key", device_id, kid=kid)
    return _done(services, signed, device_id, "key removed", keys.remove_key, kid=kid)


@router.post("/devices/{device_id}/logout")
def logout(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("tokens:revoke")],
    confirmed: Confirmed = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "logout", device_id)
    return _done(services, signed, device_id, "logged out", sessions.logout_device)


@router.post("/devices/{device_id}/end-session")
def end_session(
    request: Request,
    device_id: str,
    services: ServicesDep,
    signed: Annotated[Signed, acting("tokens:revoke")],
    family: Annotated[str, Form(max_length=200)],
    confirmed: Confirmed = "",
) -> Response:
    if confirmed != "yes":
        return _unconfirmed(request, signed, "end-session", device_id, family=family)
    return _done(
        services, signed, device_id, "session ended", sessions.end_family, family_id=family
    )
