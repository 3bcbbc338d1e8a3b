"""`CredHandler`: amqtt's per-connection protocol handler, with outgoing QoS 1 and QoS 2
flows that lose nothing and duplicate nothing.

Stock amqtt 0.12.1 forgets an outgoing message whose acknowledgement has not come when
the connection ends (QoS 1: fault 7; QoS 2: fault 12), gives up on an acknowledgement
after 5 s so that a late one is ignored and the message is sent again on resume (fault
13), and frees a QoS 2 message's packet identifier at PUBREC, before PUBCOMP.

Here an outgoing QoS 1 or 2 message stays in its session's `inflight_out` from its
PUBLISH until its PUBACK or PUBCOMP (MQTT 3.1.1 sections 2.3.1 and 4.3), whatever happens
to the connection, and the session's next connection resends it (section 4.4,
MQTT-4.4.0-1: PUBLISH with DUP=1 if no PUBREC came, PUBREL if one did). An
acknowledgement is awaited as long as the connection lasts: MQTT 3.1.1 resends only on
reconnect, so a timeout can only turn a late acknowledgement into a duplicate. Nothing
of the broker waits for a client's acknowledgement: `deliver` follows each flow in the
background, and the flows end with the connection. A connection that ends, or is taken
over, while it starts still ends its session (fault 17).

Receiving, it keeps little per idle connection (README, Benchmarks, Memory): its reader
loop waits without a task of its own per read, and `next_work` hands the broker's
message loop its SUBSCRIBEs, UNSUBSCRIBEs, received messages and end through one future,
where stock amqtt kept four tasks waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from amqtt.errors import MQTTError, NoDataError, ProtocolHandlerError
from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import OUTGOING, Session

from broker import packets, properties, v5, v5out
from broker.errors import ConnectionEnded
from broker.packets import PacketReader
from broker.slim import SlimEvent, SlimQueue

log = logging.getLogger("credbroker.broker")
# The kinds of work `CredHandler.next_work` hands the broker's message loop.
DISCONNECTED, SUBSCRIBED, UNSUBSCRIBED, RECEIVED = "disconnected", "sub", "unsub", "received"
Waiters = dict[int, asyncio.Future[Any]]
# The packets a client may send after CONNECT (packets.py lets no other through), and
# the handler method of each, as in stock amqtt's reader loop.
_HANDLERS = {
    packets.PUBLISH: "handle_publish",
    packets.PUBACK: "handle_puback",
    packets.PUBREC: "handle_pubrec",
    packets.PUBREL: "handle_pubrel",
    packets.PUBCOMP: "handle_pubcomp",
    packets.SUBSCRIBE: "handle_subscribe",
    packets.UNSUBSCRIBE: "handle_unsubscribe",
    packets.PINGREQ: "handle_pingreq",
    packets.DISCONNECT: "handle_disconnect",
}


_UNBOUNDED = contextlib.nullcontext()


def _publish_packet(message: Any, *, dup: bool) -> PublishPacket:
    """amqtt's PUBLISH of an outgoing message, with its payload as it came: amqtt copies
    it to plain bytes, which would lose its 5.0 properties (properties.py)."""
    packet: PublishPacket = message.build_publish_packet(dup=dup)
    if isinstance(message.data, properties.Payload):
        packet.data = message.data
    return packet


def _drain(queue: SlimQueue[Any]) -> list[Any]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


class CredHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt is untyped
    _closing: asyncio.Future[None] | None = None
    _disconnect_waiter: asyncio.Future[Any] | None  # set by amqtt's __init__
    _disconnected: asyncio.Future[Any] | None = None  # the waiter the message loop watches
    _bell: asyncio.Future[None] | None = None  # what the message loop awaits
    _last: list[tuple[str, Any]] | None = None  # what it handles after the end
    _ended = False
    _early_disconnect: tuple[Any] | None = None
    # An MQTT 5.0 connection's edge (broker/v5.py), and the client's Receive Maximum as a
    # bound on the QoS 1 and 2 PUBLISHes it has unacknowledged (section 4.9).
    edge: v5.Edge | None = None
    _quota: asyncio.Semaphore | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flows: set[asyncio.Future[Any]] = set()
        # An asyncio queue costs ~3 KiB even when empty; most connections never
        # unsubscribe, and subscribe once (slim.py).
        self._pending_subscriptions: SlimQueue[Any] = SlimQueue(self._ring)
        self._pending_unsubscriptions: SlimQueue[Any] = SlimQueue(self._ring)

    async def start(self) -> None:
        """Stock `ProtocolHandler.start` and `BrokerProtocolHandler.start` in one, with
        slim events (slim.py) and no write keep-alive timer: a broker's
        `handle_write_timeout` does nothing, yet amqtt kept a timer per connection and
        re-armed it for every packet sent. (The read keep-alive is the reader loop's.)"""
        if not self._is_attached():
            raise ProtocolHandlerError("Handler is not attached to a stream")
        self._reader_ready = SlimEvent()
        self._reader_stopped = SlimEvent()
        self._reader_task = asyncio.create_task(self._reader_loop())
        await self._reader_ready.wait()
        await self._retry_deliveries()
        waiter = self._disconnect_waiter
        if waiter is None or waiter.done():
            waiter = self._disconnect_waiter = asyncio.get_running_loop().create_future()
        # Stock amqtt makes the disconnect waiter only here, after the reader has started
        # and the session's unacknowledged messages have been resent. A connection that
        # ended, or was taken over, in between resolved no waiter, and its session stayed
        # "connected" for good (fault 17).
        if self._early_disconnect is not None and not waiter.done():
            waiter.set_result(self._early_disconnect[0])

    async def handle_disconnect(self, disconnect: Any) -> None:
        if self._disconnect_waiter is None and self._early_disconnect is None:
            self._early_disconnect = (disconnect,)  # before start() made its waiter
        await super().handle_disconnect(disconnect)

    # -- sending ---------------------------------------------------------------------

    def speaks_5(self, edge: v5.Edge) -> None:
        self.edge = edge
        if edge.receive_max < v5.RECEIVE_MAXIMUM_DEFAULT:
            self._quota = asyncio.Semaphore(edge.receive_max)

    def deliver(self, topic: str, data: bytes | bytearray, qos: int, *, retain: bool) -> None:
        """Send a message to this connection's client and follow its flow in the
        background, so that no caller waits for the client's acknowledgement.

        A message past its expiry interval is not sent (MQTT 5.0 section 3.3.2.3.3), nor
        one larger than a 5.0 client's Maximum Packet Size (3.1.2.11.4: as if sent)."""
        if properties.expired(data) or not self._fits(topic, data, qos):
            return
        self._follow(self.mqtt_publish(topic, data, qos, retain))

    def _fits(self, topic: str, data: bytes | bytearray, qos: int) -> bool:
        edge = self.edge
        if edge is None or edge.max_packet_size is None:
            return True
        return edge.fits(v5out.publish_size(topic, data, qos))

    async def _send_packet(self, packet: Any) -> None:
        """A 5.0 client's PUBLISH goes out with its message's properties (v5out.publish)."""
        if self.edge is None or not isinstance(packet, PublishPacket):
            await super()._send_packet(packet)
            return
        if self.writer is not None:
            async with self._write_lock:
                self.writer.write_5(v5out.publish(packet))
                await self.writer.drain()

    def _follow(self, flow: Any) -> None:
        task = asyncio.ensure_future(flow)
        self._flows.add(task)  # keep a reference until done (asyncio holds only weak ones)
        task.add_done_callback(self._flow_done)

    def _flow_done(self, task: asyncio.Future[Any]) -> None:
        self._flows.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("message flow ended: %r", task.exception())

    async def _retry_deliveries(self) -> None:
        """MQTT 3.1.1 section 4.4: resend, in order, what the session's last connection
        left unacknowledged. Stock amqtt held the session's start up to 10 s here for the
        acknowledgements, then forgot the flows that had not finished."""
        session = self._session()
        for message in [*session.inflight_in.values(), *session.inflight_out.values()]:
            self._follow(self._handle_message_flow(message))

    async def _handle_qos1_message_flow(self, message: Any) -> None:
        if message.direction != OUTGOING:
            await super()._handle_qos1_message_flow(message)
            return
        session, packet_id = self._session(), message.packet_id
        session.inflight_out[packet_id] = message  # until PUBACK, across connections
        async with self._quota or _UNBOUNDED:
            waiter = self._expect(self._puback_waiters, packet_id)
            await self._send_publish(message)
            message.puback_packet = await self._acknowledged(
                self._puback_waiters, packet_id, waiter
            )
        session.inflight_out.pop(packet_id, None)

    async def _handle_qos2_message_flow(self, message: Any) -> None:
        if message.direction != OUTGOING:
            if self._ended:  # a resend on resume that came too late to wait for PUBREL
                raise ConnectionEnded(message.packet_id)
            await super()._handle_qos2_message_flow(message)
            return
        session, packet_id = self._session(), message.packet_id
        session.inflight_out[packet_id] = message  # until PUBCOMP, across connections
        async with self._quota or _UNBOUNDED:
            if message.pubrec_packet is None:  # after PUBREC, never the PUBLISH again (4.3.3)
                waiter = self._expect(self._pubrec_waiters, packet_id)
                await self._send_publish(message)
                message.pubrec_packet = await self._acknowledged(
                    self._pubrec_waiters, packet_id, waiter
                )
            waiter = self._expect(self._pubcomp_waiters, packet_id)
            message.pubrel_packet = PubrelPacket.build(packet_id)
            await self._send_packet(message.pubrel_packet)
            message.pubcomp_packet = await self._acknowledged(
                self._pubcomp_waiters, packet_id, waiter
            )
        session.inflight_out.pop(packet_id, None)

    async def _send_publish(self, message: Any) -> None:
        # MQTT-3.3.1-1: DUP=1 when this PUBLISH may have been sent before.
        packet = _publish_packet(message, dup=message.publish_packet is not None)
        await self._send_packet(packet)
        message.publish_packet = packet

    async def _handle_qos0_message_flow(self, message: Any) -> None:
        if message.direction != OUTGOING:
            await super()._handle_qos0_message_flow(message)
            return
        packet = _publish_packet(message, dup=False)
        await self._send_packet(packet)
        message.publish_packet = packet

    def _expect(self, waiters: Waiters, packet_id: int) -> asyncio.Future[Any]:
        """A waiter for an acknowledgement, set up before the packet it answers is sent
        (stock amqtt set it up after, and an early answer found nobody waiting)."""
        if self._ended:
            raise ConnectionEnded(packet_id)
        old = waiters.get(packet_id)
        if old is not None:
            old.cancel()  # an older flow of the same message gives way
        waiter = waiters[packet_id] = asyncio.get_running_loop().create_future()
        return waiter

    @staticmethod
    async def _acknowledged(waiters: Waiters, packet_id: int, waiter: asyncio.Future[Any]) -> Any:
        """The acknowledgement, however late; cancelled when the connection ends."""
        try:
            return await waiter
        finally:
            if waiters.get(packet_id) is waiter:
                del waiters[packet_id]

    def _stop_waiters(self) -> None:
        self._ended = True  # from here on, a flow keeps its message for the next connection
        super()._stop_waiters()

    def _session(self) -> Session:
        assert self.session is not None  # noqa: S101 - flows run on an attached handler
        return self.session

    # -- receiving ---------------------------------------------------------------------

    async def _reader_loop(self) -> None:
        """Stock amqtt's reader loop, but for what it cost per connection: the read
        timeout is `asyncio.timeout`, where `asyncio.wait_for` made a task for every
        packet read (one always waiting on an idle connection, ~1.5 KiB with its timer),
        and each packet's handling task is kept in a set until it is done, where stock
        kept a 760-byte deque swept at the next packet. packets.py has checked each
        packet, so only a client's packets get here (CONNECT again is a violation)."""
        session = self._session()
        ready, stopped = self._reader_ready, self._reader_stopped
        assert ready is not None  # noqa: S101 - made by start(), which starts this loop
        keep_alive = session.keep_alive if session.keep_alive > 0 else None
        handling: set[asyncio.Task[None]] = set()
        while self.reader is not None:
            try:
                ready.set()
                async with asyncio.timeout(keep_alive):
                    if isinstance(self.reader, PacketReader):
                        await self.reader.fill()  # the wait, in fewer frames
                    fixed_header = await MQTTFixedHeader.from_stream(self.reader)
                if not fixed_header:
                    break  # end of stream
                await self._dispatch(fixed_header, handling)
            except MQTTError:
                log.debug("%s: packet discarded", session.client_id, exc_info=True)
            except asyncio.CancelledError:
                break
            except TimeoutError:
                self.handle_read_timeout()
            except NoDataError:
                pass
            except Exception as exc:  # as stock: the connection ends
                log.warning("%s: reader loop ended: %r", session.client_id, exc)
                break
        for task in list(handling):
            task.cancel()
        await self.handle_connection_closed()
        stopped.set()
        await self.stop()

    async def _dispatch(self, fixed_header: Any, handling: set[asyncio.Task[None]]) -> None:
        """Read the packet whose fixed header was read, and start its handling task. (A
        method of its own so that an idle connection keeps nothing of its last packet.)"""
        session = self._session()
        packet = await packet_class(fixed_header).from_stream(
            self.reader, fixed_header=fixed_header
        )
        if self.edge is not None and fixed_header.packet_type == packets.PUBLISH:
            # Its 5.0 properties, which the edge read with it, ride on its payload.
            packet.data = properties.carry(packet.data, self.edge.incoming.popleft())
        await self.plugins_manager.fire_event(
            MQTTEvents.PACKET_RECEIVED, packet=packet, session=session
        )
        handle = getattr(self, _HANDLERS.get(fixed_header.packet_type, ""), None)
        if handle is None:
            log.warning("%s: unhandled packet %r", session.client_id, packet)
            return
        task = asyncio.create_task(handle(packet))
        handling.add(task)
        task.add_done_callback(handling.discard)

    async def next_work(self) -> tuple[str, Any]:
        """What the broker's message loop handles next for this connection: a SUBSCRIBE,
        an UNSUBSCRIBE or a received message, each kind in arrival order; once the
        connection has ended, what `_last_work` says, and last the end itself (the
        DISCONNECT packet, or None).

        Stock amqtt's loop waited on a task per kind (and made a new one per message)
        with asyncio.wait: ~5 KiB per idle connection. Here the queues (slim.py) and the
        disconnect waiter ring one future. Nothing waits on the session's message queue,
        which a persistent session's connections share (fault 10)."""
        if self._disconnected is None:  # the first call, as the loop starts
            waiter = self._disconnect_waiter
            if waiter is None:  # ended already: amqtt resets the waiter as it resolves it
                waiter = asyncio.get_running_loop().create_future()
                waiter.set_result(None)
            self._disconnected = waiter
            waiter.add_done_callback(self._ring)
            self._session().delivered_message_queue.watch(self._ring)
        messages = self._session().delivered_message_queue
        while True:
            if self._disconnected.done():
                return self._last_work()
            for kind, queue in (
                (SUBSCRIBED, self._pending_subscriptions),
                (UNSUBSCRIBED, self._pending_unsubscriptions),
                (RECEIVED, messages),
            ):
                if not queue.empty():
                    return kind, queue.get_nowait()
            self._bell = asyncio.get_running_loop().create_future()
            await self._bell

    def _last_work(self) -> tuple[str, Any]:
        """Once the connection has ended: the SUBSCRIBEs and UNSUBSCRIBEs it had queued
        by then, then the end. Packets are handled in order (MQTT 3.1.1 section 4.6): a
        persistent session keeps a SUBSCRIBE sent with the DISCONNECT, as in stock amqtt,
        whose loop handled what its tasks had taken. Only those, so that a client cannot
        put its cut off (a revoked token) by sending more. (Received messages are
        delivered by the broker's disconnect handling, fault 3.)"""
        assert self._disconnected is not None  # noqa: S101 - set by next_work
        if self._last is None:
            self._last = [(SUBSCRIBED, s) for s in _drain(self._pending_subscriptions)]
            self._last += [(UNSUBSCRIBED, u) for u in _drain(self._pending_unsubscriptions)]
        if self._last:
            return self._last.pop(0)
        return DISCONNECTED, self._disconnected.result()

    def _ring(self, _: object = None) -> None:
        bell = self._bell
        if bell is not None and not bell.done():
            bell.set_result(None)

    def stop_waiting_for_messages(self) -> None:
        """The session's message queue outlives this connection (a persistent session):
        it rings this connection's loop no more."""
        if self.session is not None:
            self.session.delivered_message_queue.unwatch(self._ring)

    def handle_read_timeout(self) -> None:
        # Stock amqtt ignores a silent client forever (amqtt#308). The read timeout is
        # already 1.5 x keep-alive (set at CONNECT): the client is gone.
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.handle_connection_closed())
