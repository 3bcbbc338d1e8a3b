"""paho-mqtt clients driven by one asyncio loop (as aiomqtt does), so one process holds
thousands of MQTT connections without a thread each.

paho tells us when its socket opens, closes and wants writing; the loop calls
`loop_read`/`loop_write` when the socket is ready, and one ticker calls `loop_misc`
(keep-alive) for every client. The TCP connect is the loop's too (paho's would block):
the connected socket is handed to paho, so every paho call happens on the loop's thread.

MQTT 5.0 clients are the device SDK's `AuthClient` (paho plus the AUTH packet): their
token is the Authentication Data of `credbroker-token`, and `reauthenticate` refreshes
it in the connection (MQTT 5.0 section 4.12).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from device_sdk._client import PROTOCOLS, SESSION_EXPIRY
from device_sdk._mqtt5 import SUCCESS, AuthClient, token_properties
from device_sdk._policy import connack_code

MessageHandler = Callable[[str, bytes], None]


class Driver:
    """The loop side: readiness callbacks and the keep-alive ticker for all clients."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.clients: set[AsyncClient] = set()
        self._ticker = loop.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for client in list(self.clients):
                client.paho.loop_misc()

    async def close(self) -> None:
        self._ticker.cancel()
        for client in list(self.clients):
            client.close()


class _HandedSocketClient(AuthClient):
    """paho, given a socket the loop has already connected instead of making its own."""

    handed: socket.socket | None = None

    def _create_socket(self) -> Any:
        sock, self.handed = self.handed, None
        if sock is None:
            raise ConnectionRefusedError("no connected socket to hand over")
        return sock


class AsyncClient:
    """One MQTT connection: `await connect()` gives the CONNACK return code (3.1.1) or
    reason code (5.0); `protocol` is "3.1.1" or "5"."""

    def __init__(
        self,
        driver: Driver,
        client_id: str,
        *,
        clean_session: bool = False,
        protocol: str = "3.1.1",
        on_message: MessageHandler | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.driver = driver
        self.five = protocol == "5"
        self.persistent = not clean_session
        self.cut_reason: int | None = None  # the server's DISCONNECT reason (5.0), if any
        self.on_message = on_message
        self.on_lost = on_lost
        self.connected = False
        self.session_present = False  # of the last CONNACK
        self._connack: asyncio.Future[int] | None = None
        self._acks: dict[int, asyncio.Future[list[int]]] = {}
        self._auth: asyncio.Future[bool] | None = None
        self.paho = _HandedSocketClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if self.five else clean_session,
            protocol=PROTOCOLS[protocol],
        )
        self.paho.on_auth = self._on_auth
        self.paho.on_socket_open = self._socket_open
        self.paho.on_socket_close = self._socket_close
        self.paho.on_socket_register_write = self._want_write
        self.paho.on_socket_unregister_write = self._done_writing
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_publish = self._on_publish
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = self._on_message

    # -- the API ---------------------------------------------------------------------------

    async def connect(
        self,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        keepalive: int = 60,
        bind_address: str = "",
        timeout: float = 30.0,
    ) -> int:
        """The CONNACK's code (0 accepted), or -1 if the connection closed first. With
        MQTT 5.0, `password` is the token, sent as Authentication Data (no password)."""
        loop = self.driver.loop
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if bind_address:
                sock.bind((bind_address, 0))
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        except (OSError, TimeoutError):
            sock.close()
            return -1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._connack = loop.create_future()
        self.cut_reason = None
        self.paho.handed = sock
        self.driver.clients.add(self)
        try:
            self._connect(host, port, keepalive, username, password)
        except OSError:
            self.driver.clients.discard(self)
            return -1
        try:
            return await asyncio.wait_for(asyncio.shield(self._connack), timeout)
        except TimeoutError:
            self.close()
            return -1

    def _connect(
        self, host: str, port: int, keepalive: int, username: str | None, password: str | None
    ) -> None:
        if not self.five:
            self.paho.username_pw_set(username, password)
            self.paho.connect(host, port, keepalive)
            return
        self.paho.username_pw_set(username, None)
        properties = token_properties(PacketTypes.CONNECT, password or "")
        if self.persistent:  # MQTT 5.0 section 3.1.2.11.2, as a 3.1.1 persistent session
            properties.SessionExpiryInterval = SESSION_EXPIRY
        self.paho.connect(
            host, port, keepalive, clean_start=not self.persistent, properties=properties
        )

    def reauthenticate(self, token: str) -> asyncio.Future[bool]:
        """MQTT 5.0 AUTH 0x19 with `token`: True at the server's AUTH 0x00, False if the
        connection ended first (a refusal is DISCONNECT 0x87)."""
        self._auth = self.driver.loop.create_future()
        self.paho.reauthenticate(token)
        return self._auth

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> asyncio.Future[list[int]]:
        """Resolves at the PUBACK (QoS 1) or once written (QoS 0); paho keeps QoS 1
        messages across reconnects of a persistent session."""
        info = self.paho.publish(topic, payload, qos=qos)
        return self._ack_future(info.mid)

    def subscribe(self, topic_filter: str, qos: int = 1) -> asyncio.Future[list[int]]:
        """Resolves with the granted QoS per filter (128 = refused)."""
        _, mid = self.paho.subscribe(topic_filter, qos=qos)
        return self._ack_future(mid or 0)

    def close(self) -> None:
        """DISCONNECT and forget the client."""
        self.connected = False
        self.paho.disconnect()
        self.driver.clients.discard(self)

    # -- paho's callbacks --------------------------------------------------------------------

    def _ack_future(self, mid: int) -> asyncio.Future[list[int]]:
        future = self._acks.get(mid)
        if future is None:  # paho writes from the loop: the ack cannot have come yet
            future = self._acks[mid] = self.driver.loop.create_future()
        return future

    def _resolve(self, mid: int, value: list[int]) -> None:
        future = self._acks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(value)

    def _socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self.driver.loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        self.paho.loop_read()

    def _socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._forget(sock)

    def _forget(self, sock: Any) -> None:
        self.driver.loop.remove_reader(sock)
        self.driver.loop.remove_writer(sock)

    def _want_write(self, client: Any, userdata: Any, sock: Any) -> None:
        self.driver.loop.add_writer(sock, self.paho.loop_write)

    def _done_writing(self, client: Any, userdata: Any, sock: Any) -> None:
        self.driver.loop.remove_writer(sock)

    def _on_auth(self, client: Any, reason: Any, properties: Any) -> None:
        self._answer_auth(reason.value == SUCCESS)

    def _answer_auth(self, granted: bool) -> None:
        if self._auth is not None and not self._auth.done():
            self._auth.set_result(granted)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        code = int(reason.value) if self.five else connack_code(reason)
        self.connected = code == 0
        self.session_present = bool(flags.session_present)
        self._settle(code)

    def _settle(self, code: int) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(code)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was_connected, self.connected = self.connected, False
        if flags.is_disconnect_packet_from_server:
            self.cut_reason = int(reason.value)
        self._settle(-1)
        self._answer_auth(False)
        self.driver.clients.discard(self)
        if was_connected and self.on_lost is not None:
            self.on_lost()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._resolve(mid, [0])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._resolve(mid, [int(getattr(c, "value", c)) for c in codes])

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message.topic, bytes(message.payload))
