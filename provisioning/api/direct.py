"""`DirectRoute`: a route FastAPI documents but does not drive, for the hot paths.

FastAPI solves every route's dependencies, reads and validates its body and serializes
its answer: about 0.1 ms a request here, as much as a grant's own statements. An
endpoint declared with `route_class_override=DirectRoute` takes the `Request` and
returns a `Response` itself; FastAPI still routes to it, renders its errors through the
application's exception handlers and lists it in the OpenAPI document (from its
`responses` and `openapi_extra`, which must then describe the body and headers it
reads: FastAPI no longer sees them in the signature).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]
M = TypeVar("M", bound=BaseModel)


class MalformedForm(ValueError):
    pass


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint
        return endpoint


class DirectPaths(BaseRoute):
    """The direct routes by method and exact path, matched with one dictionary lookup
    ahead of the application's routers (`install`). FastAPI matches included routers
    route by route, 5 to 20 us a request here, a sixth of a cached hook check. Other
    methods on these paths go on to the routers (a 405 with `Allow`)."""

    def __init__(self, app: FastAPI) -> None:
        self._found: dict[tuple[str, str], DirectRoute] = {}
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, DirectRoute) and context.path:
                for method in route.methods or ():
                    self._found[method, context.path] = route

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            route = self._found.get((scope["method"], scope["path"]))
            if route is not None:
                return Match.FULL, {"endpoint": route.endpoint, "route": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint's answer; what it raises goes up to the application's
        ExceptionMiddleware, which renders it with the application's handlers (a
        route-level wrapper would only look up the same handlers again)."""
        endpoint: Endpoint = scope["endpoint"]
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Match the direct routes first; after every router is included."""
    app.router.routes.insert(0, DirectPaths(app))


def header(name: str, description: str) -> dict[str, Any]:
    """An OpenAPI header parameter of a direct route (which FastAPI cannot see)."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


async def read_form(request: Request, max_fields: int) -> dict[str, str]:
    """A form body, each field once, decoded as Starlette's form parser does (latin-1
    bytes, then `%`-escapes as UTF-8) at a fifth of its cost."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=max_fields)
    except ValueError as exc:
        raise MalformedForm(f"a form has at most {max_fields} parameters") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise MalformedForm(f"parameter {name!r} must be sent once")
        fields[name] = value
    return fields


async def read_body(request: Request, model: type[M], *, form: bool = False) -> M:
    """The body (JSON, or a form) as `model`; a body that does not fit is the 422 that
    FastAPI gives a route that declares `model`. JSON is decoded as FastAPI does, by the
    standard library, which keeps a lone surrogate escape (`"\\ud800"`) as text where
    pydantic's own parser refuses it: a client id no device has, answered `deny`, not
    a 422 that some brokers read as "no opinion"."""
    try:
        if form:
            return model.model_validate(await read_form(request, max_fields=64))
        body = await request.body()
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            where = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
            error = {"loc": ("body", where), "msg": "JSON decode error"}
            raise RequestValidationError([{**error, "type": "json_invalid"}]) from exc
        return model.model_validate(decoded)
    except MalformedForm as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": str(exc), "type": "form"}]) from exc
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc


def body_schema(model: type[BaseModel], *, form: bool = False) -> dict[str, Any]:
    """`openapi_extra` describing a flat `model` as the request body."""
    media = "application/x-www-form-urlencoded" if form else "application/json"
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {media: {"schema": schema}}}}
