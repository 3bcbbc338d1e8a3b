"""What an MQTT 5.0 session does once its connection has ended: it lingers for its
Session Expiry Interval (section 3.1.2.11.2), and publishes its will after the Will
Delay Interval (section 3.1.3.2.2), unless a new connection to the session comes first.

A new connection for the client id ends the lingering. Its pending will is then
dropped if the connection resumes the session, and published at once if the
connection starts a new session: the old session ends, and a will goes at its
session's end at the latest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import mqtt5
from amqtt.session import Session

from broker import properties

Publish = Callable[[Session, str, bytes | bytearray, int, bool], Coroutine[Any, Any, None]]
Expire = Callable[[str, Session], Coroutine[Any, Any, None]]
Spawn = Callable[[Coroutine[Any, Any, object]], None]


class Lingering:
    def __init__(self, publish: Publish, expire: Expire, spawn: Spawn) -> None:
        self._publish = publish
        self._expire = expire
        self._spawn = spawn
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._wills: dict[str, tuple[asyncio.TimerHandle, Callable[[], None]]] = {}

    def will_later(self, client_id: str, session: Session, will: mqtt5.Will, delay: int) -> None:
        """The session's will, `delay` seconds from now; its Message Expiry Interval
        counts from its publication."""
        topic, data = session.will_topic, session.will_message
        qos, retain = session.will_qos or 0, bool(session.will_retain)

        def publish() -> None:
            self._wills.pop(client_id, None)
            message = properties.carry(data, properties.of_publish(will))
            self._spawn(self._publish(session, topic, message, qos, retain))

        timer = asyncio.get_running_loop().call_later(delay, publish)
        self._wills[client_id] = (timer, publish)

    def expire_later(self, client_id: str, session: Session, seconds: int) -> None:
        def expire() -> None:
            self._expiries.pop(client_id, None)
            self._spawn(self._expire(client_id, session))

        self._expiries[client_id] = asyncio.get_running_loop().call_later(seconds, expire)

    def connecting(self, client_id: str, *, new_session: bool) -> None:
        """A CONNECT for the client id has been granted."""
        expiry = self._expiries.pop(client_id, None)
        if expiry is not None:
            expiry.cancel()
        will = self._wills.pop(client_id, None)
        if will is not None:
            will[0].cancel()
            if new_session:
                will[1]()

    def close(self) -> None:
        for timer in self._expiries.values():
            timer.cancel()
        for timer, _ in self._wills.values():
            timer.cancel()
