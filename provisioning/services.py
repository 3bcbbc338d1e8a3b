"""What routes need, built once per application: engine, keys, limiter, clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from broker.auth import Authenticator
from broker.trust import CachedTrustStore
from credbroker.verifier import Verifier, VerifyPolicy
from provisioning.assertions import AssertionPolicy
from provisioning.brokerhooks import HookAuthority
from provisioning.masterkey import Sealer
from provisioning.metrics import Metrics
from provisioning.ratelimit import FailureLimiter
from provisioning.settings import Settings
from provisioning.signing import Keyring
from provisioning.store.hookgrants import DatabaseGrants
from provisioning.store.revocations import RevocationBus

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keyring: Keyring
    limiter: FailureLimiter
    verifier: Verifier
    trust: CachedTrustStore
    hooks: HookAuthority
    clock: Callable[[], float] = time.time
    bus: RevocationBus = field(default_factory=RevocationBus)
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: Engine,
        master_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> Services:
        # Fresh device state and deny list: introspection must see a revocation at once.
        trust = CachedTrustStore(engine, clock, device_ttl=0, deny_list_in_memory=False)
        policy = VerifyPolicy(
            issuer=settings.effective_issuer, audience=settings.audience, leeway=settings.leeway
        )
        verifier = Verifier(policy, trust, clock)
        services = cls(
            settings=settings,
            engine=engine,
            keyring=Keyring(Sealer(master_key)),
            limiter=FailureLimiter(
                {"client": settings.failed_auth_limit, "addr": settings.failed_auth_limit_address},
                settings.failed_auth_window,
                clock,
            ),
            verifier=verifier,
            trust=trust,
            hooks=HookAuthority(
                Authenticator(verifier, settings.leeway), DatabaseGrants(engine, clock), clock
            ),
            clock=clock,
        )
        services.bus.subscribe(services.hooks.revoked)  # revocation clears cached grants
        return services

    def now(self) -> int:
        return int(self.clock())

    @property
    def local_database(self) -> bool:
        """SQLite in this process: queries never wait on a network."""
        return self.engine.dialect.name == "sqlite"

    @property
    def issuer(self) -> str:
        return self.settings.effective_issuer

    @property
    def token_endpoint(self) -> str:
        return self.issuer + TOKEN_PATH

    @property
    def assertion_policy(self) -> AssertionPolicy:
        return AssertionPolicy(
            audiences=frozenset({self.issuer, self.token_endpoint}),
            max_lifetime=self.settings.assertion_max_lifetime,
            leeway=self.settings.leeway,
        )
