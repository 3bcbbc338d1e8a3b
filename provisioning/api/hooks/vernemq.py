"""VerneMQ (webhooks, `vmq_webhooks`): JSON.

MQTT 3.1.1 clients go through `auth_on_register`, `auth_on_publish` and
`auth_on_subscribe`; MQTT 5.0 clients through the `_m5` hooks, which VerneMQ calls
instead (never both) and which answer in their own shapes (vmq-docs,
plugindevelopment/webhookplugins.md). Both decide with the same `HookAuthority`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from credbroker.decision import Grant, Kind, Refusal
from provisioning.api.hooks.access import Authority, Loose, connect, hook
from provisioning.services import Services

router = APIRouter(prefix="/vernemq")

NOT_ALLOWED = {"result": {"error": "not_allowed"}}
# MQTT 5.0 section 3.9.3: SUBACK reason code 0x87, "Not authorized". VerneMQ takes a
# `qos` outside 0 to 2 in the `_m5` answer's topics as the filter's SUBACK reason code.
SUBACK_NOT_AUTHORIZED = 0x87
# The refusal's MQTT 5.0 reason code, by VerneMQ's name for it (vernemq_dev.hrl). Its
# webhooks answer a refused CONNECT with CONNACK 0x86 whatever the error says (the text
# only reaches its log: vmq_mqtt5_fsm, check_user): the name tells the operator why.
REASON_NAMES = {
    Kind.BAD_CREDENTIALS: "bad_username_or_password",
    Kind.NOT_AUTHORIZED: "not_authorized",
    Kind.UNAVAILABLE: "server_unavailable",
    Kind.TRY_LATER: "connection_rate_exceeded",
}


class VerneRegister(Loose):
    client_id: str
    username: str | None = None
    password: str | None = None
    peer_addr: str = ""


class VernePublish(Loose):
    client_id: str
    username: str | None = None
    topic: str


class VerneTopic(Loose):
    topic: str
    qos: int = Field(ge=0, le=2)  # MQTT 3.1.1 section 3.8.3


class VerneSubscribe(Loose):
    client_id: str
    username: str | None = None
    topics: list[VerneTopic]


class VerneTopic5(VerneTopic):
    """A 5.0 subscription with its options (MQTT 5.0 section 3.8.3.1), as VerneMQ
    sends them: a granted filter's answer must repeat them, or VerneMQ resets them."""

    no_local: bool | None = None
    rap: bool | None = None  # retain as published
    retain_handling: Literal["send_retain", "send_if_new_sub", "dont_send"] | None = None


class VerneSubscribe5(Loose):
    client_id: str
    username: str | None = None
    topics: list[VerneTopic5]


async def _register(body: VerneRegister, services: Services) -> Grant | Refusal:
    return await connect(
        services,
        client_id=body.client_id,
        username=body.username or "",
        password=body.password or "",
        address=body.peer_addr or None,
    )


@hook(router, "/auth_on_register", VerneRegister)
async def vernemq_register(body: VerneRegister, services: Services) -> JSONResponse:
    decision = await _register(body, services)
    return JSONResponse({"result": "ok"} if isinstance(decision, Grant) else NOT_ALLOWED)


@hook(router, "/auth_on_register_m5", VerneRegister)
async def vernemq_register_m5(body: VerneRegister, services: Services) -> JSONResponse:
    """A granted CONNECT gets `max_connection_lifetime`, the seconds to its token's end
    (VerneMQ 1.13+): VerneMQ then ends the session with DISCONNECT 0x98."""
    decision = await _register(body, services)
    if not isinstance(decision, Grant):
        return JSONResponse({"result": {"error": REASON_NAMES[decision.kind]}})
    lifetime = max(1, math.ceil(decision.exp - services.clock()))  # 0 would mean "none"
    return JSONResponse({"result": "ok", "modifiers": {"max_connection_lifetime": lifetime}})


@hook(router, "/auth_on_publish", VernePublish)
async def vernemq_publish(body: VernePublish, services: Services) -> JSONResponse:
    allowed = services.hooks.may_publish(body.client_id, body.topic, body.username)
    return JSONResponse({"result": "ok"} if allowed else NOT_ALLOWED)


@hook(router, "/auth_on_publish_m5", VernePublish)
async def vernemq_publish_m5(body: VernePublish, services: Services) -> Response:
    """Refused: VerneMQ answers a QoS 1 publish with PUBACK 0x87, QoS 2 with PUBREC 0x87."""
    return await vernemq_publish(body, services)


@router.post("/auth_on_subscribe")
async def vernemq_subscribe(body: VerneSubscribe, hooks: Authority) -> dict[str, Any]:
    """Per-topic answers: a refused filter gets QoS 128, the others keep theirs."""
    if hooks.grant(body.client_id, body.username) is None:
        return NOT_ALLOWED
    topics = [
        {"topic": t.topic, "qos": t.qos if hooks.may_subscribe(body.client_id, t.topic) else 128}
        for t in body.topics
    ]
    return {"result": "ok", "topics": topics}


@hook(router, "/auth_on_subscribe_m5", VerneSubscribe5)
async def vernemq_subscribe_m5(body: VerneSubscribe5, services: Services) -> JSONResponse:
    """Per-filter SUBACK reason codes: 0x87 for a refused filter (every filter, for a
    client with no live grant). All granted: a plain `ok`, and VerneMQ subscribes as
    asked. Else the topics go in `modifiers` (VerneMQ ignores the top-level `topics` of
    the 3.1.1 answer here), the granted ones with their QoS and options; VerneMQ
    rebuilds those from the answer, without their Subscription Identifier."""
    grant = services.hooks.grant(body.client_id, body.username)
    granted = [grant is not None and grant.may_subscribe(t.topic) for t in body.topics]
    if all(granted):
        return JSONResponse({"result": "ok"})
    topics = [
        t.model_dump(exclude_none=True) if ok else {"topic": t.topic, "qos": SUBACK_NOT_AUTHORIZED}
        for t, ok in zip(body.topics, granted, strict=True)
    ]
    return JSONResponse({"result": "ok", "modifiers": {"topics": topics}})
