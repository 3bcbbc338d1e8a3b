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

And MQTT 5.0's delivery (broker/v5.py has the rest): subscription options (no local,
retain as published, retain handling; section 3.8.3.1), kept per session for its
non-default filters, and shared subscriptions (`$share/{group}/{filter}`, section 4.8.2),
each message to one subscriber of each matching group in turn, a connected one first.
A message's properties ride on its payload (properties.py), to live, queued and retained
copies alike.
"""

from __future__ import annotations

from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.events import BrokerEvents
from amqtt.session import Session

from broker import properties
from broker.handler import CredHandler
from broker.metrics import BrokerStats
from broker.subscriptions import DEFAULT, Options, SubscriptionTable, shared

OPTIONS = "credbroker.options"  # session attribute: {filter: Options} where not DEFAULT

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
        retain = message.publish_packet is not None and message.publish_packet.retain_flag
        await self.publish(client_session, topic, message.data, message.qos, retain)
        return True

    async def publish(
        self, session: Session | None, topic: str, data: bytes | bytearray, qos: int, retain: bool
    ) -> None:
        """A message to its subscribers, and to the retained store if `retain`."""
        # With its QoS (stock amqtt left it out, and delivered at each subscription's),
        # and its RETAIN flag for subscriptions that keep it (retain as published).
        broadcast = {"session": session, "topic": topic, "data": data, "qos": qos}
        if retain:
            broadcast["retain"] = True
        await self._broadcast_queue.put(broadcast)
        if retain:
            await self.retain_message(session, topic, data, qos)

    async def _handle_subscription(
        self, client_session: Session, handler: Any, subscribe_waiter: Any
    ) -> None:
        """Stock amqtt's, with each filter's options: retained messages are sent as its
        Retain Handling says (never for a shared subscription, section 4.8.2)."""
        subscriptions = subscribe_waiter.result()
        topics = subscriptions.topics
        edge = handler.edge if isinstance(handler, CredHandler) else None
        chosen = edge.subscribed.get(subscriptions.packet_id) if edge is not None else None
        options = chosen if chosen is not None and len(chosen) == len(topics) else None
        codes, sends = [], []
        for index, subscription in enumerate(topics):
            option = DEFAULT if options is None else options[index]
            existed = self._subscribed(client_session, subscription[0])
            code = await self.add_subscription(subscription, client_session)
            codes.append(code)
            if code == REFUSED:
                continue
            self._keep_options(client_session, subscription[0], option)
            if shared(subscription[0]) is None and (
                option.retain_handling == 0 or (option.retain_handling == 1 and not existed)
            ):
                sends.append(subscription)
        await handler.mqtt_acknowledge_subscription(subscriptions.packet_id, codes)
        for subscription in sends:
            await self._publish_retained_messages_for_subscription(subscription, client_session)

    def _subscribed(self, session: Session, topic_filter: str) -> bool:
        entries = self._subscriptions.get(topic_filter, ())
        return any(subscriber.client_id == session.client_id for subscriber, _ in entries)

    @staticmethod
    def _keep_options(session: Session, topic_filter: str, option: Options) -> None:
        kept: dict[str, Options] | None = session.attributes.get(OPTIONS)
        if option == DEFAULT:
            if kept is not None:
                kept.pop(topic_filter, None)
            return
        if kept is None:
            kept = session.attributes[OPTIONS] = {}
        kept[topic_filter] = option

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        """MQTT-3.8.4-3: a SUBSCRIBE to a filter the session already has replaces that
        subscription, QoS included; stock amqtt kept the old QoS. A malformed shared
        subscription is refused."""
        try:
            shared(subscription[0])
        except ValueError:
            return REFUSED
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
        source = broadcast.get("session")
        publisher = source.client_id if source is not None else None
        for topic_filter, subscriptions in self._subscriptions.candidates(topic):
            if topic_filter != topic and not self._matches(topic, topic_filter):
                continue
            for target, sub_qos in list(subscriptions):
                option = _options(target, topic_filter)
                if option.no_local and target.client_id == publisher:
                    continue
                await self._deliver(broadcast, target, sub_qos, option)
        for _, inner, subscriptions in self._subscriptions.shared_groups():
            if inner == topic or self._matches(topic, inner):
                target, sub_qos = _next_in_turn(subscriptions)
                await self._deliver(broadcast, target, sub_qos, DEFAULT)

    async def _deliver(
        self, broadcast: dict[str, Any], target: Session, sub_qos: int, option: Options
    ) -> None:
        """One subscription's copy of a message: sent, kept for a persistent session's
        return, or dropped."""
        topic = broadcast["topic"]
        qos = min(broadcast.get("qos", sub_qos), sub_qos)  # MQTT-3.8.4-6
        if not await self._topic_filtering(target, topic=topic, action=Action.RECEIVE):
            return
        connected = target.transitions.state == "connected"
        if option.subscription_id is not None:  # this copy says which subscription
            data = properties.identified(broadcast["data"], option.subscription_id)
            broadcast = {**broadcast, "data": data}
        handler = self._handler(target) if connected else None
        if not connected and not target.clean_session and qos in (1, 2) and not target.is_anonymous:
            await self._retain_broadcast_message(broadcast, qos, target)  # for resume
        elif handler is not None:
            retain = option.retain_as_published and broadcast.get("retain", False)
            handler.deliver(topic, broadcast["data"], qos, retain=retain)

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
        if shared(topic_filter) is not None:
            return  # section 4.8.2: no retained messages for a shared subscription
        option = _options(session, topic_filter)
        for topic, retained in list(self._retained_messages.items()):
            if handler is not None and self._matches(topic, topic_filter):
                qos = min(sub_qos, retained.qos or 0)
                data = retained.data
                if option.subscription_id is not None:
                    data = properties.identified(data, option.subscription_id)
                handler.deliver(topic, data, qos, retain=True)


def _options(session: Session, topic_filter: str) -> Options:
    """The session's options for a filter (most sessions keep none: all DEFAULT)."""
    kept: dict[str, Options] | None = session.attributes.get(OPTIONS)
    return DEFAULT if kept is None else kept.get(topic_filter, DEFAULT)


def _next_in_turn(subscribers: list[tuple[Any, int]]) -> tuple[Any, int]:
    """A shared group's next subscriber, a connected one if any; it goes to the back of
    the line, so that the group's subscribers take the messages in turn."""
    index = next(
        (i for i, (s, _) in enumerate(subscribers) if s.transitions.state == "connected"), 0
    )
    chosen = subscribers.pop(index)
    subscribers.append(chosen)
    return chosen
