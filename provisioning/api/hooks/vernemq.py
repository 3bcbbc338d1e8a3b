"""VerneMQ (webhooks, `vmq_webhooks`): JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import Field

from credbroker.decision import Grant
from provisioning.api.hooks.access import Authority, Loose, connect, hook
from provisioning.services import Services

router = APIRouter(prefix="/vernemq")

NOT_ALLOWED = {"result": {"error": "not_allowed"}}


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


@hook(router, "/auth_on_register", VerneRegister)
async def vernemq_register(body: VerneRegister, services: Services) -> JSONResponse:
    decision = await connect(
        services,
        client_id=body.client_id,
        username=body.username or "",
        password=body.password or "",
        address=body.peer_addr or None,
    )
    return JSONResponse({"result": "ok"} if isinstance(decision, Grant) else NOT_ALLOWED)


@hook(router, "/auth_on_publish", VernePublish)
async def vernemq_publish(body: VernePublish, services: Services) -> JSONResponse:
    allowed = services.hooks.may_publish(body.client_id, body.topic, body.username)
    return JSONResponse({"result": "ok"} if allowed else NOT_ALLOWED)


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
