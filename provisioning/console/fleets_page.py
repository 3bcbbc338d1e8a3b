"""Fleets: the list, and a fleet's page with its ACL and token settings, edited through
the same validation as `PATCH /v1/fleets/{name}`; its errors are shown by their fields."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import pydantic
from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from provisioning.api.deps import ServicesDep
from provisioning.console.signin import Signed
from provisioning.console.web import (
    PAGE_SIZE,
    SignedIn,
    acting,
    answering,
    need,
    redirect,
    render,
    router,
)
from provisioning.models.fleets import FleetPublic, FleetUpdate
from provisioning.store import fleets


@router.get("/fleets")
def fleets_page(
    request: Request,
    services: ServicesDep,
    signed: SignedIn,
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    need(signed, "devices:read")
    with services.transaction() as session, answering():
        rows, more = fleets.list_fleets(session=session, cursor=cursor or None, limit=PAGE_SIZE)
        items = [row.public() for row in rows]
    return render(request, "fleets.html", signed=signed, fleets=items, more=more)


def _fleet(services: ServicesDep, name: str) -> FleetPublic:
    with services.transaction() as session, answering():
        return fleets.get_fleet(session=session, name=name).public()


@router.get("/fleets/{name}")
def fleet_page(
    request: Request, services: ServicesDep, signed: SignedIn, name: str, done: str = ""
) -> HTMLResponse:
    need(signed, "devices:read")
    fleet = _fleet(services, name)
    form = {
        "publish": "\n".join(fleet.acl.publish),
        "subscribe": "\n".join(fleet.acl.subscribe),
        "token_ttl": str(fleet.token_ttl),
        "allow_client_secret": fleet.allow_client_secret,
    }
    return render(
        request,
        "fleet.html",
        signed=signed,
        fleet=fleet,
        form=form,
        errors={},
        saved=done == "saved",
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _field_errors(error: pydantic.ValidationError) -> dict[str, str]:
    """Each message under the form field it is about (`acl.publish` -> `publish`)."""
    errors: dict[str, str] = {}
    for item in error.errors():
        location = [str(part) for part in item["loc"] if not isinstance(part, int)]
        field = location[-1] if location else "form"
        errors.setdefault(field, item["msg"].removeprefix("Value error, "))
    return errors


@router.post("/fleets/{name}")
def update_fleet(
    request: Request,
    services: ServicesDep,
    name: str,
    signed: Annotated[Signed, acting("devices:write")],
    publish: Annotated[str, Form(max_length=40_000)] = "",
    subscribe: Annotated[str, Form(max_length=40_000)] = "",
    token_ttl: Annotated[str, Form(max_length=12)] = "",
    allow_client_secret: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    checked = allow_client_secret == "on"  # noqa: S105 - an HTML checkbox, sent when ticked
    form: dict[str, Any] = {
        "publish": publish,
        "subscribe": subscribe,
        "token_ttl": token_ttl,
        "allow_client_secret": checked,
    }
    errors: dict[str, str] = {}
    body = None
    try:
        ttl: int | None = int(token_ttl.strip())
    except ValueError:
        ttl = None
    try:
        body = FleetUpdate.model_validate(
            {
                "acl": {"publish": _lines(publish), "subscribe": _lines(subscribe)},
                "token_ttl": ttl,
                "allow_client_secret": checked,
            }
        )
    except pydantic.ValidationError as exc:
        errors = _field_errors(exc)
    if ttl is None:
        body, errors["token_ttl"] = None, "a whole number of seconds"
    if body is None:
        fleet = _fleet(services, name)
        return render(
            request,
            "fleet.html",
            422,
            signed=signed,
            fleet=fleet,
            form=form,
            errors=errors,
            saved=False,
        )
    with services.transaction() as session, answering():
        fleets.update_fleet(
            session=session, name=name, fleet_update=body, now=services.now(), actor=signed.admin.id
        )
    return redirect(f"/console/fleets/{quote(name, safe='')}?done=saved")
