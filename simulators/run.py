"""A simulation: provision a fleet, run a scenario for a while, drain, report. What
each scenario does is in `simulators.scenarios`, one table.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from simulators.attacks import Kit, run_attacks
from simulators.device import Backend, Context, VirtualDevice
from simulators.fleet import Operator, Topics, run_id
from simulators.mqtt import Driver
from simulators.report import Report, Stats
from simulators.scenarios import Scenario

COMMAND_SHARE = 10  # one device in ten subscribes to commands
# --protocol: every device on one MQTT version, or "mixed", every other device on 5.0.
PROTOCOLS = ("3.1.1", "5", "mixed")


@dataclass(frozen=True)
class Target:
    """A running stack to simulate against."""

    api: str
    mqtt_host: str
    mqtt_port: int
    admin_key: str
    leeway: float = 30.0  # the stack's clock leeway (CREDBROKER_LEEWAY), for expired tokens


@dataclass(frozen=True)
class Options:
    scenario: Scenario
    devices: int
    duration: float
    rate: float = 0.2
    token_ttl: int = 60
    revoke_share: float = 0.1
    drain: float = 60.0  # seconds to wait for messages still in flight at the end
    boot_rate: float = (
        100.0  # devices starting per second: what the embedded stack grants under load
    )
    protocol: str = "3.1.1"  # one of PROTOCOLS

    def protocol_of(self, n: int) -> str:
        """The MQTT version of the fleet's device number `n`."""
        if self.protocol == "mixed":
            return "5" if n % 2 else "3.1.1"
        return self.protocol

    def ramp(self, devices: int) -> float:
        """Seconds over which the fleet boots: at `boot_rate`, at most half the run."""
        return min(devices / self.boot_rate, self.duration / 2)


Progress = Callable[[dict[str, object]], None]


async def simulate(target: Target, options: Options, progress: Progress | None = None) -> Report:
    stats = Stats(devices=options.devices)
    run = run_id()
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        ctx = Context(
            api=target.api,
            mqtt_host=target.mqtt_host,
            mqtt_port=target.mqtt_port,
            http=http,
            driver=Driver(asyncio.get_running_loop()),
            stats=stats,
            topics=Topics(f"sim/{run}"),
        )
        try:
            return await _run(ctx, target, options, run, progress or (lambda _: None))
        finally:
            ctx.stopping.set()
            await ctx.driver.close()


