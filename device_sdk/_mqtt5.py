"""MQTT 5.0 re-authentication on paho: the AUTH packet (MQTT 5.0 sections 3.15, 4.12).

paho-mqtt 2.x neither sends nor understands AUTH: it ends the connection on one with
MQTT_ERR_PROTOCOL. `AuthClient` is the smallest extension that does: it queues an AUTH
as paho queues its own packets, and recognises a received one before paho's dispatch.

What it relies on in paho (paho-mqtt 2.2.0, the version tested; pyproject allows
`>=2.1,<3`, whose 2.x releases all have these names):

- `Client._packet_handle()`: paho's dispatch of one received packet, with the packet in
  `Client._in_packet["command"]` (the fixed header's first byte) and
  `Client._in_packet["packet"]` (the bytes after the remaining length). Overridden here
  for command 0xF0; every other packet goes to paho's own.
- `Client._packet_queue(command, packet, mid, qos)`: paho's queue of outgoing bytes, which
  wakes its network loop (or the asyncio driver's writer) as for any packet.
- `Client._pack_remaining_length(packet, length)`: MQTT's variable byte integer.
- `Client._protocol` and `Client._in_callback_mutex`, as paho's own handlers use them.
- `Client._reset_sockets()`, in `release()`: `loop_stop()` leaves the socket pair that
  wakes paho's thread open until the garbage collector finds the client.
- Public paho: `ReasonCode(PacketTypes.AUTH, identifier=...)`, `Properties(PacketTypes.AUTH)`
  with `pack()` and `unpack()`.

credbroker's method (DESIGN.md, MQTT 5): Authentication Method `credbroker-token`, the
token as Authentication Data, at CONNECT and in AUTH 0x19; the broker answers AUTH 0x00
(success) or DISCONNECT 0x87 (refused).
"""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

METHOD = "credbroker-token"
AUTH = 0xF0  # the AUTH packet's fixed header, MQTT 5.0 section 3.15.1
SUCCESS, RE_AUTHENTICATE = 0x00, 0x19

# (client, reason, properties) on paho's network thread, as paho's callbacks are.
OnAuth = Callable[["AuthClient", ReasonCode, Properties], None]


def token_properties(packet_type: int, token: str) -> Properties:
    """Authentication Method `credbroker-token` with `token` as its data."""
    properties = Properties(packet_type)  # type: ignore[no-untyped-call]
    properties.AuthenticationMethod = METHOD
    properties.AuthenticationData = token.encode()
    return properties


class AuthClient(mqtt.Client):
    """paho's `Client` that sends and receives MQTT 5.0 AUTH packets.

    Set `on_auth` to hear the server's AUTH (reason 0x00 after a re-authentication was
    granted). A refused re-authentication is a DISCONNECT, which paho reports to
    `on_disconnect` as usual.
    """

    on_auth: OnAuth | None = None

    def reauthenticate(self, token: str) -> MQTTErrorCode:
        """AUTH 0x19 with `token` as Authentication Data of `credbroker-token`."""
        return self.send_auth(RE_AUTHENTICATE, token_properties(PacketTypes.AUTH, token))

    def send_auth(self, reason: int, properties: Properties) -> MQTTErrorCode:
        """Queue one AUTH packet (MQTT 5.0 section 3.15): reason code, then properties."""
        if self._protocol != mqtt.MQTTv5:
            raise ValueError("AUTH is an MQTT 5.0 packet")
        body = ReasonCode(PacketTypes.AUTH, identifier=reason).pack() + properties.pack()  # type: ignore[no-untyped-call]
        packet = self._pack_remaining_length(bytearray([AUTH]), len(body)) + body
        return self._packet_queue(AUTH, packet, 0, 0)

    def release(self) -> None:
        """Close paho's sockets now, after `disconnect()` and `loop_stop()`."""
        self._reset_sockets()

    def _packet_handle(self) -> MQTTErrorCode:
        if self._protocol == mqtt.MQTTv5 and self._in_packet["command"] & 0xF0 == AUTH:
            return self._handle_auth(bytes(self._in_packet["packet"]))
        return super()._packet_handle()

    def _handle_auth(self, body: bytes) -> MQTTErrorCode:
        # Section 3.15.2.1: no variable header at all means reason 0x00, no properties.
        reason = ReasonCode(PacketTypes.AUTH, identifier=body[0] if body else SUCCESS)
        properties = Properties(PacketTypes.AUTH)  # type: ignore[no-untyped-call]
        if len(body) > 1:
            try:
                properties.unpack(body[1:])  # type: ignore[no-untyped-call]
            except Exception:  # paho's own decoders raise bare errors on malformed bytes
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
        handler = self.on_auth
        if handler is not None:
            with self._in_callback_mutex:
                handler(self, reason, properties)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
