"""`DeviceClient`: an MQTT connection that keeps its own token fresh.

MQTT 3.1.1 has no re-authentication, so a refresh is a reconnect with the new token as
password. The session is persistent (clean_session false) and paho keeps its outgoing
QoS 1 queue across reconnects, so no QoS 1 message is lost to a refresh or a broker
restart. What to do after a refusal or a lost connection is `Policy`'s decision.

With `protocol="5"` the token is the Authentication Data of the method
`credbroker-token` (username = device id, no password), and a refresh is an AUTH 0x19
with the new token in the same connection (MQTT 5.0 section 4.12; `_mqtt5.AuthClient`
adds AUTH to paho). The server's reason codes reach the `Policy`.

Threads: paho's network thread runs the callbacks and every reconnect after a failure;
a timer thread fetches the next token at the refresh point. One lock keeps the two
from spending the same refresh token twice (the server would revoke its family).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from device_sdk._errors import ConnectError, DeviceRevoked, DeviceSDKError, TokenError
from device_sdk._keys import DevicePrivateKey
from device_sdk._mqtt5 import SUCCESS, AuthClient, token_properties
from device_sdk._policy import NOT_AUTHORIZED, Policy, Step, connack_code, reason_name
from device_sdk._proof import password_with_proof
from device_sdk._subscriptions import Subscription
from device_sdk._tokens import Token, TokenSource

Handler = Callable[[str, bytes], None]
StateCallback = Callable[[str, dict[str, Any]], None]
PROTOCOLS = {"3.1.1": mqtt.MQTTv311, "5": mqtt.MQTTv5}
# MQTT 5.0 section 3.1.2.11.2: a session that outlives its connection, as a 3.1.1
# persistent one does (0xFFFFFFFF: it does not expire).
SESSION_EXPIRY = 0xFFFFFFFF


class DeviceClient:
    """A device's MQTT client with automatic token refresh.

    Args:
        api_url: base URL of the credbroker API.
        device_id: this device's id (also its MQTT client id and username).
        private_key: the device key (see `generate_key`, `load_private_key`); None
            when the client certificate loaded in `tls` is the device's credential
            (RFC 8705 mTLS: its tokens are bound to that certificate, so MQTTS only).
        mqtt_host: broker host.
        mqtt_port: broker port.
        tls: an `ssl.SSLContext` for MQTTS and an https:// API_URL (trusting the CA
            that signed their certificates; with `load_cert_chain`, presenting the
            device's certificate to both), or None: plain MQTT, and for HTTPS the
            system's CA certificates.
        state_dir: where the refresh token survives reboots; None keeps it in memory.
        keepalive: MQTT keepalive in seconds.
        policy: refresh timing and backoff (see `Policy`).
        on_state: called with (state, details) on "connected", "refreshed" (with MQTT
            5.0, details["in_session"]: True after a re-authentication the broker
            granted), "disconnected", "revoked" and "stopped" (details["error"]). Every
            "disconnected" says why: details["code"] (the 3.1.1 CONNACK return code or
            the 5.0 reason code; None when the connection just ended), details["name"]
            (what the code means) and details["reason"] ("closed", "refused", or paho's
            text for the end of the connection).
        proof_of_possession: send a fresh proof signed by `private_key` with the token
            at every CONNECT (password `<token>~<proof>`), as fleets with
            `proof_of_possession` require (README, Proof of possession on MQTT).
        proof_audience: the proof's `aud`; None: the token's own `aud` ("mqtt" for
            a reference token).
        protocol: "3.1.1" (the default) or "5": MQTT 5.0 with the token as
            Authentication Data, refreshed in the session by re-authentication.
    """

    def __init__(
        self,
        *,
        api_url: str,
        device_id: str,
        private_key: DevicePrivateKey | None,
        mqtt_host: str,
        mqtt_port: int = 1883,
        tls: ssl.SSLContext | None = None,
        state_dir: str | Path | None = None,
        keepalive: int = 60,
        policy: Policy | None = None,
        on_state: StateCallback | None = None,
        proof_of_possession: bool = False,
        proof_audience: str | None = None,
        protocol: str = "3.1.1",
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol is one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.protocol = protocol
        self._five = protocol == "5"
        self.device_id = device_id
        self.private_key = private_key
        if proof_of_possession and private_key is None:
            raise ValueError("a proof of possession is signed by the device's private key")
        self.proof_of_possession = proof_of_possession
        self.proof_audience = proof_audience
        self.tokens = TokenSource(
            api_url=api_url,
            device_id=device_id,
            private_key=private_key,
            state_dir=state_dir,
            tls=tls,
        )
        self.mqtt_host, self.mqtt_port, self.keepalive = mqtt_host, mqtt_port, keepalive
        self.policy = policy or Policy()
        self.on_state = on_state or (lambda state, details: None)
        self.error: DeviceSDKError | None = None  # why the client stopped, if it did
        self._handlers: dict[str, Handler] = {}
        self._subscriptions: dict[str, Subscription] = {}  # by filter: the latest of each
        self._unanswered: dict[int, Subscription] = {}  # by SUBSCRIBE packet id, this connection
        self._early: dict[int, list[int]] = {}  # SUBACKs that beat subscribe() to its mid
        self._subscribe_lock = threading.Lock()
        self._token: Token | None = None
        self._token_lock = threading.Lock()
        self._connected = threading.Event()
        self._settled = threading.Event()  # accepted once, or stopped
        self._stopping = threading.Event()
        self._refused_code: int | None = None  # from a refused CONNACK, until the drop
        self._timer: threading.Timer | None = None
        # MQTT 5.0: the CONNECT properties paho sends at every connect; the token in them
        # is replaced at each renewal.
        self._connect_properties = token_properties(PacketTypes.CONNECT, "")
        self._connect_properties.SessionExpiryInterval = SESSION_EXPIRY
        self._paho = AuthClient(
            CallbackAPIVersion.VERSION2,
            client_id=device_id,
            clean_session=None if self._five else False,
            protocol=PROTOCOLS[protocol],
        )
        self._paho.on_auth = self._on_auth
        if tls is not None:
            self._paho.tls_set_context(tls)
        self._paho.on_pre_connect = self._on_pre_connect
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_connect_fail = self._on_connect_fail
        self._paho.on_message = self._on_message
        self._paho.on_subscribe = self._on_subscribe

    # -- public API ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def stopped(self) -> bool:
        """True once the client has given up (see `error`) or was closed."""
        return self._stopping.is_set()

    def enroll(self, enrollment_token: str) -> None:
        """Claim provisioning: register this device's key with its enrollment token."""
        self.tokens.enroll(enrollment_token)

    def connect(self, timeout: float = 30.0) -> None:
        """Get a token and connect; from then on the client keeps itself connected.

        Raises `DeviceRevoked` or another `DeviceSDKError` if the device is refused for
        good, `ConnectError` if no connection was accepted within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        self._renew(stale=None, deadline=deadline)
        if self._five:
            self._paho.connect_async(
                self.mqtt_host,
                self.mqtt_port,
                keepalive=self.keepalive,
                clean_start=False,
                properties=self._connect_properties,
            )
        else:
            self._paho.connect_async(self.mqtt_host, self.mqtt_port, keepalive=self.keepalive)
        self._paho.loop_start()
        accepted = self._settled.wait(max(0.0, deadline - time.monotonic()))
        if self.error is not None or not accepted:
            self.close()
            raise self.error or ConnectError(
                f"no connection accepted by {self.mqtt_host}:{self.mqtt_port} in {timeout} s"
            )

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> mqtt.MQTTMessageInfo:
        """Queue a message; QoS 1 messages survive reconnects.

        While disconnected, a QoS 1 message waits in paho's queue and goes out after the
        reconnect, so its `wait_for_publish()` waits for the PUBACK instead of failing.
        """
        info = self._paho.publish(topic, payload, qos=qos)
        if qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN:
            info.rc = mqtt.MQTT_ERR_SUCCESS  # queued, not failed
        return info

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> Subscription:
        """Call `handler(topic, payload)` for messages matching `topic_filter`.

        Subscribing while disconnected is fine: the SUBSCRIBE goes out at the connect.

        Args:
            topic_filter: an MQTT topic filter (`+` and `#` allowed).
            handler: called on paho's network thread for every matching message.
            qos: the QoS asked for; the broker may grant less.

        Returns:
            A `Subscription`: `wait(timeout)` returns the granted QoS, or raises
            `SubscriptionRefused` when the broker refused the filter (SUBACK 0x80).
        """
        subscription = Subscription(topic_filter, qos)
        with self._subscribe_lock:
            previous = self._subscriptions.get(topic_filter)
            self._subscriptions[topic_filter] = subscription
        self._handlers[topic_filter] = handler
        try:
            self._send_subscribe(subscription)
        except ValueError:  # a malformed filter: paho checks before sending
            with self._subscribe_lock:
                self._restore(topic_filter, previous)
            raise
        return subscription

    def close(self) -> None:
        self._stopping.set()
        if self._timer:
            self._timer.cancel()
        self._abandon_subscriptions(self.error or ConnectError("client closed"))
        self._paho.disconnect()
        self._paho.loop_stop()
        self._paho.release()

    def __enter__(self) -> DeviceClient:
        self.connect()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- tokens ---------------------------------------------------------------------------

    def _renew(self, *, stale: Token | None, deadline: float = float("inf")) -> bool:
        """Replace `stale` with a fresh token, backing off on transient failures.

        Returns False if the client was closed meanwhile; raises when told to stop.
        """
        with self._token_lock:
            while self._token is stale and not self._stopping.is_set():
                try:
                    token = self.tokens.fetch()
                except TokenError as exc:
                    step = self.policy.token_failed(exc)
                    if step.action == "stop" or time.monotonic() + step.delay > deadline:
                        raise
                    if self._stopping.wait(step.delay):
                        return False
                    continue
                self._token = token
                self._present(token.access_token)
                self._schedule_refresh(token)
        return not self._stopping.is_set()

    def _present(self, credential: str) -> None:
        """What the next CONNECT carries: the password (3.1.1) or the Authentication Data."""
        if self._five:
            self._paho.username_pw_set(self.device_id, None)
            self._connect_properties.AuthenticationData = credential.encode()
        else:
            self._paho.username_pw_set(self.device_id, credential)

    def _credential(self, token: Token) -> str:
        """The token, with a fresh proof of possession when this client sends them."""
        key = self.private_key
        if not self.proof_of_possession or key is None:
            return token.access_token
        now = time.time() + self.tokens.skew
        return password_with_proof(key, token.access_token, audience=self.proof_audience, now=now)

    def _schedule_refresh(self, token: Token) -> None:
        if self._timer:
            self._timer.cancel()
        due = token.obtained_at + self.policy.refresh_in(token.expires_in) - time.monotonic()
        self._timer = threading.Timer(max(due, 0.0), self._refresh, args=(token,))
        self._timer.daemon = True
        self._timer.start()

    def _refresh(self, stale: Token) -> None:
        """Timer thread: a new token, then a reconnect (3.1.1) or an AUTH (5.0) with it."""
        try:
            renewed = self._renew(stale=stale, deadline=stale.expires_at)
        except TokenError as exc:
            if not exc.transient:
                self._stop(exc)
            return  # transient: the broker cuts the session at expiry, then we renew
        if not renewed or self._stopping.is_set():
            return
        token = self._token
        if self._five and token is not None:
            if self._connected.is_set():  # "refreshed" comes with the broker's AUTH 0x00
                self._paho.reauthenticate(self._credential(token))
            else:  # the next CONNECT carries it
                self.on_state("refreshed", {"expires_in": token.expires_in, "in_session": False})
            return
        if self._connected.is_set():
            try:
                self._paho.reconnect()  # same session, same outgoing queue
            except OSError:
                return  # paho's network thread reconnects after its backoff
        self.on_state("refreshed", {"expires_in": self._token.expires_in if self._token else 0})

    # -- subscriptions --------------------------------------------------------------------

    def _send_subscribe(self, subscription: Subscription) -> None:
        """SUBSCRIBE now if connected; else `_on_connect` sends it (it is unconfirmed)."""
        subscription.confirmed = False
        rc, mid = self._paho.subscribe(subscription.topic_filter, qos=subscription.qos)
        if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
            return
        with self._subscribe_lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._unanswered[mid] = subscription
        if early is not None:
            subscription.answer(early)

    def _restore(self, topic_filter: str, previous: Subscription | None) -> None:
        if previous is None:
            self._subscriptions.pop(topic_filter, None)
            self._handlers.pop(topic_filter, None)
        else:
            self._subscriptions[topic_filter] = previous

    def _resubscribe(self, session_present: bool) -> None:
        """After a CONNACK: what the broker's session may lack goes out again.

        A lost session (a new broker, a restart) has none of our subscriptions; a kept one
        has every answered filter, but a SUBSCRIBE left unanswered when the last
        connection dropped may or may not have reached it (re-subscribing is harmless,
        MQTT-3.8.4-3). Packet ids of the old connection will never be answered.
        """
        with self._subscribe_lock:
            self._unanswered.clear()
            self._early.clear()
            again = [
                s for s in self._subscriptions.values() if not (session_present and s.confirmed)
            ]
        for subscription in again:
            self._send_subscribe(subscription)

    def _abandon_subscriptions(self, error: DeviceSDKError) -> None:
        with self._subscribe_lock:
            waiting = list(self._subscriptions.values())
        for subscription in waiting:
            subscription.abandon(error)

    # -- paho callbacks (paho's network thread) -------------------------------------------

    def _on_pre_connect(self, client: Any, userdata: Any) -> None:
        """Before every CONNECT, the first and each reconnect: a proof is single use."""
        token = self._token
        if self.proof_of_possession and token is not None:
            self._present(self._credential(token))

    def _on_auth(self, client: Any, reason: Any, properties: Any) -> None:
        """The broker's answer to a re-authentication; a refusal is DISCONNECT 0x87."""
        token = self._token
        if reason.value == SUCCESS and token is not None:
            self.on_state("refreshed", {"expires_in": token.expires_in, "in_session": True})

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        code = int(reason.value) if self._five else connack_code(reason)
        if code != 0:
            self._refused_code = code
            return  # paho drops the connection next; _on_disconnect decides what follows
        self.policy.connected()
        self._connected.set()
        self._settled.set()
        self._resubscribe(bool(flags.session_present))
        self.on_state("connected", {"session_present": bool(flags.session_present)})

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()
        refused, self._refused_code = self._refused_code, None
        # MQTT 5.0: a DISCONNECT from the server says why (section 3.14.2.1).
        said = int(reason.value) if flags.is_disconnect_packet_from_server else None
        if self._stopping.is_set():
            self._said("closed", said)
        elif refused is not None:
            self._said("refused", refused)
            self._follow(self.policy.refused(refused))
        elif said is not None:
            self._said(str(reason), said)
            self._follow(self.policy.cut(said, token_expired=self._token_expired()))
        else:
            self._said(str(reason), None)
            self._follow(self.policy.lost(token_expired=self._token_expired()))

    def _said(self, reason: str, code: int | None) -> None:
        name = "closed by this client" if code is None and reason == "closed" else reason_name(code)
        self.on_state("disconnected", {"reason": reason, "code": code, "name": name})

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._follow(self.policy.lost(token_expired=self._token_expired()))

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, codes: list[Any], props: Any
    ) -> None:
        values = [int(code.value) for code in codes]  # MQTT 3.1.1: granted QoS or 0x80
        with self._subscribe_lock:
            subscription = self._unanswered.pop(mid, None)
            if subscription is None:
                self._early[mid] = values  # subscribe() has not seen its mid yet
        if subscription is not None:
            subscription.answer(values)

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, handler in list(self._handlers.items()):  # subscribe() may add
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(message.topic, bytes(message.payload))

    # -- following the policy -------------------------------------------------------------

    def _token_expired(self) -> bool:
        return self._token is None or self._token.expired

    def _follow(self, step: Step) -> None:
        if step.action == "stop":
            self._stop(step.error or ConnectError("stopped"))
            return
        if step.action == "renew":
            try:
                if not self._renew(stale=self._token):
                    return
            except DeviceSDKError as exc:
                self._stop(exc)
                return
        self._paho.reconnect_delay_set(step.delay, step.delay)  # type: ignore[arg-type]

    def _stop(self, error: DeviceSDKError) -> None:
        """Give up for good: a revoked device must not hammer the broker."""
        if self._stopping.is_set():
            return
        self.error = error
        self._stopping.set()
        if self._timer:
            self._timer.cancel()
        revoked = isinstance(error, DeviceRevoked) or (
            isinstance(error, ConnectError) and error.return_code in (5, NOT_AUTHORIZED)
        )
        self.on_state("revoked" if revoked else "stopped", {"error": str(error)})
        self._abandon_subscriptions(error)
        self._settled.set()
        self._paho.disconnect()
