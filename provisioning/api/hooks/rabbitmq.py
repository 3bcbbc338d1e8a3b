"""RabbitMQ (`rabbitmq_auth_backend_http`): form POSTs, plain `allow` or `deny`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import PlainTextResponse
from pydantic import Field

from credbroker.decision import Grant
from provisioning.api.hooks.access import Authority, Loose, connect, hook
from provisioning.brokerhooks import routing_key_to_topic
from provisioning.services import Services

router = APIRouter(prefix="/rabbitmq", default_response_class=PlainTextResponse)

Text = Annotated[str, Form()]


def _rabbit(allowed: object) -> PlainTextResponse:
    return PlainTextResponse("allow" if allowed else "deny")


class RabbitUser(Loose):
    username: str
    password: str
    client_id: str = ""
    ip: str = ""


@hook(router, "/user", RabbitUser, form=True)
async def rabbitmq_user(body: RabbitUser, services: Services) -> PlainTextResponse:
    """Called on CONNECT with the MQTT client id (AMQP clients, which have none, are
    refused: device credentials are for MQTT)."""
    decision = await connect(
        services,
        client_id=body.client_id,
        username=body.username,
        password=body.password,
        address=body.ip or None,
    )
    return _rabbit(isinstance(decision, Grant))


@router.post("/vhost")
async def rabbitmq_vhost(
    hooks: Authority, username: Text, client_id: Text = ""
) -> PlainTextResponse:
    return _rabbit(hooks.grant(client_id, username))


@router.post("/resource")
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


class RabbitTopic(Loose):
    username: str
    permission: str
    routing_key: str
    client_id: str = Field("", alias="variable_map.client_id")


@hook(router, "/topic", RabbitTopic, form=True)
async def rabbitmq_topic(body: RabbitTopic, services: Services) -> PlainTextResponse:
    """`write` is a publish to a topic, `read` a subscription to a filter."""
    hooks = services.hooks
    topic = routing_key_to_topic(body.routing_key)
    if body.permission == "write":
        return _rabbit(hooks.may_publish(body.client_id, topic, body.username))
    if body.permission == "read":
        return _rabbit(hooks.may_subscribe(body.client_id, topic, body.username))
    return _rabbit(False)
