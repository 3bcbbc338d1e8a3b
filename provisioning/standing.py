"""One path for every change of a device's or a token's standing.

Disable, enable, revoke, delete, signing key rotation, refresh family revocation, token
revocation: each store function that makes one calls `device_changed` or `token_revoked`
inside its transaction. That writes the revocation log entry (other API processes and
standalone brokers read the log every second) and, when every token of the device dies,
drops its shared hook grants, in the same transaction. `Services.transaction` and the
token endpoint's transaction announce the recorded changes on the `Bus` once they have
committed: the trust store's caches, the hook grants and the embedded broker listen.
A route never notifies; it cannot forget either.

    store function ── device_changed / token_revoked ──> revocation log + pending list
    commit ──> Bus.publish(pending) ──> trust store, hook grants, keyring, embedded broker
    other processes ──> read the log every second ──> their own Bus.publish
"""

from __future__ import annotations

import logging

from sqlmodel import Session

from credbroker.trust import Change, Listener
from provisioning.models import Revocation
from provisioning.store import hookgrants

log = logging.getLogger("credbroker.api")
PENDING = "credbroker.standing"  # Session.info key: the changes to announce after commit


def device_changed(*, session: Session, device_id: str, now: int, cuts: bool) -> None:
    """The device's standing changed; `cuts` when none of its tokens may be used any
    more (revoked, disabled, deleted, signing keys retired at once)."""
    session.add(Revocation(kind="device", device_id=device_id, created_at=now))
    if cuts:
        hookgrants.forget(session=session, device_id=device_id)
    pending(session).append(Change(device_id))


def fleet_changed(
    *, session: Session, fleet: str, device_ids: list[str], now: int, cuts: bool = True
) -> None:
    """Every device of the fleet: its standing changed, and (`cuts`) none of its tokens
    so far may be used (a fleet-wide logout). One log entry; other processes expand it to
    the fleet's devices when they read it (`credbroker.trust`)."""
    session.add(Revocation(kind="fleet", device_id="", fleet=fleet, created_at=now))
    if cuts:
        hookgrants.forget_all(session=session, device_ids=device_ids)
    pending(session).extend(Change(device_id) for device_id in device_ids)


def token_revoked(*, session: Session, device_id: str, jti: str, exp: int, now: int) -> None:
    """One access token is revoked until it expires."""
    session.add(
        Revocation(kind="token", device_id=device_id, jti=jti, expires_at=exp, created_at=now)
    )
    hookgrants.forget(session=session, device_id=device_id, jti=jti)
    pending(session).append(Change(device_id, jti, exp))


def pending(session: Session) -> list[Change]:
    changes: list[Change] | None = session.info.get(PENDING)
    if changes is None:
        # Fail loudly: a change that nobody announces reaches this process only through
        # the log, a second late.
        raise RuntimeError("a change of standing needs Services.transaction()")
    return changes


class Bus:
    """In-process fan-out of committed changes; listeners must not raise."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def publish(self, changes: list[Change]) -> None:
        if not changes:
            return
        for listener in self._listeners:
            try:
                listener(changes)
            except Exception:  # one broken listener must not keep the news from the rest
                log.exception("a listener of changes of standing failed")
