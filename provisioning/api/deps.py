"""Route dependencies: the application's services and admin authentication."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from provisioning.services import Services
from provisioning.store import admin
from provisioning.store.admin import Admin


async def get_services(request: Request) -> Services:
    """`async`: FastAPI runs a plain `def` dependency on the thread pool, a hop per request."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require(scope: str) -> Callable[..., Admin]:
    def dependency(
        services: ServicesDep, authorization: Annotated[str | None, Header()] = None
    ) -> Admin:
        with services.transaction() as session:
            return admin.authenticate(session=session, authorization=authorization, scopes=(scope,))

    return dependency


DevicesRead = Annotated[Admin, Depends(require("devices:read"))]
DevicesWrite = Annotated[Admin, Depends(require("devices:write"))]
TokensRevoke = Annotated[Admin, Depends(require("tokens:revoke"))]
AuditRead = Annotated[Admin, Depends(require("audit:read"))]
BrokerHook = Annotated[Admin, Depends(require("broker:hook"))]


def client_address(request: Request) -> str:
    """The peer's address as this process sees it ("unknown" without one, as over some
    ASGI test transports). No proxy headers are trusted."""
    return request.client.host if request.client else "unknown"
