"""Broker hooks under /v1/hooks: one module per broker, each in its broker's own
request and answer format, all deciding with `HookAuthority` (the shared decision).

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

from fastapi import APIRouter, Depends

from provisioning.api.hooks import emqx, mosquitto_go_auth, rabbitmq, vernemq
from provisioning.api.hooks.access import hook_key

router = APIRouter(prefix="/v1/hooks", tags=["broker hooks"], dependencies=[Depends(hook_key)])
for broker in (rabbitmq, emqx, mosquitto_go_auth, vernemq):
    router.include_router(broker.router)
