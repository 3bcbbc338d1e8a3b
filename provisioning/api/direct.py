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

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    def get_route_handler(self) -> Endpoint:
        endpoint: Endpoint = self.endpoint
        return endpoint


def header(name: str, description: str) -> dict[str, Any]:
    """An OpenAPI header parameter of a direct route (which FastAPI cannot see)."""
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }
