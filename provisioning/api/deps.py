"""Route dependencies: the application's services and admin authentication."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from cryptography import x509
from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from credbroker import certificates
from provisioning.services import Services
from provisioning.store import admin
from provisioning.store.admin import Admin


async def get_services(request: Request) -> Services:
    """`async`: FastAPI runs a plain `def` dependency on the thread pool, a hop per request."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
Check = Callable[[Request], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])


def require(scope: str) -> Callable[..., Admin]:
    def dependency(
        services: ServicesDep, authorization: Annotated[str | None, Header()] = None
    ) -> Admin:
        with services.transaction() as session:
            return admin.authenticate(
                session=session,
                authorization=authorization,
                scopes=(scope,),
                now=services.now(),
            )

    async def check(request: Request) -> None:
        services = await get_services(request)
        await run_in_threadpool(dependency, services, request.headers.get("authorization"))

    return checked_first(dependency, check)


def checked_first(dependency: F, check: Check) -> F:
    """Mark an authenticating dependency with the check `authenticate_first` runs."""
    dependency.check_first = check  # type: ignore[attr-defined]
    return dependency


async def authenticate_first(request: Request) -> None:
    """Run the authentication checks of the route `request` matched (raising its 401 or
    403), as its dependencies would have.

    FastAPI decodes a JSON body before it solves a route's dependencies, so a malformed
    body would be answered 422 before the key is looked at: an anonymous caller would
    learn what the endpoint takes. The validation error handler calls this first."""
    route = request.scope.get("route")
    pending = list(route.dependant.dependencies) if isinstance(route, APIRoute) else []
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        check = getattr(dependant.call, "check_first", None)
        if check is not None:
            await check(request)


DevicesRead = Annotated[Admin, Depends(require("devices:read"))]
DevicesWrite = Annotated[Admin, Depends(require("devices:write"))]
TokensRevoke = Annotated[Admin, Depends(require("tokens:revoke"))]
AuditRead = Annotated[Admin, Depends(require("audit:read"))]
BrokerHook = Annotated[Admin, Depends(require("broker:hook"))]


def client_address(request: Request) -> str:
    """The peer's address as this process sees it ("unknown" without one, as over some
    ASGI test transports). No proxy headers are trusted."""
    return request.client.host if request.client else "unknown"


def client_certificate(request: Request) -> x509.Certificate | None:
    """The client certificate the TLS handshake verified (the ASGI TLS extension that
    `provisioning.httpprotocol` sets), if any. No proxy headers are trusted."""
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return certificates.load_pem(chain[0]) if chain else None
