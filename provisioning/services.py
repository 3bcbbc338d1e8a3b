"""What routes need, built once per application: engine, keys, limiter, clock, and the
bus that tells this process's caches of every committed change of standing."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from sqlalchemy import Engine
from sqlmodel import Session

from credbroker import presence
from credbroker.anchors import TrustAnchors
from credbroker.database import POOL_SIZE
from credbroker.decision import Authenticator
from credbroker.presence import Connections
from credbroker.trust import CachedTrustStore
from credbroker.verifier import Verifier, VerifyPolicy
from provisioning.assertions import AssertionPolicy
from provisioning.brokerhooks import HookAuthority
from provisioning.cas import VerificationCodes
from provisioning.dpop import ProofPolicy
from provisioning.groupcommit import GroupCommit
from provisioning.masterkey import Sealer
from provisioning.metrics import Metrics
from provisioning.perminute import PerMinute
from provisioning.ratelimit import FailureLimiter
from provisioning.settings import Settings
from provisioning.signing import Keyring
from provisioning.standing import Bus
from provisioning.store.hookgrants import DatabaseGrants
from provisioning.traffic import Traffic

T = TypeVar("T")
TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a path, not a secret
REVOCATION_PATH = "/oauth2/revoke"


@dataclass
class Services:
    settings: Settings
    engine: Engine
    keyring: Keyring
    limiter: FailureLimiter
    verifier: Verifier
    trust: CachedTrustStore
    hooks: HookAuthority
    bus: Bus  # tells this process's caches of every committed change of standing
    commits: GroupCommit  # every transaction of the token endpoint and the hooks
    codes: VerificationCodes  # the proofs of possession of fleet CAs
    clock: Callable[[], float] = time.time
    connections: Connections = presence.none  # the embedded broker's, when there is one
    metrics: Metrics = field(default_factory=Metrics)
    traffic: Traffic = field(init=False)  # the embedded broker's, from its metrics
    minutes: PerMinute = field(default_factory=PerMinute)  # the console's settled counts
    anchors: TrustAnchors = field(default_factory=TrustAnchors)  # fleet CAs for TLS
    _grant_threads: CapacityLimiter | None = field(default=None, init=False)  # made on the loop

    def __post_init__(self) -> None:
        self.traffic = Traffic(self.metrics.registry)

    @classmethod
    def build(
        cls,
        settings: Settings,
        engine: Engine,
        master_key: bytes,
        clock: Callable[[], float] = time.time,
    ) -> Services:
        bus = Bus()
        commits = GroupCommit(engine, bus)
        # Fresh device state and deny list: introspection must see a revocation at once.
        trust = CachedTrustStore(
            engine, clock, device_ttl=0, deny_list_in_memory=False, connect=commits.connection
        )
        policy = VerifyPolicy(
            issuer=settings.effective_issuer, audience=settings.audience, leeway=settings.leeway
        )
        verifier = Verifier(policy, trust, clock)
        services = cls(
            settings=settings,
            engine=engine,
            keyring=Keyring(Sealer(master_key)),
            limiter=FailureLimiter(
                {
                    "client": settings.failed_auth_limit,
                    "addr": settings.failed_auth_limit_address,
                    # console sign-ins by address: a person mistyping, never a device
                    "console": settings.failed_auth_limit,
                },
                settings.failed_auth_window,
                clock,
            ),
            verifier=verifier,
            trust=trust,
            hooks=HookAuthority(
                Authenticator(verifier, settings.leeway),
                DatabaseGrants(commits, clock),
                clock,
            ),
            bus=bus,
            commits=commits,
            codes=VerificationCodes(master_key),
            clock=clock,
        )
        # The trust store first: the others check standing through it.
        services.bus.subscribe(trust.apply)
        services.bus.subscribe(services.hooks.changed)
        services.bus.subscribe(services.keyring.changed)
        return services

    def transaction(self) -> AbstractContextManager[Session]:
        """One session, one transaction (or a savepoint of the running batch of grants,
        `groupcommit`), announcing the changes of standing it recorded once they have
        committed (`provisioning.standing`)."""
        return self.commits.session()

    async def grant(self, work: Callable[[], T]) -> T:
        """Run `work`, a grant or a hook CONNECT (verification, then a write), where the
        database wants it: on the embedded database on the loop, in a batch that shares
        one commit (`groupcommit`; a thread hop would only add to CPU work with no I/O
        wait); elsewhere on the thread pool, since a remote database waits on the
        network. There, no more grants run at once than the pool keeps connections:
        one more would open a connection of its own (a PostgreSQL backend) and close it."""
        if self.local_database:
            return await self.commits.run(work)
        if self._grant_threads is None:
            self._grant_threads = CapacityLimiter(POOL_SIZE)
        return await to_thread.run_sync(work, limiter=self._grant_threads)

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
    def revocation_endpoint(self) -> str:
        return self.issuer + REVOCATION_PATH

    @property
    def dpop_policy(self) -> ProofPolicy:
        """DPoP proofs at the token endpoint: `htu` as the metadata names it."""
        return ProofPolicy(htu=self.token_endpoint, leeway=self.settings.leeway)

    @property
    def assertion_policy(self) -> AssertionPolicy:
        """For the token endpoint: `aud` the issuer or the token endpoint."""
        return self._assertion_policy(self.issuer, self.token_endpoint)

    @property
    def revocation_assertion_policy(self) -> AssertionPolicy:
        """For revocation, also the endpoint's own URL: a client that is not told the
        token endpoint signs for the URL it posts to (authlib's `PrivateKeyJWT()`). An
        assertion made for revocation is then no use at the token endpoint."""
        return self._assertion_policy(self.issuer, self.token_endpoint, self.revocation_endpoint)

    def _assertion_policy(self, *audiences: str) -> AssertionPolicy:
        return AssertionPolicy(
            audiences=frozenset(audiences),
            max_lifetime=self.settings.assertion_max_lifetime,
            leeway=self.settings.leeway,
        )
