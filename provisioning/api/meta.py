"""Discovery, JWKS, enrollment, audit, health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from credbroker import jws
from credbroker.claims import SIGNING_ALG
from provisioning import clientauth, dpop, grants, signing
from provisioning.api.deps import AuditRead, ServicesDep
from provisioning.metrics import Metrics
from provisioning.models.audit import AuditFilter, AuditPage
from provisioning.models.bounds import STRICT_BODY
from provisioning.models.devices import CredentialKeyPublic, PublicKeyInput
from provisioning.store import audit, devices, enrollment

router = APIRouter()
# Every `alg` some credential key verifies (credbroker.jws): EdDSA, Ed25519, ES256.
ASSERTION_ALGS = [name for names in jws.ALG_NAMES.values() for name in names]


@router.get("/.well-known/oauth-authorization-server", tags=["meta"])
def metadata(services: ServicesDep) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    issuer = services.issuer
    return {
        "issuer": issuer,
        "token_endpoint": services.token_endpoint,
        "revocation_endpoint": services.revocation_endpoint,
        "introspection_endpoint": issuer + "/oauth2/introspect",
        "grant_types_supported": list(grants.GRANTS),
        "token_endpoint_auth_methods_supported": clientauth.NAMES,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        # RFC 8705 section 3.3: tokens granted over mTLS are bound to its certificate.
        "tls_client_certificate_bound_access_tokens": True,
        # RFC 8414 section 2: names of the IANA "OAuth Token Endpoint Authentication
        # Methods" registry only; "none" is possession alone. Admin keys (Bearer) are
        # accepted too but have no name in that registry.
        "revocation_endpoint_auth_methods_supported": ["none", *clientauth.NAMES],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        # Here RFC 8414 section 2 also allows the "OAuth Access Token Types" registry:
        # the admin key is a bearer token (RFC 6750), registered as "Bearer".
        "introspection_endpoint_auth_methods_supported": ["Bearer"],
        "response_types_supported": [],
        "access_token_signing_alg_values_supported": [SIGNING_ALG],
        # RFC 9449 section 5.1: a DPoP proof binds the refresh token (access tokens stay
        # Bearer, with cnf.jkt of the credential key as before).
        "dpop_signing_alg_values_supported": dpop.ALGS,
    }


@router.get("/v1/devices/{device_id}/jwks.json", tags=["devices"])
def device_jwks(device_id: str, services: ServicesDep) -> dict[str, Any]:
    """Public halves of the device's signing keys that still verify (RFC 7517)."""
    with services.transaction() as session:
        devices.get_device(session=session, device_id=device_id)
        rows = signing.live_keys(session=session, device_id=device_id, now=services.now())
    return {"keys": [signing.public_jwk(row) for row in rows]}


class EnrollRequest(BaseModel):
    model_config = STRICT_BODY

    enrollment_token: str = Field(min_length=1, max_length=200)
    public_key: PublicKeyInput


@router.post("/v1/enroll", status_code=201, tags=["devices"])
def enroll(body: EnrollRequest, services: ServicesDep) -> dict[str, Any]:
    """Device side: register the device's public key with its single-use token."""
    with services.transaction() as session:
        device, key = enrollment.enroll(
            session=session,
            enrollment_token=body.enrollment_token,
            public_key=body.public_key,
            now=services.now(),
        )
        return {
            "device_id": device.device_id,
            "key": CredentialKeyPublic.model_validate(key.public()).model_dump(),
        }


@router.get("/v1/audit", tags=["audit"])
def read_audit(
    services: ServicesDep,
    _: AuditRead,
    query: Annotated[AuditFilter, Query()],
) -> AuditPage:
    """Audit events, oldest first; filter by device and action, page with `cursor`."""
    with services.transaction() as session:
        rows = audit.list_events(
            session=session,
            device_id=query.device_id,
            action=query.action,
            after=query.cursor,
            limit=query.limit,
        )
    items = [r.public() for r in rows]
    full = len(items) == query.limit
    return AuditPage(items=items, next_cursor=str(items[-1].id) if full else None)


@router.get(
    "/healthz",
    tags=["meta"],
    responses={503: {"description": "starting", "content": {"application/json": {}}}},
)
def healthz(request: Request) -> JSONResponse:
    """Liveness: 200 once every part of this process accepts connections."""
    checks: dict[str, bool] = dict(request.app.state.health)
    ready = all(checks.values())
    body = {"status": "ok" if ready else "starting", **checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", tags=["meta"], response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    registry: Metrics = request.app.state.services.metrics
    return Response(registry.render(), media_type=registry.content_type)
