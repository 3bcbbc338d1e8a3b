"""mosquitto-go-auth (HTTP backend): JSON params; answers right for both its `status`
and `json` response modes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from credbroker.decision import Grant
from provisioning.api.hooks.access import Loose, connect, hook
from provisioning.services import Services


class GoAuthAnswer(BaseModel):
    ok: bool
    error: str


_ANSWER = {"application/json": {"schema": GoAuthAnswer.model_json_schema()}}
router = APIRouter(
    prefix="/mosquitto-go-auth",
    responses={
        200: {"description": "allowed", "content": _ANSWER},
        403: {
            "description": "refused",
            "content": _ANSWER,
        },
    },
)

ACC_READ, ACC_WRITE, ACC_SUBSCRIBE = 1, 2, 4


class GoAuthUser(Loose):
    username: str
    password: str
    clientid: str


class GoAuthAcl(Loose):
    username: str
    clientid: str
    topic: str
    acc: int = Field(ge=0, le=15)  # mosquitto's MOSQ_ACL_* bits


def _go_auth(ok: bool, error: str = "") -> JSONResponse:
    """200 `{"ok": true}` or 403 `{"ok": false}`: right for both `status` and `json`."""
    return JSONResponse({"ok": ok, "error": error}, status_code=200 if ok else 403)


@hook(router, "/user", GoAuthUser)
async def go_auth_user(body: GoAuthUser, services: Services) -> JSONResponse:
    """mosquitto-go-auth reports no client address: penalties are per client id only."""
    decision = await connect(
        services,
        client_id=body.clientid,
        username=body.username,
        password=body.password,
        address=None,
    )
    return _go_auth(isinstance(decision, Grant), "" if isinstance(decision, Grant) else "refused")


@router.post("/superuser")
async def go_auth_superuser() -> JSONResponse:
    return _go_auth(False, "devices are never superusers")


@hook(router, "/acl", GoAuthAcl)
async def go_auth_acl(body: GoAuthAcl, services: Services) -> JSONResponse:
    """acc: 1 read (a delivery to this client), 2 write, 3 both, 4 subscribe."""
    checks, hooks = [], services.hooks
    if body.acc & (ACC_READ | ACC_SUBSCRIBE):
        checks.append(hooks.may_subscribe(body.clientid, body.topic, body.username))
    if body.acc & ACC_WRITE:
        checks.append(hooks.may_publish(body.clientid, body.topic, body.username))
    return _go_auth(bool(checks) and all(checks))
