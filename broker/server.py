"""`CredBroker`: amqtt 0.12.1 with credbroker's authentication, ACL and fixes.

Authorization runs as plain calls on the hot path (`_topic_filtering`), not through
amqtt's plugin manager, which costs a task and a gather per check. This module holds the
connection's life (CONNECT authenticated before any session is touched, take-over,
settling a session when its connection ends) and the cutting of sessions (expiry,
changes of standing, ACL violations); per-connection flows are in handler.py, routing and
offline queues in delivery.py, the CONNECT's reading in connect.py and session.py.

The faults of stock amqtt 0.12.1 fixed here and in those modules are listed, numbered,
with their regression tests, in README.md ("amqtt 0.12.1 faults fixed in broker/"); the
code names them by number.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.contexts import Action, ListenerConfig
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import ConnackPacket
from amqtt.mqtt.disconnect import DisconnectPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from broker import properties, v5, v5out, v5stream
from broker.connack import REASON_CODES, RETURN_CODES
from broker.connect import read_connect
from broker.delivery import MAX_QUEUED_MESSAGES, DeliveryBroker
from broker.errors import BadConnect, Violation
from broker.handler import DISCONNECTED, SUBSCRIBED, UNSUBSCRIBED, CredHandler
from broker.lingering import Lingering
from broker.metrics import BrokerStats
from broker.packets import PacketReader
from broker.presence import Presence
from broker.session import session_from_connect
from broker.slim import SlimEvent
from broker.subscriptions import inner_filter
from credbroker import certificates
from credbroker.decision import Authenticator, Grant, Kind, Refusal
from credbroker.presence import Connection
from credbroker.topics import any_contains
from credbroker.trust import CachedTrustStore, Change
from credbroker.verifier import StoreUnavailable

log = logging.getLogger("credbroker.broker")
GRANT = "credbroker.grant"
CHANGES_SEEN = "credbroker.changes_seen"
SINCE = "credbroker.since"  # when the session's CONNECT was accepted (Unix time)
Audit = Callable[..., None]


class CredBroker(DeliveryBroker):
    def __init__(
        self,
        config: dict[str, Any],
        *,
        authenticator: Authenticator,
        trust: CachedTrustStore,
        audit: Audit,
        stats: BrokerStats,
        max_violations: int = 10,
        max_queued_messages: int = MAX_QUEUED_MESSAGES,
        poll_interval: float | None = 1.0,
        presence: Presence | None = None,
        on_tls_context: Callable[[ssl.SSLContext], None] | None = None,
    ) -> None:
        super().__init__(config, stats=stats, max_queued_messages=max_queued_messages)
        self.on_tls_context = on_tls_context
        stats.sessions.labels("connected").set_function(lambda: self._count("connected"))
        stats.sessions.labels("disconnected").set_function(lambda: self._count("disconnected"))
        self.authenticator = authenticator
        self.trust = trust
        self.audit = audit
        self.max_violations = max_violations
        self.poll_interval = poll_interval
        self.presence = presence  # a standalone broker's live connections, for the API
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ended: dict[str, SlimEvent] = {}  # client id -> its connection has ended
        self._tasks: set[asyncio.Future[object]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._changes = 0  # batches of changes of standing heard (see `_run_session`)
        self._lingering = Lingering(self.publish, self._expire, self._spawn)  # MQTT 5.0

    def _count(self, state: str) -> int:
        # A snapshot: /metrics and the console read it from another thread.
        return sum(1 for s, _ in list(self._sessions.values()) if s.transitions.state == state)

    # -- lifecycle -------------------------------------------------------------------

    def _create_ssl_context(self, listener: ListenerConfig) -> ssl.SSLContext:
        """amqtt's context of an MQTTS listener, shown to `on_tls_context`."""
        context: ssl.SSLContext = super()._create_ssl_context(listener)
        if self.on_tls_context is not None:
            self.on_tls_context(context)
        return context

    async def start(self) -> None:
        try:  # the deny list, before any CONNECT; until then tokens get CONNACK 3
            await asyncio.to_thread(self.trust.catch_up)
        except StoreUnavailable as exc:
            log.warning("the database is not ready (%s); retrying every second", _line(exc))
        await super().start()
        if self.poll_interval is not None:
            self._poller = asyncio.create_task(self._follow_log(self.poll_interval))

    async def shutdown(self) -> None:
        if self._poller:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for timer in self._timers.values():
            timer.cancel()
        self._lingering.close()
        await super().shutdown()

    async def _follow_log(self, interval: float) -> None:
        """The revocation log, for changes made by other processes (standalone shape; the
        embedded broker hears of every change from the API's bus instead)."""
        failing = False
        while True:
            try:
                changes = await asyncio.to_thread(self.trust.read_log)
                if changes:
                    await self.changed(changes)
            except StoreUnavailable as exc:  # said once, in one line, until it recovers
                if not failing:
                    log.warning("revocation log unreadable (%s); retrying", _line(exc))
                failing = True
            except Exception:  # a bad poll must not stop the next one
                log.warning("revocation poll failed", exc_info=True)
            else:
                if failing:
                    log.warning("revocation log readable again")
                failing = False
            await self._write_presence()
            await asyncio.sleep(interval)

    async def _write_presence(self) -> None:
        """The live connections, for the sessions view; a failure only makes it stale."""
        if self.presence is None:
            return
        try:
            await asyncio.to_thread(self.presence.write, self.all_connections())
        except Exception as exc:  # the database is down: the log poll says so already
            log.debug("presence not written: %s", _line(exc))

    # -- connections -------------------------------------------------------------------

    async def _client_connected(
        self, listener_name: str, reader: ReaderAdapter, writer: WriterAdapter
    ) -> None:
        """Stock flow, except that every failure releases the listener slot."""
        server = self._servers[listener_name]
        await server.acquire_connection()
        try:
            peer = writer.get_peer_info()
            if peer is None:
                await _close(writer)
                return
            handler, session, reader, writer = await self._initialize_client_session(
                reader, writer, *peer
            )
            await self._handle_client_session(
                reader, writer, session, handler, server, listener_name
            )
        except (AMQTTError, MQTTError, NoDataError, OSError, ConnectionError) as exc:
            log.debug("connection ended: %s", exc)
        finally:
            server.release_connection()

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session, ReaderAdapter, WriterAdapter]:
        try:
            raw, five = await read_connect(reader)
        except BadConnect as exc:
            self.stats.dropped.labels(exc.kind).inc()
            if exc.reply:
                with contextlib.suppress(OSError, ConnectionError):
                    writer.write(exc.reply)
                    await writer.drain()
            elif exc.refuse_with is not None:
                await _send_connack(writer, exc.refuse_with)
            await _close(writer)
            raise AMQTTError(str(exc)) from exc
        if five is not None:  # MQTT 5.0: the 3.1.1 core behind a transcoding edge
            reader, writer = v5stream.wrap(reader, writer, five)
        try:
            session = await session_from_connect(raw, writer)
        except (AMQTTError, MQTTError, NoDataError, OSError) as exc:
            await _close(writer)
            raise AMQTTError(f"bad CONNECT: {exc}") from exc
        handler = CredHandler(self.plugins_manager)
        der = _client_certificate(writer)
        with self.stats.verify_seconds.time():
            changes_seen = self._changes
            decision = self.authenticator.authenticate(
                client_id=session.client_id,
                username=session.username,
                password=session.password,
                address=remote_address,
                certificate=certificates.thumbprint(der) if der else None,
                client_certificate=der,
            )
        if isinstance(decision, Refusal):
            result = "throttled" if decision.kind is Kind.TRY_LATER else "refused"
            self.stats.connects.labels(result, decision.reason).inc()
            await self._refuse(writer, session, decision)
        assert isinstance(decision, Grant)  # noqa: S101 - _refuse always raises
        self.stats.connects.labels("accepted", "ok").inc()
        session.attributes[GRANT] = decision
        # Sessions are the device's: a Cloud IoT Core long client id (device-signed
        # fleets, README) is known by its device id from here on, so that take-overs and
        # cuts find it as they find any other.
        session.client_id = decision.device_id
        session.attributes[CHANGES_SEEN] = changes_seen
        edge = reader.edge if isinstance(reader, v5stream.Reader) else None
        if edge is not None and edge.server_keep_alive is not None:
            session.keep_alive = edge.server_keep_alive  # the CONNACK says so
        session.keep_alive = math.ceil(session.keep_alive * 1.5)
        await self._take_over(decision.device_id)
        self._lingering.connecting(decision.device_id, new_session=session.clean_session)
        session = await self._adopt(session)
        if edge is not None:
            self._speak_5(session, handler, edge, der)
        return handler, session, reader, writer

    def _speak_5(
        self, session: Session, handler: CredHandler, edge: v5.Edge, der: bytes | None
    ) -> None:
        """An MQTT 5.0 session: its edge learns the grant's rules, and the session lasts
        as long as its expiry interval says (0: it ends with the connection)."""
        handler.speaks_5(edge)
        session.clean_session = edge.session_expiry == 0
        edge.may_publish = session.attributes[GRANT].may_publish  # PUBACK 0x87 outside it
        edge.refuse_publish = functools.partial(self._refused_at_edge, session)
        edge.reauthenticate = functools.partial(self._reauthenticate, session, edge, der)

    def _refused_at_edge(self, session: Session, topic: str) -> None:
        self._publish_refused(session, session.attributes[GRANT], topic)

    def _reauthenticate(
        self, session: Session, edge: v5.Edge, der: bytes | None, token: str
    ) -> bool:
        """MQTT 5.0 re-authentication: the one decision on a fresh token, which must be
        the same device's with the same or a narrower ACL; then the session goes on with
        its claims, and is cut at its expiry instead. (Subscriptions made under the old
        ACL stay until they end.)"""
        old: Grant = session.attributes[GRANT]
        decision = self.authenticator.authenticate(
            client_id=old.device_id,
            username=session.username,
            password=token,
            address=str(session.remote_address or "") or None,
            certificate=certificates.thumbprint(der) if der else None,
            client_certificate=der,
        )
        if not (isinstance(decision, Grant) and decision.device_id == old.device_id):
            self.stats.connects.labels("refused", "reauthentication").inc()
            return False
        if not _narrower(decision, old):
            return False
        session.attributes[GRANT] = decision
        edge.may_publish = decision.may_publish
        self._arm_expiry(old.device_id, decision)
        self.stats.connects.labels("accepted", "reauthenticated").inc()
        return True

    async def _refuse(self, writer: WriterAdapter, session: Session, refusal: Refusal) -> None:
        code = RETURN_CODES[refusal.kind]
        if isinstance(writer, v5stream.Writer):
            with contextlib.suppress(ConnectionError, OSError):
                writer.write_5(v5out.connack(REASON_CODES[refusal.kind], why=_why(refusal)))
                await writer.drain()
        else:
            await _send_connack(writer, code)
        await _close(writer)
        if refusal.kind is not Kind.TRY_LATER:  # under a penalty: counted, not written
            self.audit(
                action="mqtt.connect",
                outcome="refused",
                device_id=session.username,
                reason=refusal.reason,
                code=code,
                address=session.remote_address,
            )
        raise AMQTTError(f"CONNECT refused with {code}: {refusal.reason}")

    async def _take_over(self, client_id: str) -> None:
        """MQTT 3.1.1 section 3.1.4: a second connection with a client id ends the first.

        It also waits for a previous connection that is still ending (a DISCONNECT just
        read, its session not settled yet): the new CONNECT then finds the session as that
        ending left it, a clean one gone, a persistent one with its subscriptions and queue
        (fault 18; stock amqtt resumed whatever was there).
        """
        entry = self._sessions.get(client_id)
        ended = self._ended.get(client_id)
        if entry is not None and entry[0].transitions.is_connected():
            entry[0].will_flag = False
            await _say_why(entry[1], "taken_over")
            await entry[1].handle_connection_closed()
        if ended is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), 5)

    async def _adopt(self, session: Session) -> Session:
        """Stock session handling, run only once the CONNECT is authenticated (faults 1, 2)."""
        existing = self._sessions.get(session.client_id or "")
        if session.clean_session or existing is None:
            if existing is not None:
                await self._delete_session(session.client_id or "")
            session.parent = 0
            session.client_id = session.client_id or gen_client_id()
            return session
        old = existing[0]
        for field in (
            "will_flag",
            "will_message",
            "will_topic",
            "will_qos",
            "will_retain",
            "keep_alive",
            "username",
            "password",
            "remote_address",
            "remote_port",
        ):
            setattr(old, field, getattr(session, field))
        old.attributes[GRANT] = session.attributes[GRANT]
        old.parent = 1
        return old

    async def _authenticate(self, session: Session, _: ListenerConfig) -> bool:
        return GRANT in session.attributes  # decided in _initialize_client_session

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        client_id = client_session.client_id
        assert client_id is not None  # noqa: S101 - set in _adopt
        ended = self._ended[client_id] = SlimEvent()
        try:
            await self._run_session(reader, writer, client_session, handler, client_id)
        finally:
            try:
                edge = handler.edge if isinstance(handler, CredHandler) else None
                await self._settle(client_id, client_session, edge)
            finally:
                ended.set()
                if self._ended.get(client_id) is ended:
                    del self._ended[client_id]

    async def _settle(self, client_id: str, client_session: Session, edge: v5.Edge | None) -> None:
        """A clean session ends with its connection (MQTT-3.1.2-6): gone before the next
        CONNECT with its client id is answered, where stock amqtt left it to a monitor
        that runs every second, and a persistent CONNECT meanwhile resumed it. A 5.0
        session lingers for its expiry interval, as its DISCONNECT may have changed it."""
        entry = self._sessions.get(client_id)
        if entry is None or entry[0] is not client_session:
            return
        if edge is not None:
            client_session.clean_session = edge.session_expiry == 0
        if client_session.clean_session:
            await self._delete_session(client_id)
        elif edge is not None and edge.session_expiry != v5.NO_EXPIRY:
            self._lingering.expire_later(client_id, client_session, edge.session_expiry)

    async def _expire(self, client_id: str, session: Session) -> None:
        """A 5.0 session whose expiry interval has passed since its connection ended."""
        entry = self._sessions.get(client_id)
        if entry is not None and entry[0] is session and not session.transitions.is_connected():
            await self._delete_session(client_id)

    async def _run_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        client_id: str,
    ) -> None:
        client_session.transitions.connect()
        handler.attach(client_session, PacketReader(reader, self._violation(client_id)), writer)
        client_session.attributes[SINCE] = time.time()
        self._sessions[client_id] = (client_session, handler)
        await handler.mqtt_connack_authorize(True)
        grant = client_session.attributes[GRANT]
        self._arm_expiry(client_id, grant)
        # A change of standing that arrived between this CONNECT's verification and its
        # session being registered found no session to cut: check this one against it.
        if client_session.attributes.pop(CHANGES_SEEN, self._changes) != self._changes:
            refusal = self.authenticator.standing(grant)
            if refusal is not None:
                self._spawn(self.kick(client_id, refusal.reason))
        await self.plugins_manager.fire_event(
            BrokerEvents.CLIENT_CONNECTED, client_id=client_id, client_session=client_session
        )
        await handler.start()
        await self._publish_session_retained_messages(client_session)
        # Stock amqtt walks every client's subscriptions here; only this client's own, and
        # only when there is a retained message at all (the walk is O(subscriptions)).
        # MQTT 5.0 sends retained messages at SUBSCRIBE only (section 3.3.1.3).
        resend = self._retained_messages and not isinstance(writer, v5stream.Writer)
        subscriptions = list(self._subscriptions.items()) if resend else []
        for topic_filter, subscribers in subscriptions:
            for subscriber, qos in subscribers:
                if subscriber.client_id == client_id:
                    await self._publish_retained_messages_for_subscription(
                        (topic_filter, qos), client_session
                    )
        await self._client_message_loop(client_session, handler)

    async def _client_message_loop(
        self, client_session: Session, handler: BrokerProtocolHandler
    ) -> None:
        """Stock amqtt's loop, over `CredHandler.next_work` instead of four tasks."""
        assert isinstance(handler, CredHandler)  # noqa: S101 - _initialize_client_session's
        try:
            while True:
                kind, item = await handler.next_work()
                if not await self._handle_work(client_session, handler, kind, item):
                    return
                del item  # an idle connection keeps nothing of its last packet
        except asyncio.CancelledError:
            log.debug("%s: message loop cancelled", client_session.client_id)  # as stock
        finally:
            handler.stop_waiting_for_messages()  # the session may outlive it (fault 10)

    async def _handle_work(
        self, client_session: Session, handler: CredHandler, kind: str, item: Any
    ) -> bool:
        """One step of the message loop; False when the loop ends."""
        # amqtt's steps take the future a waiter task would have been.
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(item)
        if kind == DISCONNECTED:
            await self._handle_disconnect(client_session, handler, done)
            return False
        if kind == SUBSCRIBED:
            await self._handle_subscription(client_session, handler, done)
        elif kind == UNSUBSCRIBED:
            await self._handle_unsubscription(client_session, handler, done)
        else:
            return bool(await self._handle_message_delivery(client_session, handler, done))
        return True

    async def _handle_disconnect(
        self,
        client_session: Session,
        handler: BrokerProtocolHandler,
        disconnect_waiter: asyncio.Future[Any],
    ) -> None:
        # PUBACKs went out when the messages were queued: deliver them before the end.
        queue = client_session.delivered_message_queue
        while not queue.empty():
            message = queue.get_nowait()
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_result(message)
            await self._handle_message_delivery(client_session, handler, future)
        timer = self._timers.pop(client_session.client_id or "", None)
        if timer:
            timer.cancel()
        edge = handler.edge if isinstance(handler, CredHandler) else None
        ended = disconnect_waiter.result()
        if (
            edge is not None
            and client_session.will_flag
            and not isinstance(ended, DisconnectPacket)
        ):
            self._will_5(client_session, edge)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    def _will_5(self, session: Session, edge: v5.Edge) -> None:
        """A 5.0 will has properties, and goes after its delay or at its session's end,
        whichever is first (section 3.1.3.2.2); the connection may have shortened the
        session at DISCONNECT."""
        will = edge.will
        if will is None:
            return
        delay = min(will.will_delay_interval, edge.session_expiry)
        if delay > 0:
            session.will_flag = False  # not now (stock amqtt's) but later, unless it resumes
            self._lingering.will_later(session.client_id or "", session, will, delay)
        else:
            session.will_message = properties.carry(
                session.will_message, properties.of_publish(will)
            )

    def _violation(self, client_id: str) -> Callable[[Violation], None]:
        def report(violation: Violation) -> None:
            self.stats.dropped.labels(violation.reason).inc()
            log.info("%s: protocol violation, connection closed: %s", client_id, violation)

        return report

    # -- authorization -------------------------------------------------------------------

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        grant: Grant | None = session.attributes.get(GRANT)
        if grant is None:
            return False
        # Expiry is enforced by cutting the session at exp + leeway (_arm_expiry), not
        # here: a PUBLISH acknowledged before the cut but delivered after it (a busy
        # broker, or the drain at disconnect) must not vanish, and a persistent session
        # between a late refresh and its reconnect keeps receiving (fault 9).
        if action == Action.RECEIVE:
            return True  # admitted at SUBSCRIBE time; no second check per subscriber
        if action == Action.SUBSCRIBE:
            if grant.exp <= time.time():
                return False
            allowed = grant.may_subscribe(inner_filter(topic))  # the ACL on a shared one's
            if not allowed:
                self.stats.refused.labels("subscribe").inc()
                self.audit(
                    action="mqtt.subscribe",
                    outcome="refused",
                    device_id=grant.device_id,
                    topic=topic,
                )
            return allowed
        if grant.may_publish(topic):
            return True
        self._publish_refused(session, grant, topic)
        return False

    def _refuse_dollar_topic(self, session: Session, topic: str) -> None:
        grant: Grant | None = session.attributes.get(GRANT)
        if grant is not None:
            self._publish_refused(session, grant, topic)

    def _publish_refused(self, session: Session, grant: Grant, topic: str) -> None:
        self.stats.refused.labels("publish").inc()
        count = session.attributes.get("credbroker.violations", 0) + 1
        session.attributes["credbroker.violations"] = count
        if count <= self.max_violations:
            self.audit(
                action="mqtt.publish",
                outcome="refused",
                device_id=grant.device_id,
                topic=topic,
                count=count,
            )
        if count == self.max_violations:
            self._spawn(self.kick(grant.device_id, "acl_violations"))

    # -- cutting sessions -----------------------------------------------------------------

    def _arm_expiry(self, client_id: str, grant: Grant) -> None:
        old = self._timers.pop(client_id, None)
        if old:
            old.cancel()
        delay = max(0.0, grant.exp - time.time())
        self._timers[client_id] = asyncio.get_running_loop().call_later(
            delay, lambda: self._spawn(self.kick(client_id, "expired"))
        )

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until done (asyncio holds only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def kick(self, client_id: str, reason: str) -> bool:
        """Close a live session without its will (MQTT 3.1.1 has no server DISCONNECT;
        a 5.0 client is told why first)."""
        entry = self._sessions.get(client_id)
        if entry is None or not entry[0].transitions.is_connected():
            return False
        session, handler = entry
        session.will_flag = False
        self.stats.kicks.labels(reason).inc()
        self.audit(action="mqtt.kick", outcome="ok", device_id=client_id, reason=reason)
        await _say_why(handler, reason)
        await handler.handle_connection_closed()
        return True

    def all_connections(self) -> list[Connection]:
        """Every live connection (for `broker.presence`)."""
        return [c for client_id in list(self._sessions) for c in self.connections(client_id)]

    def connections(self, device_id: str) -> list[Connection]:
        """The device's live connection, if any (client id = device id). Safe to call from
        another thread: it reads one dict entry and the session's attributes."""
        entry = self._sessions.get(device_id)
        if entry is None or not entry[0].transitions.is_connected():
            return []
        session, handler = entry
        grant: Grant | None = session.attributes.get(GRANT)
        if grant is None:
            return []
        five = isinstance(handler, CredHandler) and handler.edge is not None
        return [
            Connection(
                broker="embedded" if self.presence is None else self.presence.broker,
                client_id=device_id,
                address=str(session.remote_address or ""),
                since=float(session.attributes.get(SINCE, 0.0)),
                protocol="5.0" if five else "3.1.1",
                jti=grant.jti,
                expires_at=grant.exp,
            )
        ]

    async def changed(self, changes: list[Change]) -> None:
        """Changes of standing: a session whose token was revoked, or whose device's
        standing no longer holds its grant (disabled, revoked, deleted, key retired), is
        cut; any other session of those devices goes on."""
        self._changes += 1
        self.trust.apply(changes)
        for change in changes:
            entry = self._sessions.get(change.device_id)
            grant: Grant | None = entry[0].attributes.get(GRANT) if entry else None
            if grant is None:
                continue
            if change.jti is not None:
                if grant.jti == change.jti:
                    await self.kick(change.device_id, "revoked")
                continue
            refusal = self.authenticator.standing(grant)
            if refusal is not None:  # a store that cannot say fails closed, as at CONNECT
                await self.kick(change.device_id, refusal.reason)


def _narrower(new: Grant, old: Grant) -> bool:
    """Every filter of the new grant is inside one of the old grant's."""
    return all(any_contains(old.pub, f) for f in new.pub) and all(
        any_contains(old.sub, f) for f in new.sub
    )


async def _say_why(handler: BrokerProtocolHandler, reason: str) -> None:
    """An MQTT 5.0 client's DISCONNECT with the reason of its cut (`v5out.disconnect`)."""
    writer = handler.writer
    if isinstance(writer, v5stream.Writer):
        with contextlib.suppress(OSError, ConnectionError):
            writer.write_5(v5out.disconnect(reason))
            await writer.drain()


def _why(refusal: Refusal) -> str:
    """A refused 5.0 CONNECT's reason string: the rule, to the holder of a real token (its
    signature verified); to a guess only what its reason code says, so that no reason
    string tells which device ids exist or how a forgery failed."""
    if refusal.reason.signed or refusal.kind is Kind.UNAVAILABLE:
        return str(refusal.reason)
    return "try later" if refusal.kind is Kind.TRY_LATER else "bad credentials"


def _client_certificate(writer: WriterAdapter) -> bytes | None:
    """The DER of the client certificate the TLS handshake verified, if any."""
    ssl_object = writer.get_ssl_info()
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return der or None


async def _send_connack(writer: WriterAdapter, code: int) -> None:
    with contextlib.suppress(OSError, ConnectionError, AMQTTError):
        await ConnackPacket.build(0, code).to_stream(writer)


async def _close(writer: WriterAdapter) -> None:
    with contextlib.suppress(OSError, ConnectionError, AMQTTError, asyncio.TimeoutError):
        await writer.close()


def _line(exc: Exception) -> str:
    """The first line of a database error (SQLAlchemy appends the statement and a URL)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
