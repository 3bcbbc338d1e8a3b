"""`DeviceClient`: an MQTT connection that keeps its own token fresh.

MQTT 3.1.1 has no re-authentication, so a refresh is a reconnect with the new token as
password. The session is persistent (clean_session false) and paho keeps its outgoing
QoS 1 queue across the reconnect, so no QoS 1 message is lost. The refresh happens at
a jittered point around 80% of the token lifetime, on the monotonic clock.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device_sdk._errors import ConnectError, DeviceSDKError, TokenError
from device_sdk._keys import DevicePrivateKey
from device_sdk._tokens import Token, TokenSource

Handler = Callable[[str, bytes], None]
StateCallback = Callable[[str, dict[str, Any]], None]


class DeviceClient:
    """A device's MQTT client with automatic token refresh.

    Args:
        api_url: base URL of the credbroker API.
        device_id: this device's id (also its MQTT client id and username).
        private_key: the device key (see `generate_key`, `load_private_key`).
        mqtt_host: broker host.
        mqtt_port: broker port.
        tls: an `ssl.SSLContext` for MQTTS, or None for plain MQTT.
        state_dir: where the refresh token survives reboots; None keeps it in memory.
        refresh_at: fraction of the token lifetime at which to refresh.
        jitter: +/- fraction around `refresh_at`, so a fleet does not refresh at once.
        on_state: called with (state, details) on "connected", "refreshed",
            "disconnected" and "revoked".
    """

    def __init__(
        self,
        *,
        api_url: str,
        device_id: str,
        private_key: DevicePrivateKey,
        mqtt_host: str,
        mqtt_port: int = 1883,
        tls: ssl.SSLContext | None = None,
        state_dir: str | Path | None = None,
        refresh_at: float = 0.8,
        jitter: float = 0.05,
        keepalive: int = 60,
        on_state: StateCallback | None = None,
    ) -> None:
        self.device_id = device_id
        self.tokens = TokenSource(
            api_url=api_url, device_id=device_id, private_key=private_key, state_dir=state_dir
        )
        self.mqtt_host, self.mqtt_port, self.keepalive = mqtt_host, mqtt_port, keepalive
        self.refresh_at, self.jitter = refresh_at, jitter
        self.on_state = on_state or (lambda state, details: None)
        self._handlers: dict[str, Handler] = {}
        self._connected = threading.Event()
        self._answer: threading.Event = threading.Event()
        self._last_rc = 0
        self._timer: threading.Timer | None = None
        self._closed = False
        self._paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if tls is not None:
            self._paho.tls_set_context(tls)
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_message = self._on_message

    # -- public API ---------------------------------------------------------------------

    def connect(self, timeout: float = 30.0) -> None:
        """Get a token, connect, and keep the token fresh until `close()`."""
        token = self._fetch()
        self._paho.username_pw_set(self.device_id, token.access_token)
        self._answer.clear()
        self._paho.connect(self.mqtt_host, self.mqtt_port, keepalive=self.keepalive)
        self._paho.loop_start()
        if not self._answer.wait(timeout) or not self._connected.is_set():
            self._paho.loop_stop()
            raise ConnectError(
                f"broker refused or did not answer (code {self._last_rc})",
                return_code=self._last_rc,
            )
        self._schedule(token)

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Queue a message; QoS 1 messages survive refresh reconnects."""
        return self._paho.publish(topic, payload, qos=qos)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Call `handler(topic, payload)` for messages matching `topic_filter`."""
        self._handlers[topic_filter] = handler
        self._paho.subscribe(topic_filter, qos=qos)

    def close(self) -> None:
        self._closed = True
        if self._timer:
            self._timer.cancel()
        self._paho.disconnect()
        self._paho.loop_stop()

    def __enter__(self) -> DeviceClient:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- tokens ---------------------------------------------------------------------------

    def _fetch(self) -> Token:
        """One retry: the first refusal may have taught us the server's clock."""
        try:
            return self.tokens.fetch()
        except TokenError as first:
            if first.retry_after:
                time.sleep(min(first.retry_after, 60))
            try:
                return self.tokens.fetch()
            except TokenError as exc:
                self.on_state("revoked", {"error": str(exc)})
                raise

    def _schedule(self, token: Token) -> None:
        fraction = self.refresh_at + random.uniform(-self.jitter, self.jitter)  # noqa: S311
        due = token.obtained_at + token.expires_in * fraction - time.monotonic()
        self._timer = threading.Timer(max(due, 0.0), self._refresh)
        self._timer.daemon = True
        self._timer.start()

    def _refresh(self) -> None:
        if self._closed:
            return
        try:
            token = self._fetch()
        except DeviceSDKError:
            return  # reported through on_state("revoked")
        self._paho.username_pw_set(self.device_id, token.access_token)
        self._paho.reconnect()  # same session, same outgoing queue
        self.on_state("refreshed", {"expires_in": token.expires_in})
        self._schedule(token)

    # -- paho callbacks -------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._last_rc = int(rc.value)
        if rc.is_failure:
            self._connected.clear()
            client.disconnect()
        else:
            self._connected.set()
            for topic_filter in self._handlers:
                client.subscribe(topic_filter, qos=1)
            self.on_state("connected", {"session_present": bool(flags.session_present)})
        self._answer.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self._connected.clear()
        self.on_state("disconnected", {"reason": str(rc)})

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, handler in self._handlers.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(message.topic, bytes(message.payload))
