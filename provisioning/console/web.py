"""What every console page shares: the router, rendering with the security headers,
the signed-in dependency, and the checks of a state-changing request.

Pages are server-rendered HTML over the same store functions the `/v1` routes call (one
place for each decision). Every page needs a live console session (`signin`); every
action is a POST carrying the session's CSRF token, from our own origin, and needs the
scope its `/v1` route needs. A page shows only the actions the key's scopes allow.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from provisioning.api.deps import ServicesDep
from provisioning.console import signin
from provisioning.console.signin import COOKIE, Signed
from provisioning.errors import ProvisioningError

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["isotime"] = lambda at: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
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


def redirect(to: str) -> RedirectResponse:
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


def same_origin(request: Request) -> bool:
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
        if not same_origin(request) or not signed.csrf_ok(csrf_token):
            raise ConsoleError(403, "Refused: this request did not come from a console page.")
        if scope is not None and not signed.may(scope):
            raise ConsoleError(403, f"Refused: this admin key lacks the scope {scope}.")
        return signed

    return Depends(dependency)


@contextmanager
def answering() -> Iterator[None]:
    """The store's refusals (404, 409, ...) as the console's error page."""
    try:
        yield
    except ProvisioningError as exc:
        raise ConsoleError(exc.status_code, exc.detail) from exc


def need(signed: Signed, scope: str) -> None:
    """A page that shows what only `scope` may read."""
    if not signed.may(scope):
        raise ConsoleError(403, f"This admin key lacks the scope {scope}.")


def install(app: Any) -> None:
    app.include_router(router)

    async def sign_in_first(request: Request, _: Exception) -> Response:
        return redirect("/console/sign-in")

    async def error_page(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleError)  # noqa: S101
        return render(request, "error.html", exc.status, message=exc.message)

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(ConsoleError, error_page)
