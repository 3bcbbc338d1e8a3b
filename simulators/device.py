"""Honest virtual devices and the backend that counts their messages.

A virtual device follows the device SDK's own rules (`TokenSource.forms/accept` for
tokens, `Policy` for refresh timing, refusals and backoff) over asyncio I/O, so
thousands share one loop. Messages are QoS 1 and numbered per device; the backend
subscribes to all telemetry and counts every number once, so loss is measured end to end.

An MQTT 5.0 device refreshes in its connection (AUTH, MQTT 5.0 section 4.12) and reads
the server's DISCONNECT reason into its `Policy`; a 3.1.1 device reconnects.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import httpx

from device_sdk import Backoff, Policy, TokenError
from device_sdk._tokens import Token, TokenSource
from simulators.fleet import Topics, VirtualIdentity
from simulators.mqtt import AsyncClient, Driver
from simulators.report import Stats


@dataclass
class Context:
    """What every virtual device of a run shares."""

    api: str
    mqtt_host: str
    mqtt_port: int
    http: httpx.AsyncClient
    driver: Driver
    stats: Stats
    topics: Topics
    started: float = field(default_factory=time.monotonic)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # httpcore's pool does work per waiting request on every event: with thousands of
    # devices asking at once, queue them here instead (as many as the pool has connections).
    http_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(32))

    async def pause(self, seconds: float) -> bool:
        """Sleep unless the run ends first; True if the run is ending."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


