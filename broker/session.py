"""Sessions as amqtt keeps them, without a state machine library per session.

Stock amqtt 0.12.1 gives every session a `transitions.Machine` (three states, five
transitions): building it was a third of the broker's CPU per CONNECT, and about 16 KiB
of the 23 KiB a session object holds. `SessionStates` is the same three states and two
triggers with the surface amqtt and this package use (`state`, `connect()`,
`disconnect()`, `is_connected()`), and the same bookkeeping on entering a state.

`session_from_connect` reads a CONNECT (already read whole by `broker.connect`) into a
`CredSession` with the checks of stock amqtt's `BrokerProtocolHandler.init_from_connect`,
which builds a stock `Session`: malformed packets raise `MQTTError`; credentials flags
without their fields get CONNACK 4 and a persistent session without a client id
CONNACK 2 (MQTT-3.1.3-8), as stock. No plugin event is fired: this broker loads no
plugins.
"""

from __future__ import annotations

from typing import Any

from amqtt.adapters import WriterAdapter
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import BAD_USERNAME_PASSWORD, IDENTIFIER_REJECTED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.session import Session

from broker.connect import BufferReader
from broker.slim import SlimQueue


class SessionStates:
    """new -> connected <-> disconnected; `disconnect()` from any state, `connect()` from
    any but connected (a ValueError, which amqtt catches as it does the library's)."""

    __slots__ = ("_session", "state")

    def __init__(self, session: Session) -> None:
        self._session = session
        self.state = "new"

    def connect(self) -> None:
        if self.state == "connected":
            raise ValueError("the session is already connected")
        self.state = "connected"
        self._session._on_enter_connected()

    def disconnect(self) -> None:
        self.state = "disconnected"
        self._session._on_enter_disconnected()

    def is_new(self) -> bool:
        return self.state == "new"

    def is_connected(self) -> bool:
        return self.state == "connected"

    def is_disconnected(self) -> bool:
        return self.state == "disconnected"


class CredSession(Session):  # type: ignore[misc]  # amqtt is untyped
    def __init__(self) -> None:
        super().__init__()
        # asyncio queues cost ~3 KiB each even when empty, as an idle session's are.
        self.retained_messages: SlimQueue[Any] = SlimQueue()
        self.delivered_message_queue: SlimQueue[Any] = SlimQueue()

    def _init_states(self) -> None:
        self.transitions = SessionStates(self)


async def session_from_connect(raw: bytes, writer: WriterAdapter) -> CredSession:
    connect = await ConnectPacket.from_stream(BufferReader(raw))
    header, payload = connect.variable_header, connect.payload
    if header is None or payload is None or payload.client_id is None:
        raise MQTTError("CONNECT without its variable header or client identifier")
    if header.will_flag and (payload.will_topic is None or payload.will_message is None):
        raise MQTTError("will flag set, but no will topic or message")
    if header.reserved_flag:
        raise MQTTError("[MQTT-3.1.2-3] CONNECT reserved flag must be 0")
    refusal = _refusal(connect)
    if refusal is not None:
        await ConnackPacket.build(0, refusal).to_stream(writer)
        await writer.close()
        raise MQTTError(f"CONNECT refused with {refusal}")
    session = CredSession()
    session.client_id = connect.client_id
    session.clean_session = connect.clean_session_flag
    session.will_flag = connect.will_flag
    session.will_retain = connect.will_retain_flag
    session.will_qos = connect.will_qos
    session.will_topic = connect.will_topic
    session.will_message = connect.will_message
    session.username = connect.username
    session.password = connect.password
    session.remote_address, session.remote_port = writer.get_peer_info() or (None, None)
    session.ssl_object = writer.get_ssl_info()
    session.keep_alive = max(connect.keep_alive, 0)
    return session


def _refusal(connect: ConnectPacket) -> int | None:
    if not connect.username_flag and connect.password_flag:
        return int(BAD_USERNAME_PASSWORD)  # MQTT-3.1.2-22
    if (connect.username_flag and connect.username is None) or (
        connect.password_flag and connect.password is None
    ):
        return int(BAD_USERNAME_PASSWORD)
    if connect.clean_session_flag is False and connect.payload.client_id_is_random:
        return int(IDENTIFIER_REJECTED)  # MQTT-3.1.3-8
    return None
