"""What every hook shares: the `broker:hook` key (or a trusted network) and the
authority that decides."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, Any, TypeVar

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
    """A `broker:hook` key; accepted keys are remembered for a few seconds, since every
    publish check would otherwise cost a database transaction (revoking a hook key takes
    effect within `KEY_TTL`)."""
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
    await run_in_threadpool(_check_key, services, bearer)
    services.hooks.remember_key(authorization or "")


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


def _check_key(services: Services, bearer: str | None) -> None:
    with services.transaction() as session:
        admin.authenticate(session=session, authorization=bearer, scopes=("broker:hook",))


async def _authority(services: ServicesDep, _: Annotated[None, Depends(hook_key)]) -> HookAuthority:
    """Through `hook_key` (solved once a request, with the router's) so that the route's
    own dependencies name it, for `authenticate_first`."""
    return services.hooks


Authority = Annotated[HookAuthority, Depends(_authority)]
Connect = Callable[..., Awaitable[Grant | Refusal]]


async def _connector(authority: Authority, services: ServicesDep) -> Connect:
    """`HookAuthority.connect`, run where the database wants it: on the embedded database
    on the loop in a batch of grants (`groupcommit`: it verifies, then saves the grant
    the other API processes share), elsewhere on the thread pool."""

    async def connect(**login: Any) -> Grant | Refusal:
        work = partial(authority.connect, **login)
        if services.local_database:
            return await services.commits.run(work)
        return await run_in_threadpool(work)

    return connect


Connector = Annotated[Connect, Depends(_connector)]
# Publish and subscribe hooks are dictionary lookups, on the loop (a cache miss reads
# one row, rare: once per client id and process).


class Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")  # brokers send more than we read


B = TypeVar("B", bound=Loose)
Check = Callable[[B, HookAuthority], Response]


def per_message(
    router: APIRouter, path: str, model: type[B], *, form: bool = False
) -> Callable[[Check[B]], Check[B]]:
    """Register `check(body, authority)` as the hook a broker calls for every publish or
    delivery: a direct route (`provisioning.api.direct`), its key checked and its body
    read into `model` here, for what FastAPI's dependencies and body parsing cost was
    four fifths of such a request."""

    def register(check: Check[B]) -> Check[B]:
        async def endpoint(request: Request) -> Response:
            services: Services = request.app.state.services
            await hook_key(services, request, request.headers.get("authorization"))
            return check(await read_body(request, model, form=form), services.hooks)

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
