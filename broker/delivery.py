"""`DeliveryBroker`: amqtt 0.12.1's message routing with MQTT 3.1.1 delivery fixed.

What a PUBLISH becomes on its way to subscribers, live, kept for an offline session, or
retained; `CredBroker` (server.py) adds authentication and the ACL on top. Fixed here:

- Delivered QoS is the lower of the PUBLISH's and the subscription's (MQTT-3.8.4-6),
  retained messages too; stock amqtt delivered at the subscription's QoS (fault 14).
- A message kept for an offline persistent session goes out with RETAIN=0 when the
  session resumes (MQTT-3.3.1-9), not 1; the queue is bounded (fault 15).
- A PUBLISH to a `$` topic is refused; stock amqtt ended the connection's message loop
  and left the connection open, acknowledging and losing what came after (fault 11).
- No delivery waits for a client's acknowledgement (handler.py); stock amqtt made a
  session's start, and each SUBSCRIBE's retained messages, wait for all of them.
- A repeated SUBSCRIBE replaces the subscription's QoS (MQTT-3.8.4-3; fault 16).
- Delivery looks up the filters that can match a topic (fault 8, subscriptions.py).
"""

from __future__ import annotations

from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.events import BrokerEvents
from amqtt.session import Session

from broker.handler import CredHandler
from broker.metrics import BrokerStats
from broker.subscriptions import SubscriptionTable

MAX_QUEUED_MESSAGES = 1000  # per offline session, as Mosquitto's max_queued_messages
REFUSED = 0x80  # SUBACK return code (MQTT 3.1.1 section 3.9.3)


class DeliveryBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    def __init__(
        self,
        config: dict[str, Any],
        *,
        stats: BrokerStats,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
    ) -> None:
        if max_queued_messages < 1:
            raise ValueError("max_queued_messages must be at least 1")
        super().__init__(config)
        self._subscriptions = SubscriptionTable()
        self.stats = stats
        self.max_queued_messages = max_queued_messages

    def _handler(self, session: Session) -> CredHandler | None:
        handler = self._get_handler(session)
        return handler if isinstance(handler, CredHandler) else None

    def _refuse_dollar_topic(self, session: Session, topic: str) -> None:
        """Account for a refused PUBLISH to a `$` topic (CredBroker counts and audits)."""

    # -- from a client --------------------------------------------------------------------

    async def _handle_message_delivery(
        self, client_session: Session, handler: Any, wait_deliver: Any
    ) -> bool:
        """A PUBLISH received from a client, to its subscribers (and the retained store).

        Malformed topic names never get here: packets.py closes the connection first.
        """
        message = wait_deliver.result()
        client_id = client_session.client_id
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_RECEIVED, client_id=client_id, message=message
        )
        if message is None:
            return True
        topic = message.topic
        if topic.startswith("$"):
            # MQTT 3.1.1 section 4.7.2: `$` topics are the server's own, and it SHOULD
            # keep clients from exchanging messages through them (non-normative: "cannot
            # use a topic with a leading $ character for their own purposes"). Such a
            # PUBLISH is well formed, so no protocol violation (section 4.8) and no reason
            # to close: it is refused as an ACL violation is, whatever the ACL says
            # (acknowledged, as 3.1.1 has no negative PUBACK, and never delivered), and the
            # connection goes on.
            self._refuse_dollar_topic(client_session, topic)
            return True
        if not await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
            return True
        await self.plugins_manager.fire_event(
            BrokerEvents.MESSAGE_BROADCAST, client_id=client_id, message=message
        )
        # With its QoS: stock amqtt left it out, and delivered at each subscription's.
        await self._broadcast_message(client_session, topic, message.data, message.qos)
        if message.publish_packet is not None and message.publish_packet.retain_flag:
            await self.retain_message(client_session, topic, message.data, message.qos)
        return True

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """MQTT-3.8.4-3: a SUBSCRIBE to a filter the session already has replaces that
        subscription, QoS included; stock amqtt kept the old QoS."""
        granted: int = await super().add_subscription(subscription, session)
        if granted != REFUSED:
            entries = self._subscriptions[subscription[0]]
            for index, (subscriber, _) in enumerate(entries):
                if subscriber.client_id == session.client_id:
                    entries[index] = (subscriber, granted)
        return granted

    # -- to subscribers -------------------------------------------------------------------

    async def _run_broadcast(self, running_tasks: Any) -> None:
        """One queued message to every matching subscription, over candidate filters only."""
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for topic_filter, subscriptions in self._subscriptions.candidates(topic):
            if topic_filter != topic and not self._matches(topic, topic_filter):
                continue
            for target, sub_qos in list(subscriptions):
                qos = min(broadcast.get("qos", sub_qos), sub_qos)  # MQTT-3.8.4-6
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
                    handler.deliver(topic, broadcast["data"], qos, retain=False)

    async def _retain_broadcast_message(
        self, broadcast: dict[str, Any], qos: int, target_session: Session
    ) -> None:
        """Keep a QoS 1 or 2 message for an offline persistent session. At the bound the
        oldest kept message is dropped and counted: a device that comes back after a long
        absence gets the latest `max_queued_messages`. (Mosquitto's max_queued_messages
        drops the new message instead.)"""
        queue = target_session.retained_messages
        while queue.qsize() >= self.max_queued_messages:
            queue.get_nowait()
            self.stats.queue_dropped.inc()
        await super()._retain_broadcast_message(broadcast, qos, target_session)

    async def _publish_session_retained_messages(self, session: Session) -> None:
        """What was kept while the session was offline, in order. These messages are
        forwarded because of a subscription, so RETAIN=0 (MQTT 3.1.1 section 3.3.1.3,
        MQTT-3.3.1-9); stock amqtt sent them with RETAIN=1."""
        handler = self._handler(session)
        queue = session.retained_messages
        while handler is not None and not queue.empty():
            kept = queue.get_nowait()
            handler.deliver(kept.topic, kept.data, kept.qos, retain=False)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """The retained messages a subscription matches (section 3.3.1.3), RETAIN=1, each
        at the lower of its own QoS and the subscription's. Stock amqtt sent a QoS 0
        retained message at the subscription's QoS (`retained.qos or qos`)."""
        handler = self._handler(session)
        topic_filter, sub_qos = subscription
        for topic, retained in list(self._retained_messages.items()):
            if handler is not None and self._matches(topic, topic_filter):
                qos = min(sub_qos, retained.qos or 0)
                handler.deliver(topic, retained.data, qos, retain=True)
