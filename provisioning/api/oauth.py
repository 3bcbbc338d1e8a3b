"""OAuth endpoints: token (RFC 6749), revocation (RFC 7009), introspection (RFC 7662).

Errors are RFC 6749 section 5.2 JSON; a 401 carries `WWW-Authenticate` with the scheme
the client tried if the endpoint takes it (section 5.2), else the one it takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from provisioning import grants, introspection
from provisioning.api.deps import ServicesDep, client_address, client_certificate
from provisioning.api.direct import DirectRoute, MalformedForm, header, read_form
from provisioning.errors import (
    Forbidden,
    InsufficientScope,
    InvalidClient,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    Unauthorized,
    challenge,
)
from provisioning.http import NO_STORE
from provisioning.services import Services
from provisioning.store import admin

router = APIRouter(tags=["oauth"])
MAX_FIELDS = 16
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 section 2.2
TEXT: dict[str, Any] = {"type": "string"}
CLIENT_AUTH = {  # RFC 6749 section 2.3.1 (HTTP Basic goes in `Authorization`), RFC 7523
    "client_id": TEXT,
    "client_secret": TEXT,
    "client_assertion_type": {"type": "string", "enum": [JWT_BEARER]},
    "client_assertion": TEXT,
}


def _form(*required: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` for a form read by hand (RFC 6749 section 3.2: one value each;
    parameters the endpoint does not know are ignored, section 3.1)."""
    schema = {"type": "object", "properties": fields, "required": list(required)}
    content = {"application/x-www-form-urlencoded": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


class TokenResponse(BaseModel):
    """RFC 6749 section 5.1."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str


class IntrospectionResponse(BaseModel):
    """RFC 7662 section 2.2: `active`, and the token's claims when it is."""

    model_config = ConfigDict(extra="allow")

    active: bool


def _answer(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model}}


async def _read_form(request: Request) -> dict[str, str]:
    """The form, with single-valued fields only (RFC 6749 section 3.2)."""
    try:
        return await read_form(request, MAX_FIELDS)
    except MalformedForm as exc:
        raise InvalidRequest(str(exc)) from exc


@contextmanager
def _challenged(authorization: str | None, *schemes: str) -> Iterator[None]:
    """RFC 6749 section 5.2 (and RFC 9110 section 15.5.2): every 401 says how to
    authenticate."""
    try:
        yield
    except OAuthError as exc:
        if exc.status_code == 401:
            exc.headers.setdefault("WWW-Authenticate", challenge(authorization, schemes))
        raise


async def token(request: Request) -> Response:
    """Trade a client assertion, client secret or refresh token for tokens."""
    services: Services = request.app.state.services
    authorization = request.headers.get("authorization")
    form = await _read_form(request)
    address = client_address(request)
    with _challenged(authorization, "Basic"):
        user_agent = request.headers.get("user-agent")
        certificate = client_certificate(request)
        proofs = request.headers.getlist("dpop")
        work = partial(
            grants.token, services, form, authorization, address, user_agent, certificate, proofs
        )
        if "client_secret" in form or authorization:  # argon2, ~50 ms: a thread
            issued = await run_in_threadpool(work)
        else:
            issued = await services.grant(work)
    return JSONResponse(issued.response(), headers=NO_STORE)


# The hot path: a direct route (no dependencies to solve, the form read by hand).
router.add_api_route(
    "/oauth2/token",
    token,
    methods=["POST"],
    route_class_override=DirectRoute,
    responses=_answer(TokenResponse),
    openapi_extra={
        **_form(
            "grant_type",
            grant_type={"type": "string", "enum": list(grants.GRANTS)},
            refresh_token=TEXT,
            scope=TEXT,
            **CLIENT_AUTH,
        ),
        "parameters": [
            header("authorization", "HTTP Basic client authentication"),
            header(
                "dpop",
                "A DPoP proof (RFC 9449 section 4), optional: a refresh token granted with one"
                " is bound to its key and needs a proof by that key at each refresh. A bad"
                " proof is 400 invalid_dpop_proof; a bound refresh without a proof by its key"
                " is 400 invalid_grant.",
            ),
        ],
    },
)


def _admin_for(services: Services, authorization: str | None, *scopes: str) -> admin.Admin:
    """An admin key, which is a bearer token here: RFC 7662 section 2.3 answers a bad or
    underprivileged one as RFC 6750 section 3 does, with 401 (not problem+json)."""
    try:
        with services.transaction() as session:
            return admin.authenticate(
                session=session, authorization=authorization, scopes=scopes, now=services.now()
            )
    except Forbidden as exc:
        raise InsufficientScope(exc.detail) from exc
    except Unauthorized as exc:
        if (authorization or "").partition(" ")[0].lower() == "bearer":
            raise InvalidToken(exc.detail) from exc
        raise InvalidClient(exc.detail) from exc  # none sent, or another scheme


@router.post(
    "/oauth2/introspect",
    responses=_answer(IntrospectionResponse),
    openapi_extra=_form("token", token=TEXT, token_type_hint=TEXT),
)
async def introspect(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """RFC 7662: is this token active, and what does it say? Needs a `broker:hook` or
    `devices:read` admin key."""
    with _challenged(authorization, "Bearer"):
        _admin_for(services, authorization, "broker:hook", "devices:read")
    form = await _read_form(request)
    if not form.get("token"):
        raise InvalidRequest("token is required")
    body = await run_in_threadpool(introspection.introspect, services, form["token"])
    return JSONResponse(body, headers=NO_STORE)


@router.post(
    "/oauth2/revoke",
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}},
    openapi_extra=_form("token", token=TEXT, token_type_hint=TEXT, **CLIENT_AUTH),
)
async def revoke(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """RFC 7009: revoke an access or refresh token. Client authentication as at the token
    endpoint (then only the client's own tokens), an admin key with `tokens:revoke`
    (any token), or nothing: holding the token is enough."""
    form = await _read_form(request)
    with _challenged(authorization, "Basic", "Bearer"):
        if (authorization or "").partition(" ")[0].lower() == "bearer":
            actor = _admin_for(services, authorization, "tokens:revoke").id
            if not form.get("token"):
                raise InvalidRequest("token is required")
            await run_in_threadpool(introspection.revoke, services, form["token"], actor=actor)
        else:
            await run_in_threadpool(
                introspection.revoke_request,
                services,
                form,
                authorization,
                client_address(request),
                client_certificate(request),
            )
    return JSONResponse({}, headers=NO_STORE)
