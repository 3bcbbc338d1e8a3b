"""The OpenAPI document: every status an operation can answer, with its media type.

FastAPI documents a route's success and a 422 in its own format; the errors this API
answers come from one exception handler, a request guard and the admin dependencies,
none of which a route names. They are added here, from one table of rules read off
each operation (`ERROR_RULES`): problem+json (RFC 9457) on /v1 and elsewhere, RFC 6749
section 5.2 JSON under /oauth2/. A route documents only what is its own (a hook's
answer in its broker's format) with FastAPI's `responses=`; those are kept, and the
error media type is added beside theirs.

Links (OpenAPI 3.1 section 4.8.20) say where a created device, fleet or admin key goes next, for
clients and for stateful testing (schemathesis follows them).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from provisioning.http import OAUTH_PREFIX, PROBLEM

Operation = dict[str, Any]


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with the error code and, for a 422, the issues."""

    type: str
    title: str
    status: int
    detail: str
    error: str
    errors: list[ValidationIssue] | None = None
    results: list[dict[str, Any]] | None = None  # a refused atomic batch, per row


class OAuthErrorBody(BaseModel):
    """RFC 6749 section 5.2."""

    error: str
    error_description: str | None = None


def _has_body(path: str, method: str, op: Operation) -> bool:
    return "requestBody" in op or path.startswith(OAUTH_PREFIX)


def _admin(path: str, method: str, op: Operation) -> bool:
    """Admin and hook keys come in `Authorization`; the OAuth endpoints answer their own."""
    authenticated = any(p["name"] == "authorization" for p in op.get("parameters", []))
    return authenticated and not path.startswith(OAUTH_PREFIX)


def _has_input(path: str, method: str, op: Operation) -> bool:
    return bool(op.get("parameters")) or "requestBody" in op


def _reads_a_resource(path: str, method: str, op: Operation) -> bool:
    return any(p["in"] == "path" for p in op.get("parameters", []))


def _writes(path: str, method: str, op: Operation) -> bool:
    return method != "get" and path.startswith("/v1/") and not path.startswith("/v1/hooks/")


def _lists(path: str, method: str, op: Operation) -> bool:
    return any(p["name"] == "cursor" for p in op.get("parameters", []))


def _reads_the_database(path: str, method: str, op: Operation) -> bool:
    return path not in ("/healthz", "/metrics", "/.well-known/oauth-authorization-server")


def _oauth(path: str, method: str, op: Operation) -> bool:
    return path.startswith(OAUTH_PREFIX)


Rule = Callable[[str, str, Operation], bool]
# (statuses, when): each status an operation answers when the rule holds for it.
ERROR_RULES: tuple[tuple[tuple[int, ...], Rule], ...] = (
    ((422,), _has_input),  # the schema's own refusals (RequestValidationError)
    ((413,), _has_body),  # RequestGuard's cap on bodies
    ((415,), lambda path, method, op: _has_body(path, method, op) and not _oauth(path, method, op)),
    ((401, 403), _admin),  # admin and hook keys: none or unknown; lacking the scope
    ((400,), _has_body),  # a body that is not UTF-8 (RFC 8259 section 8.1)
    ((404,), _reads_a_resource),  # a device, fleet or key that does not exist
    ((404,), _writes),  # a fleet named in the body that does not exist
    ((400, 409), _writes),  # a refused value (a key, a batch); a concurrent change
    ((400,), _lists),  # a malformed cursor
    ((400, 401, 429), _oauth),  # RFC 6749 section 5.2; a penalty (Retry-After)
    ((503,), _reads_the_database),  # the database cannot be reached
)


def error_statuses(path: str, method: str, op: Operation) -> list[int]:
    return sorted({s for statuses, rule in ERROR_RULES if rule(path, method, op) for s in statuses})


def _error_media(path: str) -> tuple[str, str]:
    if path.startswith(OAUTH_PREFIX):
        return "application/json", "OAuthErrorBody"
    return PROBLEM, "Problem"


def _document_errors(path: str, method: str, op: Operation) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    media, schema = _error_media(path)
    content = {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    for status in error_statuses(path, method, op):
        response = responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
        if status == 422 and "HTTPValidationError" in str(response.get("content")):
            response["content"] = {}  # FastAPI's own 422 format, which we do not answer
        response.setdefault("content", {}).update(content)
        if status == 401:
            header = {"description": "how to authenticate (RFC 9110 section 11.6.1)"}
            response.setdefault("headers", {})["WWW-Authenticate"] = {
                **header,
                "schema": {"type": "string"},
            }


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


DEVICE = {"device_id": "$response.body#/device_id"}
FLEET = {"name": "$response.body#/name"}
# (path, method, status): links by the target's function name (FastAPI's operationId
# ends with it; resolved below).
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("/v1/devices", "post", "201"): {
        "ReadDevice": ("read_device", DEVICE),
        "UpdateDevice": ("update_device", DEVICE),
        "DeleteDevice": ("delete_device", DEVICE),
        "AddKey": ("add_key", DEVICE),
        "RotateSigningKey": ("rotate_signing_key", DEVICE),
        "RevokeDevice": ("revoke_device", DEVICE),
        "DeviceJwks": ("device_jwks", DEVICE),
    },
    ("/v1/fleets", "post", "201"): {
        "ReadFleet": ("read_fleet", FLEET),
        "UpdateFleet": ("update_fleet", FLEET),
        "DeleteFleet": ("delete_fleet", FLEET),
    },
    ("/v1/admin-keys", "post", "201"): {
        "RevokeAdminKey": ("revoke_admin_key", {"key_id": "$response.body#/id"}),
    },
}


def _add_links(document: dict[str, Any]) -> None:
    ids: list[str] = [
        op["operationId"] for ops in document["paths"].values() for op in ops.values()
    ]

    def operation_id(name: str) -> str:
        return next(i for i in ids if i.startswith(name + "_"))

    for (path, method, status), links in LINKS.items():
        response = document["paths"][path][method]["responses"][status]
        response["links"] = {
            label: _link(operation_id(name), **params) for label, (name, params) in links.items()
        }


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, routes=app.routes, description=app.description
    )
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            _document_errors(path, method, op)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, OAuthErrorBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    _add_links(document)
    return document


def install(app: FastAPI) -> None:
    """Serve `build(app)` at /openapi.json (made once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