async def first_of(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of `events` is set; False if `timeout` passed first."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    done, pending = await asyncio.wait(
        waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    for waiter in pending:
        waiter.cancel()
    return bool(done)


async def fetch_token(ctx: Context, tokens: TokenSource) -> Token:
    """The SDK's grant sequence over the shared async HTTP client.

    The assertion is signed once the request may go: signed before a long wait in the
    queue it could expire (60 s) before the server sees it.
    """
    began = time.monotonic()
    async with ctx.http_gate:
        for form in tokens.forms():
            try:
                response = await ctx.http.post(tokens.token_endpoint, data=form)
            except httpx.HTTPError as exc:
                raise TokenError(f"token endpoint unreachable: {exc}") from exc
            token = tokens.accept(form, response.status_code, response.headers, response.content)
            if token is not None:
                ctx.stats.token_latency.append(time.monotonic() - began)
                return token
    raise TokenError("token endpoint refused every grant")


class VirtualDevice:
    """Stays connected with fresh tokens; publishes numbered telemetry at `rate`/s."""

    def __init__(
        self,
        ctx: Context,
        identity: VirtualIdentity,
        *,
        rate: float,
        commands: bool,
        protocol: str = "3.1.1",
    ) -> None:
        self.ctx, self.id, self.rate, self.commands = ctx, identity.device_id, rate, commands
        self.protocol = protocol
        self.tokens = TokenSource(
            api_url=ctx.api, device_id=identity.device_id, private_key=identity.key
        )
        self.policy = Policy(backoff=Backoff(base=0.5, cap=10.0))
        self.client = AsyncClient(ctx.driver, self.id, protocol=protocol, on_lost=self._lost)
        self.token: Token | None = None
        self.sent = 0
        self.stopped: str | None = None
        self.phase = "starting"  # what live() is doing, for the report on lost messages
        self.commands_expected = 0
        self.subscribed = False  # to its command topic (SUBACK received)
        self.commands_received: set[int] = set()
        self.revoked_at: float | None = None  # when the revocation scenario asked
        self._cut_counted = False
        self._lost_event = asyncio.Event()
        self._ready = asyncio.Event()  # connected once
        self.client.on_message = self._command

    def _lost(self) -> None:
        self._lost_event.set()
        if self.revoked_at is not None and not self._cut_counted:
            self._cut_counted = True
            self.ctx.stats.revocation_latency.append(time.monotonic() - self.revoked_at)

    def _command(self, topic: str, payload: bytes) -> None:
        _, _, number = payload.decode(errors="replace").partition(" ")
        if number.isdigit():
            self.commands_received.add(int(number))

    async def obtain_token(self) -> None:
        """First token, outside `live()`, so a scenario can time every device's together."""
        began = time.monotonic()
        self.token = await fetch_token(self.ctx, self.tokens)
        self.ctx.stats.first_token_latency.append(time.monotonic() - began)

    async def live(self, start_after: float = 0.0) -> None:
        """Connect, refresh before expiry, reconnect after failures, until the run ends."""
        ctx, first = self.ctx, True
        if await ctx.pause(start_after):
            return
        action, delay = ("retry" if self.token else "renew"), 0.0
        while not ctx.stopping.is_set():
            if action == "stop":
                self._stop("token refused")
                return
            self.phase = f"backoff {delay:.1f} s before {action}"
            if delay and await ctx.pause(delay):
                return
            if action == "renew":
                self.phase = "getting a token"
                try:
                    self.token = await fetch_token(ctx, self.tokens)
                except TokenError as exc:
                    step = self.policy.token_failed(exc)
                    if step.action == "stop":
                        self._stop(str(exc))
                        return
                    action, delay = "renew", step.delay
                    continue
            if self.token is None:
                action = "renew"
                continue
            self.phase = "connecting"
            code = await self._connect(self.token)
            self.phase = f"CONNACK {code}"
            if code != 0:
                step = (
                    self.policy.refused(code)
                    if code > 0
                    else self.policy.lost(token_expired=self._expired())
                )
                if step.action == "stop":
                    self._stop(f"CONNACK {code}")
                    return
                action, delay = step.action, step.delay
                continue
            self.policy.connected()
            self._ready.set()
            if first and self.commands:
                subscribed = self.client.subscribe(ctx.topics.commands(self.id))
                subscribed.add_done_callback(lambda _: setattr(self, "subscribed", True))
            first = False
            self.phase = "connected"
            action, delay = await self._connected_until_refresh_or_loss()

    async def _connect(self, token: Token) -> int:
        began = time.monotonic()
        code = await self.client.connect(
            self.ctx.mqtt_host,
            self.ctx.mqtt_port,
            username=self.id,
            password=token.access_token,
        )
        if code == 0:
            # A refresh drops the old connection while the new one connects: that loss
            # is not this connection's.
            self._lost_event.clear()
            if self._ready.is_set():
                self.ctx.stats.reconnected(self.protocol)
                if not self.client.session_present:
                    self.ctx.stats.sessions_lost += 1  # its persistent session should be there
            self.ctx.stats.connects_ok += 1
            self.ctx.stats.connect_latency.append(time.monotonic() - began)
        else:
            self.ctx.stats.refused_connect(code)
        return code

    async def _connected_until_refresh_or_loss(self) -> tuple[str, float]:
        """What to do once this connection ends (3.1.1: at the refresh, a reconnect)."""
        while self.token is not None:
            refresh_at = self.token.obtained_at + self.policy.refresh_in(self.token.expires_in)
            timeout = max(0.0, refresh_at - time.monotonic())
            if await first_of(self._lost_event, self.ctx.stopping, timeout=timeout):
                return self._after_loss()
            if self.ctx.stopping.is_set():
                return "retry", 0.0
            try:
                self.token = await fetch_token(self.ctx, self.tokens)
            except TokenError as exc:
                step = self.policy.token_failed(exc)
                return ("stop", 0.0) if step.action == "stop" else ("renew", step.delay)
            self.ctx.stats.refreshes += 1
            self.ctx.stats.refresh_times.append(time.monotonic() - self.ctx.started)
            if not self.client.five:
                return "retry", 0.0  # reconnect at once with the new token, same session
            if not await self._reauthenticate(self.token):
                return self._after_loss()  # refused (DISCONNECT 0x87) or the connection ended
            self.ctx.stats.reauthenticated(self.protocol)
        return "renew", 0.0

    async def _reauthenticate(self, token: Token) -> bool:
        """AUTH with the new token; no answer in 30 s counts as a lost connection."""
        if not self.client.connected:  # lost while the token came: the CONNECT carries it
            return False
        try:
            return await asyncio.wait_for(self.client.reauthenticate(token.access_token), 30)
        except TimeoutError:
            self.client.close()  # the reconnect starts from a closed connection
            return False

    def _after_loss(self) -> tuple[str, float]:
        """The policy's step after a lost connection; MQTT 5.0 says why it was cut."""
        cut, expired = self.client.cut_reason, self._expired()
        step = (
            self.policy.lost(token_expired=expired)
            if cut is None
            else self.policy.cut(cut, token_expired=expired)
        )
        return step.action, step.delay

    def _expired(self) -> bool:
        return self.token is None or self.token.expired

    def _stop(self, why: str) -> None:
        self.stopped = why
        if self.revoked_at is not None:
            self.ctx.stats.revoked_stopped += 1
        else:
            self.ctx.stats.stopped[why] += 1

    async def publish_telemetry(self, until: float) -> None:
        """Numbered QoS 1 messages at `rate`/s (paho queues them while disconnected)."""
        ctx, interval = self.ctx, 1.0 / self.rate
        await first_of(self._ready, ctx.stopping)
        if ctx.stopping.is_set() or await ctx.pause(random.uniform(0, interval)):  # noqa: S311
            return
        topic = ctx.topics.telemetry(self.id)
        while time.monotonic() < until and self.stopped is None:
            self.client.publish(topic, f"{self.id} {self.sent}".encode())
            self.sent += 1
            ctx.stats.sent += 1
            if await ctx.pause(interval):
                return


class Backend:
    """A service client subscribed to every device's telemetry: counts each number once."""

    def __init__(self, ctx: Context, identity: VirtualIdentity) -> None:
        self.ctx, self.identity = ctx, identity
        self.seen: dict[str, set[int]] = {}
        self.markers: dict[str, asyncio.Future[None]] = {}
        self.foreign: set[str] = set()  # payloads that should never have been delivered
        self.client = AsyncClient(ctx.driver, identity.device_id, on_message=self._message)

    async def start(self) -> None:
        tokens = TokenSource(
            api_url=self.ctx.api, device_id=self.identity.device_id, private_key=self.identity.key
        )
        token = await fetch_token(self.ctx, tokens)
        code = await self.client.connect(
            self.ctx.mqtt_host,
            self.ctx.mqtt_port,
            username=self.identity.device_id,
            password=token.access_token,
        )
        if code != 0:
            raise RuntimeError(f"the backend client was refused: CONNACK {code}")
        granted = await self.client.subscribe(self.ctx.topics.telemetry("+"))
        if granted != [1]:
            raise RuntimeError(f"the backend's subscription was refused: {granted}")

    def _message(self, topic: str, payload: bytes) -> None:
        text = payload.decode(errors="replace")
        if text.startswith("marker "):
            future = self.markers.pop(text, None)
            if future is not None and not future.done():
                future.set_result(None)
            return
        if text.startswith("attack "):
            self.foreign.add(text)
            return
        device_id, _, number = text.partition(" ")
        numbers = self.seen.setdefault(device_id, set())
        if not number.isdigit():
            self.foreign.add(text)
        elif int(number) in numbers:
            self.ctx.stats.duplicates += 1
        else:
            numbers.add(int(number))
            self.ctx.stats.delivered += 1

    def expect_marker(self, marker: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.markers[marker] = future
        return future

    def missing(self, devices: list[VirtualDevice]) -> int:
        return sum(d.sent - len(self.seen.get(d.id, ())) for d in devices)

    def missing_sample(self, devices: list[VirtualDevice], limit: int = 10) -> dict[str, str]:
        """For the report: which numbers of which devices never arrived, and their state."""
        sample: dict[str, str] = {}
        for device in devices:
            seen = self.seen.get(device.id, set())
            if len(seen) == device.sent:
                continue
            gaps = sorted(set(range(device.sent)) - seen)
            state = "connected" if device.client.connected else "disconnected"
            sample[device.id] = f"{state} ({device.phase}), sent {device.sent}, missing {gaps[:20]}"
            if len(sample) == limit:
                break
        return sample

    def command(self, device: VirtualDevice, number: int) -> None:
        self.client.publish(self.ctx.topics.commands(device.id), f"cmd {number}".encode())
        self.ctx.stats.commands_sent += 1
