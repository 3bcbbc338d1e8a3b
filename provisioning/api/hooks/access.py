"""What every hook shares: the `broker:hook` key (or a trusted network) and the
authority that decides."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from credbroker.decision import Grant, Refusal
from provisioning import clientauth
from provisioning.api.deps import ServicesDep, checked_first, client_address, get_services
from provisioning.api.direct import DirectRoute, body_schema, read_body
from provisioning.brokerhooks import HookAuthority
from provisioning.errors import InvalidClient
from provisioning.services import Services
from provisioning.store import admin


async def hook_key(
    services: ServicesDep,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """A `broker:hook` key; accepted keys are remembered for a few seconds (`KEY_TTL`,
    never past the key's expiry), since every publish check would otherwise cost a
    database transaction. A revoked key is forgotten at once in the process that revoked
    it, and within a second elsewhere (`forget_revoked_keys`, read with the revocation
    log)."""
    if authorization and services.hooks.known_key(authorization):
        return
    if not authorization and _trusted(services, request):
        return  # a broker on a network the operator trusts (CREDBROKER_HOOKS_TRUSTED_NETWORKS)
    bearer = authorization
    if (authorization or "").partition(" ")[0].lower() == "basic":
        try:
            bearer = f"Bearer {clientauth.basic(authorization or '')[1]}"
        except InvalidClient:
            bearer = "Bearer "  # malformed: refused below like any wrong key
    key = await run_in_threadpool(_check_key, services, bearer)
    services.hooks.remember_key(authorization or "", expires_at=key.expires_at)


async def _check_hook_key(request: Request) -> None:
    await hook_key(await get_services(request), request, request.headers.get("authorization"))


checked_first(hook_key, _check_hook_key)


def _trusted(services: Services, request: Request) -> bool:
    networks = services.settings.trusted_hook_networks
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:  # "unknown"
        return False
    return any(address in network for network in networks)


def _check_key(services: Services, bearer: str | None) -> admin.Admin:
    with services.transaction() as session:
        return admin.authenticate(
            session=session, authorization=bearer, scopes=("broker:hook",), now=services.now()
        )


async def _authority(services: ServicesDep, _: Annotated[None, Depends(hook_key)]) -> HookAuthority:
    """Through `hook_key` (solved once a request, with the router's) so that the route's
    own dependencies name it, for `authenticate_first`."""
    return services.hooks


Authority = Annotated[HookAuthority, Depends(_authority)]


async def connect(
    services: Services, *, client_id: str, username: str, password: str, address: str | None
) -> Grant | Refusal:
    """Decide a CONNECT (`HookAuthority.connect`) where the database wants it."""
    decide = partial(
        services.hooks.connect,
        client_id=client_id,
        username=username,
        password=password,
        address=address,
    )
    return await services.grant(decide)


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")  # brokers send more than we read


B = TypeVar("B", bound=Loose)
Check = Callable[[B, Services], Awaitable[Response]]


def hook(
    router: APIRouter, path: str, model: type[B], *, form: bool = False
) -> Callable[[Check[B]], Check[B]]:
    """Register `check(body, services)` as a hook on the hot path (CONNECT, and every
    publish or delivery): a direct route (`provisioning.api.direct`), its key checked
    and its body read into `model` here; FastAPI's dependencies and body parsing were
    four fifths of a cached publish check. A CONNECT's decision runs through
    `Services.grant` (verification, then the grant the API processes share)."""

    def register(check: Check[B]) -> Check[B]:
        async def endpoint(request: Request) -> Response:
            services: Services = request.app.state.services
            await hook_key(services, request, request.headers.get("authorization"))
            return await check(await read_body(request, model, form=form), services)

        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            route_class_override=DirectRoute,
            name=check.__name__,
            description=check.__doc__ or "",
            openapi_extra=body_schema(model, form=form),
        )
        return check

    return register