async def _run(
    ctx: Context, target: Target, options: Options, run: str, progress: Progress
) -> Report:
    stats, scenario = ctx.stats, options.scenario
    operator = Operator(ctx.http, target.api, target.admin_key)
    honest_acl = {
        "publish": [ctx.topics.telemetry("{device_id}")],
        "subscribe": [ctx.topics.commands("{device_id}")],
    }
    fleet = await operator.fleet(run, ttl=options.token_ttl, **honest_acl)
    service = await operator.fleet(
        f"{run}-svc", ttl=int(min(86400, options.duration * 2 + 600)), **honest_acl
    )
    identities = await operator.devices(fleet, options.devices, run)
    [backend_id] = await operator.devices(
        service,
        1,
        f"{run}-backend",
        acl={
            "publish": [ctx.topics.commands("+")],
            "subscribe": [ctx.topics.telemetry("+")],
        },
    )
    backend = Backend(ctx, backend_id)
    await backend.start()
    devices = [
        VirtualDevice(
            ctx,
            identity,
            rate=options.rate,
            commands=n % COMMAND_SHARE == 0,
            protocol=options.protocol_of(n),
        )
        for n, identity in enumerate(identities)
    ]
    stats.protocols.update(d.protocol for d in devices)
    ctx.started = time.monotonic()
    if scenario.tokens_together:
        await _bounded(64, [d.obtain_token for d in devices])
    end = time.monotonic() + options.duration
    # A fleet boots over a while, not in one instant (unless that is the scenario).
    ramp = 0.0 if scenario.tokens_together else options.ramp(len(devices))
    tasks = [asyncio.create_task(d.live(random.uniform(0, ramp))) for d in devices]  # noqa: S311
    tasks += [asyncio.create_task(d.publish_telemetry(end)) for d in devices]
    tasks.append(asyncio.create_task(_commands(ctx, backend, devices, options.duration)))
    revoked: list[VirtualDevice] = []
    if scenario.revokes:
        tasks.append(asyncio.create_task(_revoke_later(ctx, operator, devices, options, revoked)))
    attacks = None
    if scenario.attacks:
        kit = await _attack_kit(ctx, operator, fleet, run, backend, target.leeway)
        rounds = max(1, int(options.duration // 30))
        attacks = asyncio.create_task(run_attacks(kit, rounds, options.duration / rounds))
    ticker = asyncio.create_task(_report_progress(ctx, devices, end, progress))
    await _until(end, ctx)
    chosen = set(revoked)  # by identity: one lookup per device, not a scan of the list
    honest = [d for d in devices if d not in chosen]
    await _drain(backend, honest, revoked, options.drain)
    stats.lost_sample = backend.missing_sample(honest)  # before the clients close
    if attacks is not None:
        await attacks  # every attack gets its answer before the report
    ctx.stopping.set()
    ticker.cancel()
    await asyncio.gather(*tasks, ticker, return_exceptions=True)
    for device in devices:
        device.client.close()
    lost = backend.missing(honest) + _commands_lost(honest)
    stats.commands_delivered = sum(len(d.commands_received) for d in devices)
    return Report(scenario.name, time.monotonic() - ctx.started, stats, lost)


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def _until(moment: float, ctx: Context) -> None:
    await ctx.pause(max(0.0, moment - time.monotonic()))


async def _commands(
    ctx: Context, backend: Backend, devices: list[VirtualDevice], duration: float
) -> None:
    """Two commands to each commanded device, at a half and three quarters of the run."""
    for number, at in enumerate((0.5, 0.75)):
        await _until(ctx.started + duration * at, ctx)
        for device in devices:
            if device.subscribed and device.stopped is None and device.revoked_at is None:
                backend.command(device, number)
                device.commands_expected += 1


def _commands_lost(devices: list[VirtualDevice]) -> int:
    return sum(max(0, d.commands_expected - len(d.commands_received)) for d in devices)


async def _revoke_later(
    ctx: Context,
    operator: Operator,
    devices: list[VirtualDevice],
    options: Options,
    revoked: list[VirtualDevice],
) -> None:
    await _until(ctx.started + options.duration / 2, ctx)
    step = max(1, round(1 / options.revoke_share)) if options.revoke_share > 0 else 0
    chosen = devices[1::step] if step else []
    revoked.extend(chosen)
    ctx.stats.revoked = len(chosen)

    async def revoke(device: VirtualDevice) -> None:
        device.revoked_at = time.monotonic()
        await operator.revoke(device.id)

    await _bounded(16, [lambda d=d: revoke(d) for d in chosen])  # type: ignore[misc]


async def _attack_kit(
    ctx: Context, operator: Operator, fleet: str, run: str, backend: Backend, leeway: float
) -> Kit:
    attacker, victim = await operator.devices(fleet, 2, f"{run}-atk")
    short = await operator.fleet(
        f"{run}-short",
        ttl=1,
        publish=[ctx.topics.telemetry("{device_id}")],
        subscribe=[],
    )
    [short_lived] = await operator.devices(short, 1, f"{run}-short")
    bound = await operator.fleet(
        f"{run}-pop",
        ttl=600,
        publish=[ctx.topics.telemetry("{device_id}")],
        subscribe=[],
    )
    await operator.require_proofs(bound)
    [key_bound] = await operator.devices(bound, 1, f"{run}-pop")
    return Kit(ctx, operator, attacker, victim, short_lived, backend, leeway, key_bound)


async def _drain(
    backend: Backend, honest: list[VirtualDevice], revoked: list[VirtualDevice], drain: float
) -> None:
    """Wait until every honest message has arrived and every revoked device has given
    up, or `drain` seconds."""
    deadline = time.monotonic() + drain
    while time.monotonic() < deadline:
        settled = all(d.stopped is not None for d in revoked)
        if settled and backend.missing(honest) == 0 and _commands_lost(honest) == 0:
            return
        await asyncio.sleep(0.2)


async def _report_progress(
    ctx: Context, devices: list[VirtualDevice], end: float, progress: Progress
) -> None:
    stats = ctx.stats
    while True:
        attacks = stats.attacks.values()
        progress(
            {
                "elapsed": time.monotonic() - ctx.started,
                "remaining": max(0.0, end - time.monotonic()),
                "connected": sum(1 for d in devices if d.client.connected),
                "sent": stats.sent,
                "delivered": stats.delivered,
                "refreshes": stats.refreshes,
                "reauthentications": stats.reauthentications.total(),
                "refused": sum(stats.refused.values()),
                "attacks": f"{sum(a.stopped for a in attacks)}/{sum(a.tried for a in attacks)}",
            }
        )
        await asyncio.sleep(0.5)
