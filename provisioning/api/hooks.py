"""Broker hooks: one adapter per broker, each in its broker's own request and answer
format, all deciding with `HookAuthority` (the embedded broker's checks).

Never anonymous: every call needs an admin key with the `broker:hook` scope, as
`Authorization: Bearer <key>` or as the password of HTTP Basic (for brokers that can
only put credentials in the URL, like RabbitMQ: `http://hook:<key>@api:8000/...`), or
must come from a network listed in CREDBROKER_HOOKS_TRUSTED_NETWORKS (for brokers that
can present no key at all; by default none is).

Failed logins count against the client id and the client's address as the broker
reports it (VerneMQ's `peer_addr`, EMQX's `peerhost`, RabbitMQ's `ip` when sent), never
against the broker's own address: one attacker behind it would lock out every device.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from credbroker.decision import Grant
from provisioning.api.deps import ServicesDep
from provisioning.brokerhooks import HookAuthority, routing_key_to_topic
from provisioning.services import Services
from provisioning.store import admin


async def _hook_key(
    services: ServicesDep,
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """A `broker:hook` key; accepted keys are remembered for a few seconds, since every
    publish check would otherwise cost a database transaction (revoking a hook key takes
    effect within `KEY_TTL`)."""
    if authorization and services.hooks.known_key(authorization):
        return
    if not authorization and _trusted(services, request):
        return  # a broker on a network the operator trusts (CREDBROKER_HOOKS_TRUSTED_NETWORKS)
    scheme, _, value = (authorization or "").partition(" ")
    bearer = authorization
    if scheme.lower() == "basic":
        try:
            _, _, key = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:  # binascii.Error, UnicodeDecodeError, or non-ASCII base64 text
            key = ""
        bearer = f"Bearer {key}"
    await run_in_threadpool(_check_key, services, bearer)
    services.hooks.remember_key(authorization or "")


def _trusted(services: Services, request: Request) -> bool:
    networks = services.settings.trusted_hook_networks
    if not networks or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _check_key(services: Services, bearer: str | None) -> None:
    with services.transaction() as session:
        admin.authenticate(session=session, authorization=bearer, scopes=("broker:hook",))


router = APIRouter(prefix="/v1/hooks", tags=["broker hooks"], dependencies=[Depends(_hook_key)])


async def _authority(services: ServicesDep) -> HookAuthority:
    return services.hooks


Authority = Annotated[HookAuthority, Depends(_authority)]
# CONNECT hooks verify a token and save the grant (database work): plain `def`, on the
# thread pool. Publish and subscribe hooks are dictionary lookups: `async def`, on the
# loop (a cache miss reads one row, rare: once per client id and process).


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")  # brokers send more than we read


# -- RabbitMQ (rabbitmq_auth_backend_http; form POST, plain allow/deny) ------------------

Text = Annotated[str, Form()]


def _rabbit(allowed: object) -> PlainTextResponse:
    return PlainTextResponse("allow" if allowed else "deny")


@router.post("/rabbitmq/user")
def rabbitmq_user(
    hooks: Authority, username: Text, password: Text, client_id: Text = "", ip: Text = ""
) -> PlainTextResponse:
    """Called on CONNECT with the MQTT client id (AMQP clients, which have none, are
    refused: device credentials are for MQTT)."""
    decision = hooks.connect(
        client_id=client_id, username=username, password=password, address=ip or None
    )
    return _rabbit(isinstance(decision, Grant))


@router.post("/rabbitmq/vhost")
async def rabbitmq_vhost(
    hooks: Authority, username: Text, client_id: Text = ""
) -> PlainTextResponse:
    return _rabbit(hooks.grant(client_id, username))


@router.post("/rabbitmq/resource")
async def rabbitmq_resource(
    hooks: Authority,
    username: Text,
    resource: Text,
    name: Text,
    permission: Text,
    client_id: Text = "",
) -> PlainTextResponse:
    """The MQTT plugin's exchange and the client's own subscription queues only."""
    if not hooks.grant(client_id, username):
        return _rabbit(False)
    exchange = resource == "exchange" and name == "amq.topic" and permission in ("read", "write")
    own_queue = resource == "queue" and name.startswith(f"mqtt-subscription-{client_id}qos")
    return _rabbit(exchange or own_queue)


@router.post("/rabbitmq/topic")
async def rabbitmq_topic(
    hooks: Authority,
    username: Text,
    permission: Text,
    routing_key: Text,
    client_id: Annotated[str, Form(alias="variable_map.client_id")] = "",
) -> PlainTextResponse:
    """`write` is a publish to a topic, `read` a subscription to a filter."""
    topic = routing_key_to_topic(routing_key)
    if permission == "write":
        return _rabbit(hooks.may_publish(client_id, topic, username))
    if permission == "read":
        return _rabbit(hooks.may_subscribe(client_id, topic, username))
    return _rabbit(False)


# -- EMQX 5 (HTTP authentication and authorization; JSON) --------------------------------


class EmqxAuthn(_Loose):
    clientid: str
    username: str = ""
    password: str = ""
    peerhost: str = ""


class EmqxAuthz(_Loose):
    clientid: str
    username: str = ""
    topic: str
    action: Literal["publish", "subscribe", "all"]


@router.post("/emqx/authn")
def emqx_authn(body: EmqxAuthn, hooks: Authority) -> dict[str, Any]:
    """The answer carries `expire_at` and the device's ACL (EMQX 5.8+), so EMQX need not
    ask again per publish; the final rule denies everything else."""
    decision = hooks.connect(
        client_id=body.clientid,
        username=body.username,
        password=body.password,
        address=body.peerhost or None,
    )
    if not isinstance(decision, Grant):
        return {"result": "deny"}
    acl = [{"permission": "allow", "action": "publish", "topic": t} for t in decision.pub]
    acl += [{"permission": "allow", "action": "subscribe", "topic": t} for t in decision.sub]
    acl.append({"permission": "deny", "action": "all", "topic": "#"})
    return {
        "result": "allow",
        "is_superuser": False,
        "expire_at": int(decision.exp),
        "acl": acl,
    }


@router.post("/emqx/authz")
async def emqx_authz(body: EmqxAuthz, hooks: Authority) -> dict[str, str]:
    if body.action == "publish":
        allowed = hooks.may_publish(body.clientid, body.topic, body.username)
    elif body.action == "subscribe":
        allowed = hooks.may_subscribe(body.clientid, body.topic, body.username)
    else:
        allowed = False
    return {"result": "allow" if allowed else "deny"}


# -- mosquitto-go-auth (HTTP backend; JSON params, status or json response mode) ---------

ACC_READ, ACC_WRITE, ACC_SUBSCRIBE = 1, 2, 4


class GoAuthUser(_Loose):
    username: str
    password: str
    clientid: str


class GoAuthAcl(_Loose):
    username: str
    clientid: str
    topic: str
    acc: int = Field(ge=0, le=15)  # mosquitto's MOSQ_ACL_* bits


def _go_auth(ok: bool, error: str = "") -> JSONResponse:
    """200 `{"ok": true}` or 403 `{"ok": false}`: right for both `status` and `json`."""
    return JSONResponse({"ok": ok, "error": error}, status_code=200 if ok else 403)


@router.post("/mosquitto-go-auth/user")
def go_auth_user(body: GoAuthUser, hooks: Authority) -> JSONResponse:
    """mosquitto-go-auth reports no client address: penalties are per client id only."""
    decision = hooks.connect(
        client_id=body.clientid, username=body.username, password=body.password, address=None
    )
    return _go_auth(isinstance(decision, Grant), "" if isinstance(decision, Grant) else "refused")


@router.post("/mosquitto-go-auth/superuser")
async def go_auth_superuser() -> JSONResponse:
    return _go_auth(False, "devices are never superusers")


@router.post("/mosquitto-go-auth/acl")
async def go_auth_acl(body: GoAuthAcl, hooks: Authority) -> JSONResponse:
    """acc: 1 read (a delivery to this client), 2 write, 3 both, 4 subscribe."""
    checks = []
    if body.acc & (ACC_READ | ACC_SUBSCRIBE):
        checks.append(hooks.may_subscribe(body.clientid, body.topic, body.username))
    if body.acc & ACC_WRITE:
        checks.append(hooks.may_publish(body.clientid, body.topic, body.username))
    return _go_auth(bool(checks) and all(checks))


# -- VerneMQ (webhooks; JSON) --------------------------------------------------------------

NOT_ALLOWED = {"result": {"error": "not_allowed"}}


class VerneRegister(_Loose):
    client_id: str
    username: str | None = None
    password: str | None = None
    peer_addr: str = ""


class VernePublish(_Loose):
    client_id: str
    username: str | None = None
    topic: str


class VerneTopic(_Loose):
    topic: str
    qos: int = Field(ge=0, le=2)  # MQTT 3.1.1 section 3.8.3


class VerneSubscribe(_Loose):
    client_id: str
    username: str | None = None
    topics: list[VerneTopic]


@router.post("/vernemq/auth_on_register")
def vernemq_register(body: VerneRegister, hooks: Authority) -> dict[str, Any]:
    decision = hooks.connect(
        client_id=body.client_id,
        username=body.username or "",
        password=body.password or "",
        address=body.peer_addr or None,
    )
    return {"result": "ok"} if isinstance(decision, Grant) else NOT_ALLOWED


@router.post("/vernemq/auth_on_publish")
async def vernemq_publish(body: VernePublish, hooks: Authority) -> dict[str, Any]:
    allowed = hooks.may_publish(body.client_id, body.topic, body.username)
    return {"result": "ok"} if allowed else NOT_ALLOWED


@router.post("/vernemq/auth_on_subscribe")
async def vernemq_subscribe(body: VerneSubscribe, hooks: Authority) -> dict[str, Any]:
    """Per-topic answers: a refused filter gets QoS 128, the others keep theirs."""
    if hooks.grant(body.client_id, body.username) is None:
        return NOT_ALLOWED
    topics = [
        {"topic": t.topic, "qos": t.qos if hooks.may_subscribe(body.client_id, t.topic) else 128}
        for t in body.topics
    ]
    return {"result": "ok", "topics": topics}
