"""A raw MQTT 5.0 client on a socket with the `mqtt5` codec: for what paho-mqtt 2.x will
not send (AUTH, topic aliases as we choose them) or will not show (each packet as it
comes, acknowledgements withheld)."""

from __future__ import annotations

import socket
from typing import Any

import mqtt5

from tests.stack import Stack

METHOD = "credbroker-token"


class Raw5:
    def __init__(self, stack: Stack, device_id: str, token: str, **connect: Any) -> None:
        """Connected with the token as Authentication Data (DESIGN.md, MQTT 5); `connect`
        adds CONNECT fields (clean_start, session_expiry_interval, receive_max, will...)."""
        self.sock = socket.create_connection(("127.0.0.1", stack.mqtt_port), timeout=10)
        self.buffer = b""
        self.held: list[Any] = []  # packets read past by `expect`, for `next`
        fields: dict[str, Any] = {"clean_start": True, "keep_alive": 30} | connect
        self.send(
            mqtt5.ConnectPacket(
                device_id,
                username=device_id,
                authentication_method=METHOD,
                authentication_data=token.encode(),
                **fields,
            )
        )

    def send(self, packet: Any) -> None:
        self.sock.sendall(bytes(packet.write()))

    def next(self) -> Any:
        """The next packet from the broker; None once it closed the connection."""
        if self.held:
            return self.held.pop(0)
        return self._read()

    def expect(self, kind: type) -> Any:
        """The next packet of `kind`; the others before it are held for `next`."""
        while True:
            packet = self._read()
            if packet is None or isinstance(packet, kind):
                return packet
            self.held.append(packet)

    def _read(self) -> Any:
        while True:
            if self.buffer:
                try:
                    packet, size = mqtt5.read(memoryview(self.buffer))
                except IndexError:  # not all of it yet
                    pass
                else:
                    self.buffer = self.buffer[size:]
                    return packet
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk

    def connack(self) -> mqtt5.ConnAckPacket:
        answer = self.next()
        assert isinstance(answer, mqtt5.ConnAckPacket), answer
        return answer

    def subscribe(self, packet_id: int, *filters: mqtt5.TopicFilter) -> mqtt5.SubAckPacket:
        self.send(mqtt5.SubscribePacket(packet_id, list(filters)))
        answer = self.expect(mqtt5.SubAckPacket)
        assert isinstance(answer, mqtt5.SubAckPacket), answer
        return answer

    def renew(self, token: str) -> Any:
        self.send(
            mqtt5.AuthPacket(
                reason_code=mqtt5.AuthReasonCode.RE_AUTHENTICATE,
                authentication_method=METHOD,
                authentication_data=token.encode(),
            )
        )
        return self.next()

    def close(self) -> None:
        self.sock.close()


def qos(level: int) -> mqtt5.QoS:
    return mqtt5.QoS(level)
