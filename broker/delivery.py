"""`DeliveryBroker`: amqtt 0.12.1's message routing, with credbroker's delivery fixes.

What a PUBLISH becomes on its way to subscribers, live or kept for an offline session;
`CredBroker` (server.py) adds authentication and the ACL on top. Fixed here:

- Delivery looks up the filters that can match a topic (fault 8, subscriptions.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.session import Session

from broker.handler import CredHandler
from broker.metrics import BrokerStats
from broker.subscriptions import SubscriptionTable


class DeliveryBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    def __init__(self, config: dict[str, Any], *, stats: BrokerStats) -> None:
        super().__init__(config)
        self._subscriptions = SubscriptionTable()
        self.stats = stats

    def _handler(self, session: Session) -> CredHandler | None:
        handler = self._get_handler(session)
        return handler if isinstance(handler, CredHandler) else None

    # -- to subscribers -------------------------------------------------------------------

    async def _run_broadcast(self, running_tasks: Any) -> None:
        """One queued message to every matching subscription, over candidate filters only."""
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for topic_filter, subscriptions in self._subscriptions.candidates(topic):
            if topic_filter != topic and not self._matches(topic, topic_filter):
                continue
            for target, sub_qos in list(subscriptions):
                qos = broadcast.get("qos", sub_qos)
                if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
                    continue
                connected = target.transitions.state == "connected"
                if (
                    not connected
                    and not target.clean_session
                    and qos in (1, 2)
                    and not target.is_anonymous
                ):
                    await self._retain_broadcast_message(broadcast, qos, target)  # for resume
                    continue
                handler = self._handler(target) if connected else None
                if handler is not None:
                    running_tasks.append(
                        asyncio.ensure_future(
                            handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                        )
                    )
