"""Failed attempts at the OAuth endpoints that authenticate clients (token, revocation):
counted per claimed client and per address, audited, and answered 429 under a penalty.

One place for both endpoints: a client secret accepted by revocation must not be a way
around the token endpoint's limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from provisioning.errors import DeadGrant, InactiveClient, OAuthError, TooManyAttempts
from provisioning.services import Services
from provisioning.store import audit


@contextmanager
def counted(
    services: Services,
    *,
    action: str,
    label: str,
    client: str | None,
    address: str,
    costly: bool,
) -> Iterator[None]:
    """Run one attempt; an `OAuthError` from it is a failure. `label` is the metrics'
    grant (a grant type, or "revoke"); `costly` when it checks a client secret."""
    keys = (("client", client), ("addr", address)) if client else (("addr", address),)
    retry = services.limiter.retry_after(*keys)
    if retry and costly and services.limiter.retry_after(keys[-1]):
        # A client secret costs an argon2 verification (~50 ms): an address past its
        # limit gets none checked. Anything cheap to check still is (below).
        services.metrics.tokens.labels(label, "throttled").inc()
        raise TooManyAttempts(retry)
    try:
        yield
    except OAuthError as exc:
        _refused(services, exc, action, label, client, keys, address, penalized=bool(retry))
        if retry and not isinstance(exc, InactiveClient | DeadGrant):
            # A penalty never stands between a verified credential and its answer (a
            # device id is public: junk naming it must not lock the device out); what
            # failed under one is told to come back later.
            services.metrics.tokens.labels(label, "throttled").inc()
            raise TooManyAttempts(retry, exc.error) from exc
        raise


def _refused(
    services: Services,
    exc: OAuthError,
    action: str,
    label: str,
    client: str | None,
    keys: tuple[tuple[str, str], ...],
    address: str,
    *,
    penalized: bool,
) -> None:
    """Count a refusal, and audit it unless it came under a penalty (a flood of junk
    must not turn into a flood of writes: it shows in the metrics)."""
    services.metrics.tokens.labels(label, exc.error).inc()
    # Real but dead credentials (a revoked device, a revoked family) are not guesses:
    # they count against the device, not the address many devices may share.
    genuine = isinstance(exc, InactiveClient | DeadGrant)
    services.limiter.failed(*(k for k in keys if not (genuine and k[0] == "addr")))
    if penalized and not genuine:
        return
    detail = dict(exc.audit_detail)
    if exc.device_id is not None and client is not None and client != exc.device_id:
        detail["claimed_client"] = client  # someone else's refresh token, say
    with services.transaction() as session:
        audit.record(
            session=session,
            now=services.now(),
            action=action,
            outcome="refused",
            device_id=exc.device_id or client,
            error=exc.error,
            reason=exc.detail,
            address=address,
            **detail,
        )
