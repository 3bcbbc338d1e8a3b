"""EMQX 5 (HTTP authentication and authorization): JSON."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from credbroker.decision import Grant
from provisioning.api.hooks.access import Loose, connect, hook
from provisioning.services import Services

router = APIRouter(prefix="/emqx")


class EmqxAuthn(Loose):
    clientid: str
    username: str = ""
    password: str = ""
    peerhost: str = ""


class EmqxAuthz(Loose):
    clientid: str
    username: str = ""
    topic: str
    action: Literal["publish", "subscribe", "all"]


@hook(router, "/authn", EmqxAuthn)
async def emqx_authn(body: EmqxAuthn, services: Services) -> JSONResponse:
    """The answer carries `expire_at` and the device's ACL (EMQX 5.8+), so EMQX need not
    ask again per publish; the final rule denies everything else. `expire_at` is in
    Unix seconds (EMQX refuses a value that looks like milliseconds): the token's exp
    plus the leeway, where EMQX disconnects the client (a 5.0 client with DISCONNECT
    0x87, emqx_channel's connection_auth_expire) and ends the ACL."""
    decision = await connect(
        services,
        client_id=body.clientid,
        username=body.username,
        password=body.password,
        address=body.peerhost or None,
    )
    if not isinstance(decision, Grant):
        return JSONResponse({"result": "deny"})
    acl = [{"permission": "allow", "action": "publish", "topic": t} for t in decision.pub]
    acl += [{"permission": "allow", "action": "subscribe", "topic": t} for t in decision.sub]
    acl.append({"permission": "deny", "action": "all", "topic": "#"})
    return JSONResponse(
        {"result": "allow", "is_superuser": False, "expire_at": int(decision.exp), "acl": acl}
    )


@hook(router, "/authz", EmqxAuthz)
async def emqx_authz(body: EmqxAuthz, services: Services) -> JSONResponse:
    hooks = services.hooks
    if body.action == "publish":
        allowed = hooks.may_publish(body.clientid, body.topic, body.username)
    elif body.action == "subscribe":
        allowed = hooks.may_subscribe(body.clientid, body.topic, body.username)
    else:
        allowed = False
    return JSONResponse({"result": "allow" if allowed else "deny"})
