"""`CredHandler`: amqtt's per-connection protocol handler, with credbroker's fixes."""

from __future__ import annotations

import asyncio
from typing import Any

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING


class CredHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt is untyped
    _closing: asyncio.Future[None] | None = None
    _delivery_waiter: asyncio.Task[Any] | None = None
    _early_disconnect: tuple[Any] | None = None

    async def start(self) -> None:
        await super().start()
        # Stock amqtt makes the disconnect waiter only at the end of start(), after the
        # reader has started and the session's unacknowledged messages have been resent.
        # A connection that ended, or was taken over, in between resolved no waiter, and
        # its session stayed "connected" for good (fault 17).
        waiter = self._disconnect_waiter
        if self._early_disconnect is not None and waiter is not None and not waiter.done():
            waiter.set_result(self._early_disconnect[0])

    async def handle_disconnect(self, disconnect: Any) -> None:
        if self._disconnect_waiter is None and self._early_disconnect is None:
            self._early_disconnect = (disconnect,)  # before start() made its waiter
        await super().handle_disconnect(disconnect)

    async def mqtt_deliver_next_message(self) -> Any:
        self._delivery_waiter = asyncio.current_task()
        return await super().mqtt_deliver_next_message()

    def stop_waiting_for_messages(self) -> None:
        """Stock amqtt leaves this connection's waiter on the session's message queue
        when the connection ends. A persistent session's next connection shares that
        queue, and the orphan took its first message: gone, though acknowledged."""
        waiter = self._delivery_waiter
        if waiter is not None and not waiter.done():
            waiter.cancel()  # asyncio.Queue.get hands a pending item on when cancelled

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        # Stock amqtt forgets an outgoing QoS 1 message whose PUBACK never came (the
        # connection dropped, or a refresh reconnect replaced it). MQTT 3.1.1 section
        # 4.4: keep it with the session, so start() resends it, DUP, on resume.
        try:
            await super()._handle_qos1_message_flow(app_message)
        except BaseException:
            if (
                self.session is not None
                and app_message.direction == OUTGOING
                and app_message.puback_packet is None
            ):
                self.session.inflight_out[app_message.packet_id] = app_message
            raise

    def handle_read_timeout(self) -> None:
        # Stock amqtt ignores a silent client forever (amqtt#308). The read timeout is
        # already 1.5 x keep-alive (set at CONNECT): the client is gone.
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.handle_connection_closed())
