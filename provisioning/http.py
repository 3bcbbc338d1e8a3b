"""HTTP plumbing: error rendering, request guards (size, content type), Date header.

Errors are problem+json (RFC 9457) everywhere except under `/oauth2/`, where every
error, the framework's too (404, 405, 413, 422, a malformed form), is RFC 6749 section
5.2 JSON with `Cache-Control: no-store`: OAuth clients parse nothing else.
"""

from __future__ import annotations

import email.utils
import logging
import time
from functools import lru_cache
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisioning.errors import OAuthError, ProvisioningError

log = logging.getLogger("credbroker.api")
PROBLEM = "application/problem+json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OAUTH_PREFIX = "/oauth2/"
# RFC 6749 section 5.2 has no code for a server fault; its section 4.1.2.1 has these two.
_OAUTH_SERVER_ERRORS = {503: "temporarily_unavailable"}


def oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """RFC 6749 section 5.2 error JSON, never cached (section 5.1)."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status, headers={**NO_STORE, **(headers or {})})


def _error(path: str, status: int, title: str, detail: str, error: str) -> JSONResponse:
    """The answer to an error outside our tree: RFC 6749 JSON under `/oauth2/` (every
    client error there is `invalid_request`), problem+json elsewhere."""
    if path.startswith(OAUTH_PREFIX):
        if status >= 500:
            return oauth_error(status, _OAUTH_SERVER_ERRORS.get(status, "server_error"), detail)
        return oauth_error(status, "invalid_request", detail)
    return problem(status, title, detail, error)


def problem(status: int, title: str, detail: str, error: str, **extra: Any) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "error": error,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def render(exc: ProvisioningError) -> JSONResponse:
    if isinstance(exc, OAuthError):
        return oauth_error(exc.status_code, exc.error, exc.detail, exc.headers)
    response = problem(exc.status_code, exc.title, exc.detail, exc.error, **exc.extra)
    response.headers.update(exc.headers)
    return response


def _clean(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input: it may be a key or a secret."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers (RFC 9110 section 15.5.6: a 405
    carries `Allow`). Starlette's own header names only the first route that matched the
    path, while here one path often has a route per method: ask every route, per method."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def provisioning_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProvisioningError)  # noqa: S101
        return render(exc)

    from provisioning.api.deps import authenticate_first  # the API's routes, not plumbing

    async def refused_first(request: Request) -> JSONResponse | None:
        """The route's 401 or 403, if its authentication refuses the request."""
        try:
            await authenticate_first(request)
        except ProvisioningError as refusal:
            return render(refusal)
        return None

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        detail = "the request does not match the schema"
        invalid_json = any(e.get("type") == "json_invalid" for e in exc.errors())
        if invalid_json and (refusal := await refused_first(request)):
            return refusal  # decoded before the key was checked
        if request.url.path.startswith(OAUTH_PREFIX):
            return oauth_error(422, "invalid_request", detail)
        return problem(
            422, "Invalid request body", detail, "validation_error", errors=_clean(exc.errors())
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        error = _HTTP_ERRORS.get(exc.status_code, "http_error")
        detail, headers = str(exc.detail), dict(exc.headers or {})
        if exc.status_code == 400 and (refusal := await refused_first(request)):
            return refusal  # FastAPI's 400: a body it could not decode, before the key
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
            detail = f"{request.method} is not allowed here; Allow: {headers['Allow']}"
        title = HTTPStatus(exc.status_code).phrase
        response = _error(request.url.path, exc.status_code, title, detail, error)
        response.headers.update(headers)
        return response

    async def integrity_error(request: Request, exc: Exception) -> JSONResponse:
        detail = "a concurrent request changed the same data; retry"
        return _error(request.url.path, 409, "Conflict", detail, "conflict")

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        detail = "the database cannot be reached"
        return _error(request.url.path, 503, "Unavailable", detail, "unavailable")

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware calls this, then re-raises for the server's log.
        detail = "the server failed to answer this request"
        return _error(request.url.path, 500, "Internal error", detail, "internal_error")

    app.add_exception_handler(ProvisioningError, provisioning_error)
    app.add_exception_handler(Exception, server_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(OperationalError, unavailable)


@lru_cache(maxsize=2)
def _http_date(second: int) -> bytes:
    """RFC 9110 section 5.6.7 IMF-fixdate, made once a second rather than per response."""
    return email.utils.formatdate(second, usegmt=True).encode()


FORM = b"application/x-www-form-urlencoded"
FORM_PATHS = ("/oauth2/", "/v1/hooks/rabbitmq/")  # RFC 6749; RabbitMQ's HTTP backend
CONSOLE = "/console/"  # HTML forms, file uploads among them


def _accepted(path: str) -> tuple[bytes, ...]:
    """The content types a path's bodies may have, the first one to name in a refusal."""
    if path.startswith(FORM_PATHS):
        return (FORM,)
    if path.startswith(CONSOLE):
        return (FORM, b"multipart/form-data")
    return (b"application/json",)


class RequestGuard:
    """Pure ASGI: caps bodies, checks content types, adds a `Date` header.

    Bodies are counted as they stream, so a lying or absent Content-Length is no way
    around the cap. OAuth endpoints take forms (RFC 6749), the rest JSON.
    """

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                # FastAPI re-raises HTTPException from body parsing; rendered as problem+json
                raise StarletteHTTPException(413, f"bodies are capped at {self.max_body} bytes")
            return message

        async def dated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"date" for k, _ in headers):
                    headers.append((b"date", _http_date(int(time.time()))))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, capped_receive, dated_send)

    def _too_large(self, path: str) -> JSONResponse:
        detail = f"bodies are capped at {self.max_body} bytes"
        return _error(path, 413, "Payload too large", detail, "payload_too_large")

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        if scope["method"] not in ("POST", "PATCH", "PUT"):
            return None
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        path: str = scope["path"]
        if length.isdigit() and int(length) > self.max_body:
            return self._too_large(path)
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        accepted = _accepted(path)
        expected = accepted[0]
        if length in (b"0", b"") and b"transfer-encoding" not in headers:
            return None  # no body at all: nothing to mistype
        if ctype not in accepted:
            if path.startswith(OAUTH_PREFIX):  # RFC 6749 section 3.2: a form, or 400
                return oauth_error(
                    400, "invalid_request", f"Content-Type must be {expected.decode()}"
                )
            return problem(
                415,
                "Unsupported media type",
                f"Content-Type must be {expected.decode()}",
                "unsupported_media_type",
            )
        return None
