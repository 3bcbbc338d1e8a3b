"""`create_app(settings)`: the provisioning API as a FastAPI application.

Everything is set up eagerly (migrations, master key, admin key seed) so that
`TestClient(create_app(settings))` works with or without a lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from credbroker import __version__, anchors
from credbroker.verifier import StoreUnavailable
from provisioning import console, masterkey, openapi
from provisioning.api import (
    admin_keys,
    devices,
    direct,
    docs,
    fleets,
    hooks,
    meta,
    oauth,
    revocations,
)
from provisioning.brokerhooks import KEY_TTL
from provisioning.db import create_db_engine, migrate, transaction
from provisioning.grantstore import prune_used_assertions
from provisioning.http import RequestGuard, install_error_handlers
from provisioning.services import Services
from provisioning.settings import Settings
from provisioning.store import admin


def create_app(
    settings: Settings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    settings = settings or Settings()
    engine = create_db_engine(settings.effective_database_url)
    migrate(engine)
    master_key = masterkey.load_or_create(
        settings.master_key.get_secret_value() if settings.master_key else None,
        settings.data_dir,
    )
    if settings.admin_key is not None:
        with transaction(engine) as session:
            admin.seed(session=session, key=settings.admin_key.get_secret_value(), now=int(clock()))
    if settings.hook_key is not None:
        with transaction(engine) as session:
            admin.seed(
                session=session,
                key=settings.hook_key.get_secret_value(),
                now=int(clock()),
                name="CREDBROKER_HOOK_KEY",
                scopes=("broker:hook",),
            )
    services = Services.build(settings, engine, master_key, clock)
    services.trust.catch_up()  # follow the revocation log from here on
    services.anchors.refresh(engine)  # the fleet CAs our TLS listeners trust

    app = FastAPI(
        lifespan=_following_revocations(services),
        title="credbroker provisioning API",
        version=__version__,
        docs_url=None,  # ours (`docs`): Swagger UI from our own origin, not a CDN
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.services = services
    app.state.health = {"api": True}
    install_error_handlers(app)
    app.add_middleware(RequestGuard, max_body=settings.max_body_bytes)
    routers = (oauth, hooks, fleets, devices, meta, admin_keys, revocations)
    for module in routers:
        app.include_router(module.router)
    openapi.install(app)
    docs.install(app)
    console.install(app)
    direct.install(app)  # the hot paths, matched before the routers
    return app


PRUNE_EVERY = 60  # seconds between prunings of the assertion replay cache
CLOCK_SKEW = 2  # seconds between the clocks of API processes, at most


def forget_revoked_keys(services: Services) -> None:
    """The hook paths take a key on trust for `KEY_TTL` seconds: a key remembered before
    a revocation is gone from the cache `KEY_TTL` after it. So a revocation within the
    last `KEY_TTL` seconds (made by any process, by its own clock) clears the cache."""
    if not services.hooks.remembers_keys():
        return
    since = services.now() - int(KEY_TTL) - CLOCK_SKEW
    with services.transaction() as session:
        revoked = admin.revoked_since(session=session, since=since)
    if revoked:
        services.hooks.forget_keys()


def _following_revocations(
    services: Services, interval: float = 1.0
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """While serving, read the revocation log every `interval` seconds: changes of
    standing made by other processes reach this one's caches through its own bus, as
    its own changes do (and, embedded, the broker's sessions). Every `PRUNE_EVERY`
    seconds, drop expired assertion jtis and console sessions too (off the token
    endpoint's hot path). Each round samples the embedded broker's accepted CONNECTs
    for the console (`provisioning.traffic`). Admin
    keys revoked by another process are forgotten by this one's hook key cache, and
    every `anchors.REFRESH_EVERY` seconds fleet CAs it registered are trusted here."""
    pruned_at = anchored_at = float("-inf")

    def follow_once() -> None:
        nonlocal pruned_at, anchored_at
        services.traffic.sample(services.clock())  # the console's CONNECTs per minute
        if services.clock() - anchored_at >= anchors.REFRESH_EVERY:
            services.anchors.refresh(services.engine)  # CAs other processes registered
            anchored_at = services.clock()
        try:
            changes = services.trust.read_log()
        except StoreUnavailable:
            return  # the next round reads what this one missed
        services.bus.publish(changes)
        with contextlib.suppress(OperationalError):  # the next round asks again
            forget_revoked_keys(services)
        if services.clock() - pruned_at >= PRUNE_EVERY:
            with contextlib.suppress(OperationalError):  # the next pruning catches up
                prune_used_assertions(services.engine, services.now())
                with services.transaction() as session:
                    console.prune(session=session, now=services.now())
                pruned_at = services.clock()

    async def follow() -> None:
        while True:
            await asyncio.to_thread(follow_once)  # listeners may read the database
            await asyncio.sleep(interval)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(follow())
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    return lifespan
