"""HTTP plumbing: error rendering, request guards (size, content type), Date header."""

from __future__ import annotations

import email.utils
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from provisioning.errors import OAuthError, ProvisioningError

log = logging.getLogger("credbroker.api")
PROBLEM = "application/problem+json"
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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
        body = {"error": exc.error, "error_description": exc.detail}
        return JSONResponse(body, exc.status_code, headers={**NO_STORE, **exc.headers})
    response = problem(exc.status_code, exc.title, exc.detail, exc.error, **exc.extra)
    response.headers.update(exc.headers)
    return response


def _clean(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the offending input: it may be a key or a secret."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    async def provisioning_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProvisioningError)  # noqa: S101
        return render(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        return problem(
            422,
            "Invalid request body",
            "the request does not match the schema",
            "validation_error",
            errors=_clean(exc.errors()),
        )

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        error = _HTTP_ERRORS.get(exc.status_code, "http_error")
        return problem(exc.status_code, str(exc.detail), str(exc.detail), error)

    async def integrity_error(_: Request, exc: Exception) -> JSONResponse:
        return problem(
            409, "Conflict", "a concurrent request changed the same data; retry", "conflict"
        )

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        return problem(503, "Unavailable", "the database cannot be reached", "unavailable")

    app.add_exception_handler(ProvisioningError, provisioning_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, integrity_error)
    app.add_exception_handler(OperationalError, unavailable)


FORM_PATHS = ("/oauth2/", "/v1/hooks/rabbitmq/")  # RFC 6749; RabbitMQ's HTTP backend


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
                    headers.append((b"date", email.utils.formatdate(usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, capped_receive, dated_send)

    def _too_large(self) -> JSONResponse:
        return problem(
            413,
            "Payload too large",
            f"bodies are capped at {self.max_body} bytes",
            "payload_too_large",
        )

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        if scope["method"] not in ("POST", "PATCH", "PUT"):
            return None
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_body:
            return self._too_large()
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        path: str = scope["path"]
        expected = (
            b"application/x-www-form-urlencoded"
            if path.startswith(FORM_PATHS)
            else (b"application/json")
        )
        if length in (b"0", b"") and b"transfer-encoding" not in headers:
            return None  # no body at all: nothing to mistype
        if ctype != expected:
            if path.startswith("/oauth2/"):
                return JSONResponse(
                    {
                        "error": "invalid_request",
                        "error_description": f"Content-Type must be {expected.decode()}",
                    },
                    400,
                    headers=NO_STORE,
                )
            return problem(
                415,
                "Unsupported media type",
                f"Content-Type must be {expected.decode()}",
                "unsupported_media_type",
            )
        return None
